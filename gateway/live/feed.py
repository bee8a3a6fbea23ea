"""The referral-event feed in the database: append an organization's events in commit order,
read them after a position, and forget old ones."""

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, delete, select

from gateway.live.tables import event_table, sequence_table
from gateway.store import driver
from gateway.store.bulk_statements import insert_rows
from gateway.store.driver import Statement

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
    connection: Connection, events_by_organization: Mapping[str, Sequence[dict[str, Any]]]
) -> None:
    """Number each organization's events after its last one and insert them all.

    The organizations' sequence rows are bumped first, in sorted order (so writers never
    deadlock), and stay locked until the transaction ends: two writers for one organization
    take turns and their numbers commit in order. Call once per transaction.
    """
    counts = {
        organization: len(events)
        for organization, events in sorted(events_by_organization.items())
        if events
    }
    if not counts:
        return
    last = _bump(connection, counts)
    rows: list[tuple[Any, ...]] = []
    for organization, count in counts.items():
        first = last[organization] - count + 1
        rows.extend(
            (organization, first + offset, *(event[name] for name in _EVENT_COLUMNS))
            for offset, event in enumerate(events_by_organization[organization])
        )
    _INSERT_EVENTS.send(connection, rows)


def _bump(connection: Connection, counts: dict[str, int]) -> dict[str, int]:
    """``last_seq += count`` for each organization, in the order given (its first events
    create its row); the new values. One statement on PostgreSQL, one per organization on
    SQLite, which has no multi-row RETURNING through ``executemany``."""
    if len(counts) > 1 and connection.dialect.name != "sqlite":
        organizations, added = list(counts), list(counts.values())
        bumped = driver.rows(connection, _BUMP_MANY, (organizations, added))
        return {str(organization): int(value) for organization, value in bumped}
    last: dict[str, int] = {}
    for organization, count in counts.items():
        row = driver.first(connection, _BUMP, (organization, count))
        assert row is not None  # an upsert with RETURNING always returns its row
        last[organization] = int(row[0])
    return last


_BUMP = Statement(
    "INSERT INTO referral_event_sequence (organization, last_seq) VALUES (?, ?) "
    "ON CONFLICT (organization) DO UPDATE "
    "SET last_seq = referral_event_sequence.last_seq + excluded.last_seq RETURNING last_seq"
)
_BUMP_MANY = Statement(  # PostgreSQL only (``_bump``)
    "INSERT INTO referral_event_sequence (organization, last_seq) "
    "SELECT * FROM unnest(?::varchar[], ?::bigint[]) "
    "ON CONFLICT (organization) DO UPDATE "
    "SET last_seq = referral_event_sequence.last_seq + excluded.last_seq "
    "RETURNING organization, last_seq",
    binary=True,
)
"""``_BUMP`` for several organizations, their rows locked in the order given."""
_EVENT_COLUMNS = (
    "type",
    "referral_id",
    "version",
    "status",
    "previous_status",
    "changed_by",
    "message_number",
    "created_at",
)
_INSERT_EVENTS = insert_rows(event_table, ("organization", "seq", *_EVENT_COLUMNS))


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
