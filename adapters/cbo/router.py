"""The ``/api/v1`` routes: parse, authenticate, call ``CboCore``, answer JSON.

Documented by the OpenAPI 3.1 document FastAPI generates for the sub-application gateway mounts;
every error answers ``application/problem+json``.
"""

import functools
import hashlib
from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Header, Path, Query, Request
from starlette.responses import Response

from adapters.cbo.ports import CboCore, IdempotentRequest
from adapters.cbo.problems import PROBLEM_DOCS
from adapters.cbo.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyList,
    CapacityState,
    CapacityUpdate,
    Delivery,
    DeliveryDetail,
    DeliveryList,
    MessageList,
    Problem,
    ReasonCodes,
    ReferralPage,
    Webhook,
    WebhookUpdate,
)
from conformance.access import AccessContext
from conformance.errors import ResourceNotFound
from fhir_mappings import (
    AcceptAction,
    CancelAction,
    CompleteAction,
    DeclineAction,
    FailAction,
    HoldAction,
    MessageAction,
    MessageView,
    ReferralAction,
    ReferralView,
    ResumeAction,
    StartAction,
)

Authenticate = Callable[[Request], Awaitable[AccessContext]]
JSON = "application/json"

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "Malformed request"},
    401: {"model": Problem, "description": "Missing or invalid credentials"},
    403: {"model": Problem, "description": "Not allowed for your organization"},
    404: {"model": Problem, "description": "No such record for your organization"},
    422: {"model": Problem, "description": "A rule of the referral workflow refuses it"},
}
_ACTIONS: list[str | Enum] = ["referral actions"]
_ID = Annotated[str, Path(pattern=r"^[A-Za-z0-9\-.]{1,64}$", description="The referral id")]
_IDEMPOTENCY = Annotated[
    str | None,
    Header(
        alias="Idempotency-Key",
        max_length=255,
        description="Send the same key when retrying: the first answer is replayed, the action "
        "is not repeated (kept 24 hours)",
    ),
]


async def _post(request: Request, key: str | None) -> IdempotentRequest:
    body = await request.body()
    digest = hashlib.sha256(f"{request.method} {request.url.path}\n".encode() + body).hexdigest()
    return IdempotentRequest(key, digest)


