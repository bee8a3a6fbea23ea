"""The FHIR R4 REST routes (http://hl7.org/fhir/R4/http.html), each parse → service → render."""

from collections.abc import Awaitable, Callable
from urllib.parse import parse_qsl

import orjson
from fastapi import APIRouter, Request
from starlette.responses import Response

from conformance.access import AccessContext
from conformance.errors import BadRequest, MethodNotAllowed
from conformance.fhir_time import InvalidDate, date_range
from conformance.outcome import informational_outcome
from gateway.fhir import bundle_json
from gateway.fhir.service import FhirService
from gateway.fhir.transaction import BundleProcessor
from gateway.fhir.write_context import now_us
from gateway.fhir_api.negotiation import (
    check_acceptable,
    preferences,
    read_json_body,
    read_limited,
)
from gateway.fhir_api.responses import (
    fhir_response,
    json_response,
    not_modified,
    resource_response,
    version_headers,
)

AccessResolver = Callable[[Request], Awaitable[AccessContext]]


def fhir_router(
    service: FhirService,
    *,
    capability: Callable[[], bytes],
    access: AccessResolver,
    max_body_bytes: int,
) -> APIRouter:
    router = APIRouter(prefix="/fhir")
    bundles = BundleProcessor(service)
    base = service.fhir_base

    @router.get("/metadata")
    async def metadata(request: Request) -> Response:
        check_acceptable(request)
        return fhir_response(capability())

    @router.post("")
    async def batch_or_transaction(request: Request) -> Response:
        check_acceptable(request)
        actor = await access(request)
        bundle = await read_json_body(request, max_bytes=max_body_bytes)
        if bundle.get("resourceType") != "Bundle":
            raise BadRequest(
                "POST to the base takes a transaction or batch Bundle", expression=("resourceType",)
            )
        prefer = preferences(request)
        write = bundles.prepare(actor, bundle, representation=prefer.return_ == "representation")
        response = await service.run_write(write)
        return fhir_response(orjson.dumps(response))

    @router.get("/_history")
    async def system_history(request: Request) -> Response:
        check_acceptable(request)
        return _history(request, service, await access(request), path="_history")

    @router.get("/{resource_type}")
    async def search(request: Request, resource_type: str) -> Response:
        check_acceptable(request)
        actor = await access(request)
        pairs = list(request.query_params.multi_items())
        return _search(request, service, actor, resource_type, pairs)

    @router.post("/{resource_type}/_search")
    async def search_by_post(request: Request, resource_type: str) -> Response:
        check_acceptable(request)
        actor = await access(request)
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        pairs = list(request.query_params.multi_items())
        if content_type and content_type != "application/x-www-form-urlencoded":
            raise BadRequest("POST _search takes application/x-www-form-urlencoded parameters")
        body = await read_limited(request, max_bytes=max_body_bytes)
        try:
            pairs += parse_qsl(body.decode(), keep_blank_values=True)
        except UnicodeDecodeError as exc:
            raise BadRequest("The search parameters are not valid UTF-8") from exc
        return _search(request, service, actor, resource_type, pairs)

    @router.post("/{resource_type}")
    async def create(request: Request, resource_type: str) -> Response:
        check_acceptable(request)
        actor = await access(request)
        resource = await read_json_body(request, max_bytes=max_body_bytes)
        if resource.get("resourceType") != resource_type:
            raise BadRequest(
                f"The body is not a {resource_type[:64]}; resourceType must match the URL",
                expression=("resourceType",),
            )
        write = service.prepare_create(
            actor, resource, if_none_exist=request.headers.get("if-none-exist")
        )
        result = await service.run_write(write)
        return resource_response(
            result.stored,
            fhir_base=base,
            status=201 if result.created else 200,
            prefer_return=preferences(request).return_,
            location=result.created,
        )

    @router.get("/{resource_type}/_history")
    async def type_history(request: Request, resource_type: str) -> Response:
        check_acceptable(request)
        return _history(
            request,
            service,
            await access(request),
            path=f"{resource_type}/_history",
            resource_type=resource_type,
        )

    @router.get("/{resource_type}/{resource_id}")
    async def read(request: Request, resource_type: str, resource_id: str) -> Response:
        check_acceptable(request)
        stored = service.read(await access(request), resource_type, resource_id)
        if not_modified(request, stored):
            return Response(status_code=304, headers=version_headers(stored))
        return resource_response(stored, fhir_base=base)

    @router.put("/{resource_type}/{resource_id}")
    async def update(request: Request, resource_type: str, resource_id: str) -> Response:
        check_acceptable(request)
        actor = await access(request)
        resource = await read_json_body(request, max_bytes=max_body_bytes)
        write = service.prepare_update(
            actor, resource_type, resource_id, resource, if_match=_if_match(request)
        )
        result = await service.run_write(write)
        return resource_response(
            result.stored,
            fhir_base=base,
            status=201 if result.created else 200,
            prefer_return=preferences(request).return_,
            location=result.created,
        )

    @router.delete("/{resource_type}/{resource_id}")
    async def delete(request: Request, resource_type: str, resource_id: str) -> Response:
        check_acceptable(request)
        actor = await access(request)
        deleted = await service.run_write(service.prepare_delete(actor, resource_type, resource_id))
        if preferences(request).return_ == "OperationOutcome":
            text = "Deleted" if deleted else "Already deleted"
            return json_response(informational_outcome(text))
        return Response(status_code=204)

    @router.get("/{resource_type}/{resource_id}/_history")
    async def instance_history(request: Request, resource_type: str, resource_id: str) -> Response:
        check_acceptable(request)
        return _history(
            request,
            service,
            await access(request),
            path=f"{resource_type}/{resource_id}/_history",
            resource_type=resource_type,
            resource_id=resource_id,
        )

    @router.get("/{resource_type}/{resource_id}/_history/{version_id}")
    async def vread(
        request: Request, resource_type: str, resource_id: str, version_id: str
    ) -> Response:
        check_acceptable(request)
        stored = service.vread(await access(request), resource_type, resource_id, version_id)
        return resource_response(stored, fhir_base=base)

    @router.patch("/{resource_type}/{resource_id}")
    async def patch(resource_type: str, resource_id: str) -> Response:
        raise MethodNotAllowed(
            "PATCH is not supported; send the whole resource with PUT",
            headers={"Allow": "GET, PUT, DELETE"},
        )

    return router


