"""``CboCore`` over the FHIR store: what the JSON API does, done through ``FhirService``.

Every action becomes a new Task version written by ``FhirService.update_in`` — the same
structure, profile, state-machine, edit-rights and visibility checks the FHIR door applies —
and a completion writes its Procedure in the same transaction.
"""

import base64
import binascii
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TypeVar

import orjson
from pydantic import BaseModel
from sqlalchemy import Connection

from adapters.cbo.ports import Answer, IdempotentRequest
from adapters.cbo.schemas import (
    CAPACITY_CODES,
    ApiKeyCreated,
    ApiKeyInfo,
    ApiKeyList,
    CapacityState,
    CapacityUpdate,
    Delivery,
    DeliveryAttempt,
    DeliveryDetail,
    DeliveryList,
    MessageList,
    ReasonCode,
    ReasonCodes,
    ReferralPage,
    ServiceCapacity,
    Webhook,
    WebhookUpdate,
)
from adapters.webhooks import webhook_url_problem
from conformance.access import AccessContext
from conformance.errors import BadRequest, ResourceNotFound
from conformance.fhir_time import InvalidDate, date_range, format_instant
from conformance.references import reference_key
from conformance.task_lifecycle import REFERRAL_TASK_STATUSES
from conformance.terminology import TASK_CODE_SYSTEM
from fhir_mappings import (
    CompleteAction,
    DisclosurePolicy,
    MessageAction,
    ReferralAction,
    ReferralView,
    procedure_from_completion,
    reason_codes,
    referral_view_from_fhir,
    task_from_action,
)
from gateway.fhir import FhirService
from gateway.fhir.ids import new_resource_id
from gateway.fhir.write_context import WriteContext
from gateway.partners import api_keys, policy
from gateway.partners.idempotency import StoredAnswer, store_answer, stored_answer
from gateway.referrals import deliveries
from gateway.referrals.capacity import capacity_of, new_service, services_of, with_capacity
from gateway.referrals.events import EVENT_TYPES
from gateway.referrals.records import load_records
from gateway.store import resource_rows
from gateway.store.engine import read_transaction, write_transaction
from gateway.store.resource_rows import StoredVersion

REFERRAL_TASKS = ("code", f"{TASK_CODE_SYSTEM}|fulfill")
"""Gravity referral Tasks ask to fulfill a ServiceRequest; other Tasks are not referrals."""
_SORTS = {
    "updated": "_lastUpdated",
    "-updated": "-_lastUpdated",
    "created": "authored-on",
    "-created": "-authored-on",
}

T = TypeVar("T")


