"""One organization's event stream in the Server-Sent Events format
(https://html.spec.whatwg.org/multipage/server-sent-events.html): ``retry:`` first, then each
event with its number as ``id:``, and ``: keep-alive`` comments while nothing happens."""

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import Engine

from conformance.fhir_time import format_instant
from gateway.live.feed import FeedEvent, events_after, last_seq
from gateway.live.hub import LiveHub
from gateway.referrals.events import MESSAGE_CREATED
from gateway.store.engine import read_transaction

BATCH = 100
KEEP_ALIVE = b": keep-alive\n\n"


@dataclass(frozen=True)
class StreamOptions:
    api_base: str
    keepalive_s: float
    retry_ms: int


def event_payload(event: FeedEvent, *, api_base: str) -> dict[str, Any]:
    """The webhook payload shape (``type``, ``timestamp``, ``data``), PHI-free."""
    url = f"{api_base}/referrals/{event.referral_id}"
    data: dict[str, Any] = {
        "referral_id": event.referral_id,
        "version": event.version,
        "status": event.status,
    }
    if event.changed_by is not None:
        data["changed_by"] = event.changed_by
    if event.previous_status is not None:
        data["previous_status"] = event.previous_status
    if event.type == MESSAGE_CREATED:
        data["message_number"] = event.message_number
        url += "/messages"
    data["url"] = url
    return {"type": event.type, "timestamp": format_instant(event.created_at), "data": data}


def sse_event(event: FeedEvent, *, api_base: str) -> bytes:
    data = orjson.dumps(event_payload(event, api_base=api_base))
    return b"id: %d\nevent: %s\ndata: %s\n\n" % (event.seq, event.type.encode(), data)


def current_position(engine: Engine, organization: str) -> int:
    with read_transaction(engine) as connection:
        return last_seq(connection, organization)


def _read(engine: Engine, organization: str, after: int) -> list[FeedEvent]:
    with read_transaction(engine) as connection:
        return events_after(connection, organization, after, limit=BATCH)


async def event_stream(
    *, hub: LiveHub, engine: Engine, organization: str, after: int, options: StreamOptions
) -> AsyncIterator[bytes]:
    """Events numbered above ``after``, then each new one as it commits, until the client
    leaves or the hub closes (app shutdown)."""
    yield b"retry: %d\n\n" % options.retry_ms
    with hub.listening(organization) as listener:
        while not hub.closed:
            bell = listener.bell()
            events = await asyncio.to_thread(_read, engine, organization, after)
            for event in events:
                yield sse_event(event, api_base=options.api_base)
                after = event.seq
            if len(events) == BATCH:
                continue
            rung = await listener.wait(bell, options.keepalive_s)
            if not rung:
                yield KEEP_ALIVE
