"""``$status`` and ``$events`` on Subscription (Backport IG operations
``backport-subscription-status`` and ``backport-subscription-events``).

Both answer only about subscriptions the caller may read (the organization that created them):
the same read check as ``GET Subscription/[id]``. ``$events`` renders the recorded events
again, as the caller may read their focus resources now.
"""

from collections.abc import Sequence

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from conformance.access import AccessContext
from conformance.errors import BadRequest
from conformance.subscriptions import CONTENTS, status_searchset
from gateway.fhir.ids import new_resource_id
from gateway.fhir.service import FhirService
from gateway.fhir_api.negotiation import check_acceptable, read_json_body
from gateway.fhir_api.responses import fhir_response
from gateway.fhir_api.routes import AccessResolver
from gateway.store.engine import read_transaction
from gateway.subscriptions import records
from gateway.subscriptions.rendering import Renderer

MAX_EVENTS = 1000
"""``$events`` returns at most this many events; ask again from the next number for more."""


def subscription_router(
    service: FhirService, renderer: Renderer, *, access: AccessResolver, max_body_bytes: int
) -> APIRouter:
    router = APIRouter(prefix="/fhir/Subscription")

    def statuses(actor: AccessContext, ids: Sequence[str], wanted: Sequence[str]) -> bytes:
        pairs = [("_id", ",".join(ids))] if ids else []
        pairs += [("status", ",".join(wanted))] if wanted else []
        request = service.parse_search("Subscription", [*pairs, ("_count", "1000")])
        found = service.search(actor, request)
        parameters = []
        with read_transaction(service.engine) as connection:
            for stored in found.matches:
                record = records.get_subscription(connection, stored.id)
                if record is not None:
                    parameters.append(renderer.status(record, kind="query-status"))
        return orjson.dumps(status_searchset(parameters, bundle_id=new_resource_id()))

    @router.get("/$status")
    async def type_status(request: Request) -> Response:
        check_acceptable(request)
        actor = await access(request)
        params = request.query_params
        return fhir_response(
            statuses(actor, _split(params.getlist("id")), _split(params.getlist("status")))
        )

    @router.post("/$status")
    async def type_status_post(request: Request) -> Response:
        check_acceptable(request)
        actor = await access(request)
        body = await read_json_body(request, max_bytes=max_body_bytes)
        if body.get("resourceType") != "Parameters":
            raise BadRequest(
                "POST $status takes a Parameters resource", expression=("resourceType",)
            )
        ids, wanted = [], []
        for parameter in body.get("parameter") or []:
            if parameter.get("name") == "id":
                ids.append(str(parameter.get("valueId") or parameter.get("valueString") or ""))
            elif parameter.get("name") == "status":
                wanted.append(str(parameter.get("valueCode") or ""))
        return fhir_response(statuses(actor, _split(ids), _split(wanted)))

    @router.get("/{subscription_id}/$status")
    async def instance_status(request: Request, subscription_id: str) -> Response:
        check_acceptable(request)
        actor = await access(request)
        service.read(actor, "Subscription", subscription_id)
        with read_transaction(service.engine) as connection:
            record = records.get_subscription(connection, subscription_id)
        found = [renderer.status(record, kind="query-status")] if record is not None else []
        return fhir_response(orjson.dumps(status_searchset(found, bundle_id=new_resource_id())))

    @router.get("/{subscription_id}/$events")
    async def events(request: Request, subscription_id: str) -> Response:
        check_acceptable(request)
        actor = await access(request)
        service.read(actor, "Subscription", subscription_id)
        params = request.query_params
        content = params.get("content")
        if content is not None and content not in CONTENTS:
            raise BadRequest(
                "content must be empty, id-only or full-resource", expression=("content",)
            )
        with read_transaction(service.engine) as connection:
            record = records.get_subscription(connection, subscription_id)
            if record is None:
                raise BadRequest("The Subscription has no event log")
            first = _number(params.get("eventsSinceNumber"), "eventsSinceNumber") or 1
            last = _number(params.get("eventsUntilNumber"), "eventsUntilNumber")
            last = min(record.events_since_start if last is None else last, first + MAX_EVENTS - 1)
            logged = records.events_between(connection, subscription_id, first, last)
            bundle = renderer.bundle(
                connection,
                record,
                kind="query-event",
                reader=actor,
                events=logged,
                content=content,
            )
        return fhir_response(orjson.dumps(bundle))

    return router


def _split(values: Sequence[str]) -> list[str]:
    return [v for value in values for v in value.split(",") if v]


def _number(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        raise BadRequest(f"{name} must be a whole number", expression=(name,))
    return int(value)
