"""The ``/api/v1/events`` routes: an organization's live referral events as Server-Sent
Events, with a bearer credential or with a one-time ticket (for browsers' ``EventSource``).

The streams are left out of the OpenAPI document (an endless response is not something a
schema client can call; the README documents them); the ticket operation is in it.
"""

import asyncio
import re
from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from pydantic import BaseModel, Field
from sqlalchemy import Engine
from starlette.responses import StreamingResponse

from adapters.cbo.schemas import Problem
from conformance.access import AccessContext
from conformance.errors import BadRequest, Forbidden, Unauthenticated
from gateway.fhir.write_context import now_us
from gateway.live.hub import LiveHub
from gateway.live.stream import StreamOptions, current_position, event_stream
from gateway.live.tickets import TICKET_TTL_S, issue_ticket, looks_like_ticket, redeem_ticket
from gateway.store.engine import write_transaction

Authenticate = Callable[[Request], Awaitable[AccessContext]]
EVENT_STREAM = "text/event-stream"
_EVENT_ID = re.compile(r"^[0-9]{1,18}$")
_STREAM_HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
_SINCE = Annotated[
    int | None,
    Query(
        ge=0,
        le=2**62,
        description="Resume after this event id (for clients that cannot send Last-Event-ID)",
    ),
]
_LAST_EVENT_ID = Annotated[str | None, Header(alias="Last-Event-ID", max_length=32)]


class StreamTicket(BaseModel):
    url: str = Field(description="Open this with EventSource within expires_in seconds, once")
    expires_in: int = Field(description="Seconds the ticket stays usable")


def live_router(
    *, authenticate: Authenticate, hub: LiveHub, engine: Engine, options: StreamOptions
) -> APIRouter:
    router = APIRouter()

    async def stream(organization: str, last_event_id: str | None, since: int | None) -> Any:
        after = _position(last_event_id, since)
        if after is None:
            after = await asyncio.to_thread(current_position, engine, organization)
        return StreamingResponse(
            event_stream(
                hub=hub, engine=engine, organization=organization, after=after, options=options
            ),
            media_type=EVENT_STREAM,
            headers=_STREAM_HEADERS,
        )

    @router.get("/events", include_in_schema=False)
    async def events(
        request: Request, since: _SINCE = None, last_event_id: _LAST_EVENT_ID = None
    ) -> Any:
        caller = await authenticate(request)
        return await stream(_organization(caller), last_event_id, since)

    @router.post(
        "/events/tickets",
        response_model=StreamTicket,
        status_code=201,
        tags=["live updates"],
        responses={
            401: {"model": Problem, "description": "Missing or invalid credentials"},
            403: {"model": Problem, "description": "Not allowed for your organization"},
        },
    )
    async def ticket(request: Request) -> StreamTicket:
        """A one-time address of your event stream for a browser's EventSource, which cannot
        send an Authorization header: usable once, within a minute."""
        caller = await authenticate(request)
        organization = _organization(caller)

        def issue() -> str:
            with write_transaction(engine) as connection:
                return issue_ticket(
                    connection,
                    organization=organization,
                    client_id=caller.client_id,
                    now=now_us(),
                )

        secret = await asyncio.to_thread(issue)
        return StreamTicket(
            url=f"{options.api_base}/events/stream/{secret}", expires_in=TICKET_TTL_S
        )

    @router.get("/events/stream/{ticket}", include_in_schema=False)
    async def ticket_stream(
        ticket: str, since: _SINCE = None, last_event_id: _LAST_EVENT_ID = None
    ) -> Any:
        def redeem() -> str | None:
            with write_transaction(engine) as connection:
                holder = redeem_ticket(connection, ticket, now=now_us())
            return None if holder is None else holder.organization

        organization = await asyncio.to_thread(redeem) if looks_like_ticket(ticket) else None
        if organization is None:
            raise Unauthenticated(
                "This stream ticket is unknown, used or expired; ask for a new one "
                "(POST /api/v1/events/tickets)"
            )
        return await stream(organization, last_event_id, since)

    return router


def _organization(caller: AccessContext) -> str:
    """Streams are per organization, and carry what reading its referrals would show."""
    if caller.organization is None:
        raise Forbidden("Live updates are per organization; this credential acts for none")
    if caller.grants is not None and not any(
        grant.level != "patient" and grant.covers("Task", "r") for grant in caller.grants
    ):
        raise Forbidden("This credential may not read referrals (it needs Task read access)")
    return caller.organization


def _position(last_event_id: str | None, since: int | None) -> int | None:
    """Where to resume: the browser's own ``Last-Event-ID`` on a reconnect wins over the
    ``since`` the page put in the address when it first connected."""
    if last_event_id is None or not last_event_id.strip():
        return since
    if not _EVENT_ID.match(last_event_id.strip()):
        raise BadRequest("Last-Event-ID must be an event id this stream sent (digits)")
    return int(last_event_id.strip())