def cbo_router(core: CboCore, authenticate: Authenticate) -> APIRouter:
    router = APIRouter(responses=_ERRORS)

    @router.get("/referrals", response_model=ReferralPage, tags=["referrals"])
    async def list_referrals(
        request: Request,
        status: Annotated[
            list[str] | None, Query(description="Task statuses (repeat or comma)")
        ] = None,
        need: Annotated[list[str] | None, Query(description="SDOH category codes")] = None,
        updated_since: Annotated[
            str | None, Query(description="Only referrals changed after this instant (ISO 8601)")
        ] = None,
        sort: Annotated[
            Literal["updated", "-updated", "created", "-created"], Query()
        ] = "-updated",
        limit: Annotated[int, Query(ge=1, le=200)] = 50,
        cursor: Annotated[str | None, Query(max_length=2000)] = None,
    ) -> ReferralPage:
        """Your referrals: the ones you own and open ones any organization may take."""
        caller = await authenticate(request)
        return core.list_referrals(
            caller,
            statuses=_split(status),
            needs=_split(need),
            updated_since=updated_since,
            sort=sort,
            limit=limit,
            cursor=cursor,
        )

    @router.get("/referrals/{referral_id}", response_model=ReferralView, tags=["referrals"])
    async def get_referral(request: Request, referral_id: _ID) -> ReferralView:
        return core.get_referral(await authenticate(request), referral_id)

    async def act(
        request: Request, referral_id: str, action: ReferralAction, key: str | None
    ) -> Response:
        caller = await authenticate(request)
        idempotency = await _post(request, key)
        answer = await core.run_write(
            functools.partial(core.act, caller, referral_id, action, idempotency=idempotency)
        )
        return Response(answer.body, status_code=answer.status_code, media_type=JSON)

    @router.post("/referrals/{referral_id}/accept", response_model=ReferralView, tags=_ACTIONS)
    async def accept(
        request: Request,
        referral_id: _ID,
        action: Annotated[AcceptAction | None, Body()] = None,
        idempotency_key: _IDEMPOTENCY = None,
    ) -> Response:
        """Accept the referral: you will serve this client."""
        return await act(request, referral_id, action or AcceptAction(), idempotency_key)

    @router.post("/referrals/{referral_id}/decline", response_model=ReferralView, tags=_ACTIONS)
    async def decline(
        request: Request,
        referral_id: _ID,
        action: DeclineAction,
        idempotency_key: _IDEMPOTENCY = None,
    ) -> Response:
        """Decline, with a coded reason and a sentence the referrer will read."""
        return await act(request, referral_id, action, idempotency_key)

    @router.post("/referrals/{referral_id}/start", response_model=ReferralView, tags=_ACTIONS)
    async def start(
        request: Request,
        referral_id: _ID,
        action: Annotated[StartAction | None, Body()] = None,
        idempotency_key: _IDEMPOTENCY = None,
    ) -> Response:
        """Start working with the client."""
        return await act(request, referral_id, action or StartAction(), idempotency_key)

    @router.post("/referrals/{referral_id}/hold", response_model=ReferralView, tags=_ACTIONS)
    async def hold(
        request: Request, referral_id: _ID, action: HoldAction, idempotency_key: _IDEMPOTENCY = None
    ) -> Response:
        """Pause, with a reason (waitlisted, needs client action …)."""
        return await act(request, referral_id, action, idempotency_key)

    @router.post("/referrals/{referral_id}/resume", response_model=ReferralView, tags=_ACTIONS)
    async def resume(
        request: Request,
        referral_id: _ID,
        action: Annotated[ResumeAction | None, Body()] = None,
        idempotency_key: _IDEMPOTENCY = None,
    ) -> Response:
        """Resume after a hold."""
        return await act(request, referral_id, action or ResumeAction(), idempotency_key)

    @router.post("/referrals/{referral_id}/complete", response_model=ReferralView, tags=_ACTIONS)
    async def complete(
        request: Request,
        referral_id: _ID,
        action: CompleteAction,
        idempotency_key: _IDEMPOTENCY = None,
    ) -> Response:
        """Complete with the outcome: Loopgate records a Procedure the referrer can read."""
        return await act(request, referral_id, action, idempotency_key)

    @router.post("/referrals/{referral_id}/fail", response_model=ReferralView, tags=_ACTIONS)
    async def fail(
        request: Request, referral_id: _ID, action: FailAction, idempotency_key: _IDEMPOTENCY = None
    ) -> Response:
        """It could not be done, with a reason."""
        return await act(request, referral_id, action, idempotency_key)

    @router.post("/referrals/{referral_id}/cancel", response_model=ReferralView, tags=_ACTIONS)
    async def cancel(
        request: Request,
        referral_id: _ID,
        action: CancelAction,
        idempotency_key: _IDEMPOTENCY = None,
    ) -> Response:
        """Cancel, with a reason."""
        return await act(request, referral_id, action, idempotency_key)

    @router.get("/referrals/{referral_id}/messages", response_model=MessageList, tags=["messages"])
    async def list_messages(request: Request, referral_id: _ID) -> MessageList:
        """The conversation on a referral, oldest first; both sides see it."""
        return core.messages(await authenticate(request), referral_id)

    @router.post(
        "/referrals/{referral_id}/messages",
        response_model=MessageView,
        status_code=201,
        tags=["messages"],
    )
    async def post_message(
        request: Request,
        referral_id: _ID,
        message: MessageAction,
        idempotency_key: _IDEMPOTENCY = None,
    ) -> Response:
        """Add a message; the referring organization sees it on the FHIR Task as a note."""
        caller = await authenticate(request)
        idempotency = await _post(request, idempotency_key)
        answer = await core.run_write(
            functools.partial(core.act, caller, referral_id, message, idempotency=idempotency)
        )
        return Response(answer.body, status_code=answer.status_code, media_type=JSON)

    @router.get("/capacity", response_model=CapacityState, tags=["capacity"])
    async def get_capacity(request: Request) -> CapacityState:
        return core.get_capacity(await authenticate(request))

    @router.put("/capacity", response_model=CapacityState, tags=["capacity"])
    async def put_capacity(request: Request, update: CapacityUpdate) -> CapacityState:
        """Say whether you can take referrals (the Gravity capacity status of your services)."""
        return core.set_capacity(await authenticate(request), update)

    @router.get("/webhook", response_model=Webhook, tags=["webhook"])
    async def get_webhook(request: Request) -> Webhook:
        return core.get_webhook(await authenticate(request))

    @router.put("/webhook", response_model=Webhook, tags=["webhook"])
    async def put_webhook(request: Request, update: WebhookUpdate) -> Webhook:
        """Where Loopgate POSTs events, signed with the Standard Webhooks scheme."""
        return core.set_webhook(await authenticate(request), update)

    @router.delete("/webhook", status_code=204, tags=["webhook"])
    async def delete_webhook(request: Request) -> Response:
        core.delete_webhook(await authenticate(request))
        return Response(status_code=204)

    @router.get("/webhook/deliveries", response_model=DeliveryList, tags=["webhook"])
    async def deliveries(
        request: Request, limit: Annotated[int, Query(ge=1, le=500)] = 100
    ) -> DeliveryList:
        """Recent events for you and how their delivery went, newest first."""
        return core.deliveries(await authenticate(request), limit=limit)

    @router.get(
        "/webhook/deliveries/{delivery_id}", response_model=DeliveryDetail, tags=["webhook"]
    )
    async def delivery(
        request: Request, delivery_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9\-]{1,64}$")]
    ) -> DeliveryDetail:
        """One event and every attempt to deliver it."""
        return core.delivery(await authenticate(request), delivery_id)

    @router.post(
        "/webhook/deliveries/{delivery_id}/redeliver",
        response_model=Delivery,
        status_code=202,
        tags=["webhook"],
    )
    async def redeliver(
        request: Request,
        delivery_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9\-]{1,64}$")],
        idempotency_key: _IDEMPOTENCY = None,
    ) -> Response:
        """Send an event again (it keeps its id, so receivers can tell a repeat)."""
        caller = await authenticate(request)
        answer = core.redeliver(
            caller, delivery_id, idempotency=await _post(request, idempotency_key)
        )
        return Response(answer.body, status_code=answer.status_code, media_type=JSON)

    @router.get("/api-keys", response_model=ApiKeyList, tags=["api keys"])
    async def list_api_keys(request: Request) -> ApiKeyList:
        return core.list_api_keys(await authenticate(request))

    @router.post("/api-keys", response_model=ApiKeyCreated, status_code=201, tags=["api keys"])
    async def create_api_key(
        request: Request,
        body: ApiKeyCreate | None = None,
        idempotency_key: _IDEMPOTENCY = None,
    ) -> Response:
        """A new key for your organization, shown in this answer only."""
        caller = await authenticate(request)
        answer = core.create_api_key(
            caller,
            body.label if body else None,
            idempotency=await _post(request, idempotency_key),
        )
        return Response(answer.body, status_code=answer.status_code, media_type=JSON)

    @router.delete("/api-keys/{key_id}", status_code=204, tags=["api keys"])
    async def revoke_api_key(
        request: Request, key_id: Annotated[str, Path(pattern=r"^[A-Za-z0-9\-]{1,64}$")]
    ) -> Response:
        core.revoke_api_key(await authenticate(request), key_id)
        return Response(status_code=204)

    @router.get("/codes/reasons", response_model=ReasonCodes, tags=["codes"])
    async def reason_codes() -> ReasonCodes:
        """The reason and outcome codes actions take (Loopgate's referral-reason CodeSystem)."""
        return core.reason_codes()

    @router.get("/problems/{slug}", tags=["problems"], include_in_schema=False)
    async def problem_doc(slug: str) -> dict[str, str]:
        if slug not in PROBLEM_DOCS:
            raise ResourceNotFound("There is no such problem type")
        return {"type": slug, "description": PROBLEM_DOCS[slug]}

    return router


def _split(values: list[str] | None) -> list[str]:
    return [v for value in values or [] for v in value.split(",") if v]
