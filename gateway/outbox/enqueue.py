"""``enqueue``: add a message to the outbox inside the caller's own write transaction."""

from collections.abc import Sequence
from typing import Any

import orjson
from sqlalchemy import Connection, insert

from gateway.fhir.ids import new_resource_id
from gateway.fhir.write_context import now_us
from gateway.outbox.messages import PENDING
from gateway.store.bulk_statements import insert_rows
from gateway.store.tables import outbox_table


def enqueue(
    connection: Connection,
    *,
    kind: str,
    destination: str,
    ordering_key: str | None,
    payload: dict[str, Any],
) -> str:
    """Insert a message in ``connection``'s transaction and return its id (the event id).

    It commits or rolls back with the change that caused it, so it is never sent for a change
    that did not happen and never lost for one that did. Messages of one ``kind``,
    ``destination`` and ``ordering_key`` (e.g. one referral's events to one CBO) are delivered
    one at a time in the order their transactions inserted them; None means no order. Wake the
    worker after the commit (``OutboxWorker.wake()``) for prompt delivery.
    """
    message_id = new_resource_id()
    now = now_us()
    connection.execute(
        insert(outbox_table).values(
            id=message_id,
            kind=kind,
            destination=destination,
            ordering_key=ordering_key,
            payload=orjson.dumps(payload).decode(),
            created_at=now,
            status=PENDING,
            attempts=0,
            next_attempt_at=now,
            pending_since=now,
        )
    )
    return message_id


def enqueue_many(
    connection: Connection,
    *,
    kind: str,
    messages: Sequence[tuple[str, str | None, dict[str, Any]]],
) -> list[str]:
    """``enqueue`` for several (destination, ordering key, payload) in one statement, inserted
    in the order given; returns their ids."""
    now = now_us()
    rows = [
        (
            new_resource_id(),
            kind,
            destination,
            ordering_key,
            orjson.dumps(payload).decode(),
            now,
            PENDING,
            0,
            now,
            now,
        )
        for destination, ordering_key, payload in messages
    ]
    _INSERT_MESSAGES.send(connection, rows)
    return [str(row[0]) for row in rows]


_INSERT_MESSAGES = insert_rows(
    outbox_table,
    (
        "id",
        "kind",
        "destination",
        "ordering_key",
        "payload",
        "created_at",
        "status",
        "attempts",
        "next_attempt_at",
        "pending_since",
    ),
)
"""Every column but ``seq``, which the database numbers in the order the rows come."""