class CboApi:
    """The JSON API's core; one per app."""

    def __init__(
        self, service: FhirService, *, wake_outbox: Callable[[], None] | None = None
    ) -> None:
        self.service = service
        self.engine = service.engine
        self.wake_outbox = wake_outbox

    # -- referrals ---------------------------------------------------------------------------

    def list_referrals(
        self,
        caller: AccessContext,
        *,
        statuses: list[str],
        needs: list[str],
        updated_since: str | None,
        sort: str,
        limit: int,
        cursor: str | None,
    ) -> ReferralPage:
        pairs = [REFERRAL_TASKS, *_filters(statuses, needs, updated_since)]
        pairs.append(("_sort", _SORTS[sort]))
        offset = _offset_from(cursor, pairs)
        request = self.service.parse_search("Task", pairs)
        request.count, request.offset, request.total = limit + 1, offset, "none"
        with read_transaction(self.engine) as connection:
            result = self.service.search_in(connection, caller, request)
            views = self._views(connection, caller, result.matches[:limit])
        more = len(result.matches) > limit
        return ReferralPage(
            items=views, next_cursor=_cursor(offset + limit, pairs) if more else None
        )

    def get_referral(self, caller: AccessContext, referral_id: str) -> ReferralView:
        with read_transaction(self.engine) as connection:
            task = self._referral_task(connection, caller, referral_id)
            return self._views(connection, caller, [task])[0]

    def _referral_task(
        self, connection: Connection, caller: AccessContext, referral_id: str
    ) -> StoredVersion:
        """The referral's current Task as ``caller`` may see it; 404 for any other Task."""
        task = self.service.read_in(connection, caller, "Task", referral_id)
        codings = (orjson.loads(task.body or "{}").get("code") or {}).get("coding") or []
        if not any(
            c.get("system") == TASK_CODE_SYSTEM and c.get("code") == "fulfill" for c in codings
        ):
            raise ResourceNotFound(f"There is no referral {referral_id} for your organization")
        return task

    def act(
        self,
        caller: AccessContext,
        referral_id: str,
        action: ReferralAction,
        *,
        idempotency: IdempotentRequest,
    ) -> Answer:
        """Apply ``action`` to the referral as ``caller``'s organization, once per key."""

        def work(ctx: WriteContext) -> tuple[int, bytes, bytes]:
            view = self._apply(ctx, caller, referral_id, action)
            if isinstance(action, MessageAction):
                body = _json(view.messages[-1] if view.messages else None)
                return 201, body, body
            body = _json(view)
            return 200, body, body

        return self._once(caller, idempotency, work)

    async def run_write(self, write: Callable[[], T]) -> T:
        return await self.service.run_write(write)

    def messages(self, caller: AccessContext, referral_id: str) -> MessageList:
        view = self.get_referral(caller, referral_id)
        return MessageList(items=list(view.messages))

    def _apply(
        self, ctx: WriteContext, caller: AccessContext, referral_id: str, action: ReferralAction
    ) -> ReferralView:
        service, organization = self.service, _organization(caller)
        current = self._referral_task(ctx.connection, caller, referral_id)
        service.access(caller, "Task", "u")
        task = orjson.loads(current.body or "{}")
        now = format_instant(ctx.now)
        procedure_reference = None
        if isinstance(action, CompleteAction):
            service.access(caller, "Procedure", "c")
            request = self._service_request(ctx.connection, task)
            procedure_id = new_resource_id()
            procedure = procedure_from_completion(
                task,
                request,
                action,
                performer_organization=organization,
                procedure_id=procedure_id,
                now=now,
            )
            service.validate(procedure)
            service.create_in(ctx, procedure, resource_id=procedure_id)
            procedure_reference = f"Procedure/{procedure_id}"
        updated = task_from_action(
            task,
            action,
            actor_organization=organization,
            actor_user=caller.user,
            now=now,
            procedure_reference=procedure_reference,
        )
        service.validate(updated)
        result = service.update_in(ctx, referral_id, updated, if_match=current.version_id)
        return self._views(ctx.connection, caller, [result.stored])[0]

    def _service_request(
        self, connection: Connection, task: dict[str, Any]
    ) -> dict[str, Any] | None:
        """The ServiceRequest the Task's ``focus`` names, if stored here."""
        focus = (task.get("focus") or {}).get("reference")
        key = reference_key(focus, local_base=self.service.fhir_base) if focus else None
        resource_type, _, resource_id = (key or "").partition("/")
        if resource_type != "ServiceRequest":
            return None
        stored = resource_rows.current(connection, resource_type, resource_id)
        if stored is None or stored.body is None:
            return None
        found: dict[str, Any] = orjson.loads(stored.body)
        return found

    def _views(
        self, connection: Connection, caller: AccessContext, tasks: list[StoredVersion]
    ) -> list[ReferralView]:
        partner = policy.get_partner(connection, _organization(caller))
        disclosure = DisclosurePolicy(
            consent_required=partner.consent_required,
            respond_within_hours=partner.respond_within_hours,
            close_within_days=partner.close_within_days,
        )
        records = load_records(connection, tasks, fhir_base=self.service.fhir_base)
        now = datetime.now(UTC)
        return [referral_view_from_fhir(record, policy=disclosure, now=now) for record in records]

    # -- capacity ----------------------------------------------------------------------------

    def get_capacity(self, caller: AccessContext) -> CapacityState:
        with read_transaction(self.engine) as connection:
            services = self._services(connection, caller)
            partner = policy.get_partner(connection, _organization(caller))
        return _capacity_state(services, partner.auto_decline_at_capacity)

    def set_capacity(self, caller: AccessContext, update: CapacityUpdate) -> CapacityState:
        organization = _organization(caller)
        with read_transaction(self.engine) as connection:
            services = self._services(connection, caller)
        if update.services is not None:
            wanted = {s.removeprefix("HealthcareService/") for s in update.services}
            unknown = wanted - {s["id"] for s in services}
            if unknown:
                raise ResourceNotFound(
                    "services names a HealthcareService your organization does not provide",
                    expression=("services",),
                )
            services = [s for s in services if s["id"] in wanted]
        if not services:
            service_id = f"{organization.removeprefix('Organization/')}-services"[:64]
            services = [new_service(organization, service_id, None)]
        for service in services:
            changed = with_capacity(service, update.status, update.note)
            self.service.update(caller, "HealthcareService", service["id"], changed)
        return self.get_capacity(caller)

    def _services(self, connection: Connection, caller: AccessContext) -> list[dict[str, Any]]:
        return services_of(connection, _organization(caller))

    # -- webhook -----------------------------------------------------------------------------

    def get_webhook(self, caller: AccessContext) -> Webhook:
        with read_transaction(self.engine) as connection:
            partner = policy.get_partner(connection, _organization(caller))
        return Webhook(url=partner.webhook_url, events=list(EVENT_TYPES))

    def set_webhook(self, caller: AccessContext, update: WebhookUpdate) -> Webhook:
        problem = webhook_url_problem(update.url)
        if problem is not None:
            raise BadRequest(f"url: {problem}", expression=("url",))
        if update.secret is not None:
            try:
                policy.check_webhook_secret(update.secret)
            except ValueError as error:
                raise BadRequest(f"secret: {error}", expression=("secret",)) from None
        with write_transaction(self.engine) as connection:
            secret = policy.set_webhook(
                connection, _organization(caller), update.url, update.secret
            )
        return Webhook(url=update.url, secret=secret, events=list(EVENT_TYPES))

    def delete_webhook(self, caller: AccessContext) -> None:
        with write_transaction(self.engine) as connection:
            policy.clear_webhook(connection, _organization(caller))

    def deliveries(self, caller: AccessContext, *, limit: int) -> DeliveryList:
        with read_transaction(self.engine) as connection:
            found = deliveries.recent(connection, _organization(caller), limit=limit)
        return DeliveryList(items=[_delivery(d) for d in found])

    def delivery(self, caller: AccessContext, delivery_id: str) -> DeliveryDetail:
        with read_transaction(self.engine) as connection:
            found = deliveries.one(connection, _organization(caller), delivery_id)
            if found is None:
                raise ResourceNotFound("Your organization has no webhook delivery with this id")
            attempts = deliveries.attempts(connection, delivery_id)
        return DeliveryDetail(
            **_delivery(found).model_dump(),
            attempts_log=[
                DeliveryAttempt(
                    attempt=a.attempt,
                    finished=format_instant(a.finished_at),
                    outcome=a.outcome,
                    status_code=a.status_code,
                    error=a.error,
                    duration_ms=a.duration_ms,
                )
                for a in attempts
            ],
        )

    def redeliver(
        self, caller: AccessContext, delivery_id: str, *, idempotency: IdempotentRequest
    ) -> Answer:
        organization = _organization(caller)

        def work(ctx: WriteContext) -> tuple[int, bytes, bytes]:
            if not deliveries.redeliver(ctx.connection, organization, delivery_id, now=ctx.now):
                raise ResourceNotFound("Your organization has no webhook delivery with this id")
            found = deliveries.one(ctx.connection, organization, delivery_id)
            assert found is not None  # it was just made due again
            body = _json(_delivery(found))
            return 202, body, body

        answer = self._once(caller, idempotency, work)
        if self.wake_outbox is not None:
            self.wake_outbox()
        return answer

    # -- API keys ----------------------------------------------------------------------------

    def list_api_keys(self, caller: AccessContext) -> ApiKeyList:
        with read_transaction(self.engine) as connection:
            keys = api_keys.list_api_keys(connection, _organization(caller))
        return ApiKeyList(items=[_key_info(k) for k in keys])

    def create_api_key(
        self, caller: AccessContext, label: str | None, *, idempotency: IdempotentRequest
    ) -> Answer:
        def work(ctx: WriteContext) -> tuple[int, bytes, bytes]:
            key = api_keys.new_api_key()
            stored = api_keys.store_api_key(ctx.connection, _organization(caller), key, label=label)
            created = ApiKeyCreated(**_key_info(stored).model_dump(), key=key)
            # a replay must not show the key again: it is kept as a digest only
            return 201, _json(created), _json(created.model_copy(update={"key": None}))

        return self._once(caller, idempotency, work)

    def revoke_api_key(self, caller: AccessContext, key_id: str) -> None:
        with write_transaction(self.engine) as connection:
            if not api_keys.revoke_api_key(connection, _organization(caller), key_id):
                raise ResourceNotFound("Your organization has no active key with this id")

    # -- codes -------------------------------------------------------------------------------

    def reason_codes(self) -> ReasonCodes:
        system, codes = reason_codes()
        return ReasonCodes(
            system=system,
            codes=[
                ReasonCode(
                    code=c.code, display=c.display, definition=c.definition, actions=list(c.actions)
                )
                for c in codes
            ],
        )

    # -- idempotency -------------------------------------------------------------------------

    def _once(
        self,
        caller: AccessContext,
        idempotency: IdempotentRequest,
        work: Callable[[WriteContext], tuple[int, bytes, bytes]],
    ) -> Answer:
        """Run ``work`` in one write transaction, recording its answer under the request's
        Idempotency-Key in the same transaction; a repeated key gets the recorded answer."""
        organization, key = _organization(caller), idempotency.key
        with self.service.writing(caller) as ctx:
            if key is not None:
                stored = stored_answer(ctx.connection, organization, key, idempotency.fingerprint)
                if stored is not None:
                    return Answer(stored.status_code, stored.body.encode())
            status, body, kept = work(ctx)
            if key is not None:
                store_answer(
                    ctx.connection,
                    organization,
                    key,
                    idempotency.fingerprint,
                    StoredAnswer(status, kept.decode()),
                )
        return Answer(status, body)


