"""The referral-event feed in the database: append an organization's events in commit order,
read them after a position, and forget old ones."""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Connection, bindparam, delete, insert, select
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gateway.live.tables import event_table, sequence_table
from gateway.store.engine import is_sqlite

_E = event_table.c
_S = sequence_table.c


@dataclass(frozen=True)
class FeedEvent:
    """One stored event, as a stream sends it (``seq`` is the SSE event id)."""

    seq: int
    type: str
    referral_id: str
    version: int
    status: str
    previous_status: str | None
    changed_by: str | None
    message_number: int | None
    created_at: int


def append_events(
    connection: Connection, organization: str, events: Sequence[dict[str, Any]]
) -> None:
    """Number ``events`` after the organization's last one and insert them.

    The sequence row is bumped first and stays locked until the transaction ends, so two
    writers for one organization take turns and their numbers commit in order. Call once per
    organization per transaction, organizations in sorted order (no deadlock between writers).
    """
    if not events:
        return
    bump = _BUMP_SQLITE if is_sqlite(connection) else _BUMP_POSTGRESQL
    last = int(
        connection.execute(bump, {"organization": organization, "count": len(events)}).scalar_one()
    )
    first = last - len(events) + 1
    connection.execute(
        _INSERT_EVENTS,
        [
            {**event, "organization": organization, "seq": first + offset}
            for offset, event in enumerate(events)
        ],
    )


def _bump(upsert: Any) -> Any:
    """``last_seq += count`` for one organization (its first events create the row), returning
    the new value; built once per dialect, as building it cost more than running it."""
    count = bindparam("count", type_=BigInteger)
    return (
        upsert(sequence_table)
        .values(organization=bindparam("organization"), last_seq=count)
        .on_conflict_do_update(
            index_elements=[_S.organization], set_={"last_seq": _S.last_seq + count}
        )
        .returning(_S.last_seq)
    )


_BUMP_SQLITE = _bump(sqlite_insert)
_BUMP_POSTGRESQL = _bump(postgresql_insert)
_INSERT_EVENTS = insert(event_table)


def last_seq(connection: Connection, organization: str) -> int:
    """The organization's newest event number (0 before its first event)."""
    found = connection.execute(
        select(_S.last_seq).where(_S.organization == organization)
    ).scalar_one_or_none()
    return int(found or 0)


def last_seqs(connection: Connection, organizations: Iterable[str]) -> dict[str, int]:
    """``last_seq`` of several organizations at once (absent: no events yet)."""
    wanted = sorted(set(organizations))
    if not wanted:
        return {}
    rows = connection.execute(
        select(_S.organization, _S.last_seq).where(_S.organization.in_(wanted))
    )
    return {row.organization: int(row.last_seq) for row in rows}


def events_after(
    connection: Connection, organization: str, after: int, *, limit: int
) -> list[FeedEvent]:
    """The organization's events numbered above ``after``, oldest first."""
    rows = connection.execute(
        select(event_table)
        .where(_E.organization == organization, _E.seq > after)
        .order_by(_E.seq)
        .limit(limit)
    )
    return [
        FeedEvent(
            seq=int(row.seq),
            type=row.type,
            referral_id=row.referral_id,
            version=row.version,
            status=row.status,
            previous_status=row.previous_status,
            changed_by=row.changed_by,
            message_number=row.message_number,
            created_at=int(row.created_at),
        )
        for row in rows
    ]


def purge_events(connection: Connection, *, before: int) -> int:
    """Delete events recorded before ``before`` (epoch µs); the sequence rows stay, so numbers
    keep growing and a client's old position stays meaningful."""
    return int(connection.execute(delete(event_table).where(_E.created_at < before)).rowcount)
