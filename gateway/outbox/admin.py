"""What operators (the CLI, the JSON API) see and do: list messages and their attempts,
retry dead or failing ones, purge old ones. Payloads are never read here."""

from dataclasses import dataclass

from sqlalchemy import Connection, RowMapping, and_, delete, or_, select, update

from gateway.outbox.messages import DEAD, DELIVERED, PENDING
from gateway.store.tables import outbox_attempt_table, outbox_table

_m = outbox_table.c
_a = outbox_attempt_table.c


@dataclass(frozen=True)
class MessageSummary:
    """An outbox message without its payload. Times are epoch µs."""

    id: str
    kind: str
    destination: str
    ordering_key: str | None
    status: str
    attempts: int
    created_at: int
    next_attempt_at: int
    last_error: str | None
    delivered_at: int | None
    dead_at: int | None
    in_flight: bool
    """Claimed by a worker right now (its lease has not run out)."""


@dataclass(frozen=True)
class AttemptRecord:
    attempt: int
    finished_at: int
    duration_ms: int | None
    outcome: str
    """delivered | retry | dead | abandoned"""
    status_code: int | None
    error: str | None
    worker: str


_SUMMARY_COLUMNS = (
    _m.id,
    _m.kind,
    _m.destination,
    _m.ordering_key,
    _m.status,
    _m.attempts,
    _m.created_at,
    _m.next_attempt_at,
    _m.last_error,
    _m.delivered_at,
    _m.dead_at,
    _m.claimed_until,
)


def _summary(values: RowMapping, now: int) -> MessageSummary:
    claimed_until = values["claimed_until"]
    return MessageSummary(
        id=values["id"],
        kind=values["kind"],
        destination=values["destination"],
        ordering_key=values["ordering_key"],
        status=values["status"],
        attempts=values["attempts"],
        created_at=values["created_at"],
        next_attempt_at=values["next_attempt_at"],
        last_error=values["last_error"],
        delivered_at=values["delivered_at"],
        dead_at=values["dead_at"],
        in_flight=values["status"] == PENDING and claimed_until is not None and claimed_until > now,
    )


def list_messages(
    connection: Connection,
    *,
    now: int,
    status: str | None = None,
    kind: str | None = None,
    destination: str | None = None,
    limit: int = 50,
) -> list[MessageSummary]:
    """Newest first."""
    query = select(*_SUMMARY_COLUMNS).order_by(_m.seq.desc()).limit(limit)
    if status is not None:
        query = query.where(_m.status == status)
    if kind is not None:
        query = query.where(_m.kind == kind)
    if destination is not None:
        query = query.where(_m.destination == destination)
    return [_summary(row._mapping, now) for row in connection.execute(query)]


def get_message(connection: Connection, message_id: str, *, now: int) -> MessageSummary | None:
    row = connection.execute(select(*_SUMMARY_COLUMNS).where(_m.id == message_id)).first()
    return None if row is None else _summary(row._mapping, now)


def message_attempts(connection: Connection, message_id: str) -> list[AttemptRecord]:
    """Every recorded attempt of one message, first to last."""
    rows = connection.execute(
        select(
            _a.attempt,
            _a.finished_at,
            _a.duration_ms,
            _a.outcome,
            _a.status_code,
            _a.error,
            _a.worker,
        )
        .where(_a.message_id == message_id)
        .order_by(_a.attempt)
    )
    return [AttemptRecord(**row._mapping) for row in rows]


def retry_message(connection: Connection, message_id: str, *, now: int) -> bool:
    """Make one dead or pending message due now (a dead one gets a fresh give-up age);
    False if there is no such message or it was delivered."""
    row = connection.execute(
        select(_m.seq, _m.status).where(_m.id == message_id, _m.status != DELIVERED)
    ).first()
    if row is None:
        return False
    _make_due(connection, [row.seq], now=now)
    return True


def redeliver_message(connection: Connection, message_id: str, *, now: int) -> bool:
    """Send one message again, whatever became of it (a receiver that lost a delivered event
    asks for it once more); it keeps its id. False if there is no such message."""
    row = connection.execute(select(_m.seq, _m.status).where(_m.id == message_id)).first()
    if row is None:
        return False
    if row.status == DELIVERED:
        connection.execute(
            update(outbox_table)
            .where(_m.seq == row.seq)
            .values(status=DEAD, dead_at=now, delivered_at=None)
        )
    _make_due(connection, [row.seq], now=now)
    return True


def retry_dead(connection: Connection, *, now: int) -> int:
    """Make every dead message due now, with a fresh give-up age; returns how many."""
    seqs = list(connection.execute(select(_m.seq).where(_m.status == DEAD)).scalars())
    _make_due(connection, seqs, now=now)
    return len(seqs)


def _make_due(connection: Connection, seqs: list[int], *, now: int) -> None:
    """A revived message goes after the later messages of its key that were already
    delivered; receivers order by the event's own time, as they must with at-least-once."""
    for start in range(0, len(seqs), 500):
        chunk = seqs[start : start + 500]
        connection.execute(
            update(outbox_table)
            .where(_m.seq.in_(chunk), _m.status == DEAD)
            .values(status=PENDING, pending_since=now, dead_at=None)
        )
        connection.execute(
            update(outbox_table)
            .where(_m.seq.in_(chunk), _m.status == PENDING)
            .values(next_attempt_at=now)
        )
        # the later messages of these keys were held back to the old retry time
        earlier = outbox_table.alias("revived")
        connection.execute(
            update(outbox_table)
            .where(
                _m.status == PENDING,
                _m.next_attempt_at > now,
                select(earlier.c.seq)
                .where(
                    earlier.c.seq.in_(chunk),
                    earlier.c.kind == _m.kind,
                    earlier.c.destination == _m.destination,
                    earlier.c.ordering_key == _m.ordering_key,
                    earlier.c.seq < _m.seq,
                )
                .exists(),
            )
            .values(next_attempt_at=now)
        )


def purge_messages(
    connection: Connection, *, delivered_before: int | None = None, dead_before: int | None = None
) -> int:
    """Delete delivered messages delivered before ``delivered_before`` and dead ones that died
    before ``dead_before`` (epoch µs), with their attempt logs; returns how many messages."""
    conditions = []
    if delivered_before is not None:
        conditions.append(and_(_m.status == DELIVERED, _m.delivered_at < delivered_before))
    if dead_before is not None:
        conditions.append(and_(_m.status == DEAD, _m.dead_at < dead_before))
    if not conditions:
        return 0
    doomed = select(_m.id).where(or_(*conditions))
    connection.execute(delete(outbox_attempt_table).where(_a.message_id.in_(doomed)))
    return connection.execute(delete(outbox_table).where(or_(*conditions))).rowcount