def _organization(caller: AccessContext) -> str:
    if caller.organization is None:
        raise BadRequest("This credential acts for no organization")
    return caller.organization


def _json(model: BaseModel | None) -> bytes:
    return model.model_dump_json(exclude_none=True).encode() if model is not None else b"{}"


def _filters(
    statuses: list[str], needs: list[str], updated_since: str | None
) -> list[tuple[str, str]]:
    if any(s not in REFERRAL_TASK_STATUSES for s in statuses):
        # name the statuses, not what was sent: errors never echo input
        raise BadRequest(
            f"status takes referral statuses: {', '.join(sorted(REFERRAL_TASK_STATUSES))}",
            expression=("status",),
        )
    pairs: list[tuple[str, str]] = []
    if statuses:
        pairs.append(("status", ",".join(statuses)))
    if needs:
        pairs.append(("focus:ServiceRequest.category", ",".join(needs)))
    if updated_since:
        try:
            date_range(updated_since)
        except InvalidDate as exc:
            raise BadRequest(
                "updated_since must be an ISO 8601 date or instant", expression=("updated_since",)
            ) from exc
        pairs.append(("_lastUpdated", f"gt{updated_since}"))
    return pairs


def _cursor(offset: int, pairs: list[tuple[str, str]]) -> str:
    token = orjson.dumps({"o": offset, "f": _digest(pairs)})
    return base64.urlsafe_b64encode(token).decode().rstrip("=")


