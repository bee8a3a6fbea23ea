"""A partner's webhook delivery log: its events on the outbox, how each went, redelivery.

Only the partner's own messages are ever shown (``destination`` is its organization), and
of a payload only the event type: the rest is in the referral the partner reads anyway.
"""

from dataclasses import dataclass

import orjson
from sqlalchemy import Connection, select

from gateway.outbox import AttemptRecord, message_attempts, redeliver_message
from gateway.outbox.messages import PENDING
from gateway.referrals.events import WEBHOOK_KIND
from gateway.store.tables import outbox_table

M = outbox_table.c
_COLUMNS = (
    M.id,
    M.ordering_key,
    M.payload,
    M.status,
    M.attempts,
    M.last_error,
    M.created_at,
    M.delivered_at,
    M.next_attempt_at,
)


@dataclass(frozen=True)
class DeliveryRecord:
    id: str
    event: str
    referral_id: str | None
    status: str
    attempts: int
    last_error: str | None
    created_at: int
    delivered_at: int | None
    next_attempt_at: int

    @property
    def pending(self) -> bool:
        return self.status == PENDING


def recent(connection: Connection, organization: str, *, limit: int) -> list[DeliveryRecord]:
    """The organization's webhook events, newest first."""
    rows = connection.execute(
        select(*_COLUMNS)
        .where(M.kind == WEBHOOK_KIND, M.destination == organization)
        .order_by(M.seq.desc())
        .limit(limit)
    )
    return [_record(row) for row in rows]


def one(connection: Connection, organization: str, delivery_id: str) -> DeliveryRecord | None:
    row = connection.execute(
        select(*_COLUMNS).where(
            M.id == delivery_id, M.kind == WEBHOOK_KIND, M.destination == organization
        )
    ).first()
    return None if row is None else _record(row)


def attempts(connection: Connection, delivery_id: str) -> list[AttemptRecord]:
    return message_attempts(connection, delivery_id)


def redeliver(connection: Connection, organization: str, delivery_id: str, *, now: int) -> bool:
    """Send the organization's event again with its own id; False if it has no such event."""
    if one(connection, organization, delivery_id) is None:
        return False
    return redeliver_message(connection, delivery_id, now=now)


def _record(row: object) -> DeliveryRecord:
    values = row._mapping  # type: ignore[attr-defined]
    return DeliveryRecord(
        id=values["id"],
        event=str(orjson.loads(values["payload"]).get("type", "")),
        referral_id=values["ordering_key"],
        status=values["status"],
        attempts=values["attempts"],
        last_error=values["last_error"],
        created_at=values["created_at"],
        delivered_at=values["delivered_at"],
        next_attempt_at=values["next_attempt_at"],
    )
