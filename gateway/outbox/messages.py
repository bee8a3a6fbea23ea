"""What a delivery handler receives (``OutboxMessage``) and returns (``DeliveryResult``)."""

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

import orjson

PENDING = "pending"
DELIVERED = "delivered"
DEAD = "dead"
STATUSES = (PENDING, DELIVERED, DEAD)

REASON_LENGTH = 200
"""``last_error`` and the attempt log keep this much of a reason."""


@dataclass(frozen=True)
class OutboxMessage:
    """One claimed message. ``id`` is the event id: send it on every attempt (e.g. as
    ``webhook-id``) so receivers can drop repeats; delivery is at least once."""

    id: str
    kind: str
    destination: str
    ordering_key: str | None
    payload_json: str
    """The payload exactly as enqueued (JSON text): sign and send these bytes."""
    created_at: int
    attempt: int
    """1 for the first attempt, counting every claim (a crashed attempt counts too)."""

    @property
    def payload(self) -> dict[str, Any]:
        value: dict[str, Any] = orjson.loads(self.payload_json)
        return value


@dataclass(frozen=True)
class DeliveryResult:
    """How an attempt ended. ``reason`` is short and PHI-free ("HTTP 503", "timeout",
    "connection refused"): never a response body, payload or exception text."""

    outcome: Literal["delivered", "retry", "dead"]
    reason: str = ""
    status_code: int | None = None
    retry_after_s: float | None = None
    """The receiver's Retry-After, honoured up to the retry cap."""

    @classmethod
    def delivered(cls, *, status_code: int | None = None) -> "DeliveryResult":
        return cls("delivered", "", status_code)

    @classmethod
    def retry(
        cls, reason: str, *, status_code: int | None = None, retry_after_s: float | None = None
    ) -> "DeliveryResult":
        return cls("retry", reason, status_code, retry_after_s)

    @classmethod
    def dead(cls, reason: str, *, status_code: int | None = None) -> "DeliveryResult":
        return cls("dead", reason, status_code)


Handler = Callable[[OutboxMessage], Awaitable[DeliveryResult]]
"""Delivers one message of a kind. Raising counts as a retry (recorded by exception class
name only); so does running past the worker's handler deadline."""