def _offset_from(cursor: str | None, pairs: list[tuple[str, str]]) -> int:
    if cursor is None:
        return 0
    try:
        token = orjson.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        offset, digest = int(token["o"]), str(token["f"])
    except (binascii.Error, ValueError, KeyError, TypeError, orjson.JSONDecodeError) as exc:
        raise BadRequest("cursor is not one Loopgate gave out", expression=("cursor",)) from exc
    if digest != _digest(pairs) or offset < 0:
        raise BadRequest(
            "cursor belongs to a listing with other filters or sort", expression=("cursor",)
        )
    return offset


def _digest(pairs: list[tuple[str, str]]) -> str:
    return hashlib.sha256(orjson.dumps(pairs)).hexdigest()[:16]


def _key_info(key: api_keys.ApiKey) -> ApiKeyInfo:
    return ApiKeyInfo(
        id=key.id,
        prefix=key.prefix,
        label=key.label,
        created=_instant(key.created_at),
        last_used=_instant(key.last_used_at) if key.last_used_at else None,
        revoked=_instant(key.revoked_at) if key.revoked_at else None,
    )


def _instant(epoch_us: int) -> str:
    return format_instant(epoch_us)


def _delivery(found: deliveries.DeliveryRecord) -> Delivery:
    return Delivery(
        id=found.id,
        event=found.event,
        referral_id=found.referral_id,
        status=found.status,
        attempts=found.attempts,
        last_error=found.last_error,
        created=format_instant(found.created_at),
        delivered=format_instant(found.delivered_at) if found.delivered_at else None,
        next_attempt=format_instant(found.next_attempt_at) if found.pending else None,
    )


def _capacity_state(services: list[dict[str, Any]], auto_decline: bool) -> CapacityState:
    items = []
    for service in services:
        status, note = capacity_of(service)
        items.append(
            ServiceCapacity(
                service=f"HealthcareService/{service['id']}",
                name=service.get("name"),
                status=status if status in CAPACITY_CODES else None,
                note=note,
            )
        )
    return CapacityState(services=items, auto_decline_at_capacity=auto_decline)


__all__ = ["CboApi"]