def _search(
    request: Request,
    service: FhirService,
    actor: AccessContext,
    resource_type: str,
    pairs: list[tuple[str, str]],
) -> Response:
    started = now_us()
    search = service.parse_search(resource_type, pairs, lenient=preferences(request).lenient)
    result = service.search(actor, search)
    return fhir_response(
        bundle_json.searchset(result, fhir_base=service.fhir_base, started_at=started)
    )


_HISTORY_PARAMETERS = {"_count", "_offset", "_since", "_at", "_format", "_pretty"}


def _history(
    request: Request,
    service: FhirService,
    actor: AccessContext,
    *,
    path: str,
    resource_type: str | None = None,
    resource_id: str | None = None,
) -> Response:
    """http://hl7.org/fhir/R4/http.html#history with ``_count``, ``_since`` and ``_at``."""
    params = request.query_params
    unknown = set(params) - _HISTORY_PARAMETERS
    if unknown and not preferences(request).lenient:
        raise BadRequest(
            f"Unknown history parameter '{sorted(unknown)[0]}'", expression=(sorted(unknown)[0],)
        )
    count = _whole_number(params.get("_count"), "_count")
    offset = _whole_number(params.get("_offset"), "_offset") or 0
    since = _instant_bound(params.get("_since"), "_since", low=True)
    at = _instant_bound(params.get("_at"), "_at", low=False)
    page = service.history(
        actor,
        resource_type=resource_type,
        resource_id=resource_id,
        since=since,
        at_or_before=at,
        count=count,
        offset=offset,
    )
    echoed = {k: v for k, v in params.items() if k in ("_since", "_at")}
    return fhir_response(
        bundle_json.history(page, fhir_base=service.fhir_base, path=path, query=echoed)
    )


def _whole_number(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        raise BadRequest(f"{name} must be a whole number", expression=(name,))
    return int(value)


def _instant_bound(value: str | None, name: str, *, low: bool) -> int | None:
    if value is None:
        return None
    try:
        start, end = date_range(value)
    except InvalidDate as exc:
        raise BadRequest(f"{name} must be a FHIR instant", expression=(name,)) from exc
    return start if low else end


def _if_match(request: Request) -> int | None:
    """``If-Match: W/"3"`` → 3 (http.html#concurrency)."""
    header = request.headers.get("if-match")
    if header is None:
        return None
    text = header.strip().removeprefix("W/").strip('"')
    if not text.isdigit():
        raise BadRequest('If-Match must be an ETag such as W/"3"')
    return int(text)
