"""The worker's side of the outbox tables: find due messages, claim them under a lease, and
record how each attempt ended. Each function is one short transaction.

Claiming, PostgreSQL: ``SELECT … FOR UPDATE OF outbox_message SKIP LOCKED`` picks due, unleased
rows, and an ``UPDATE`` in the same transaction sets the lease, so workers in many processes
never take the same row and never wait on each other. SQLite: the same statements inside a
``BEGIN IMMEDIATE`` write transaction, which the writer queue serializes across threads and
processes. Either way a row is claimable only while no earlier message of its (kind,
destination, ordering_key) is still pending, so one key has at most one attempt in flight.
A lease that runs out (the process died mid-delivery) makes the row claimable again.
"""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, Connection, Engine, and_, exists, func, insert, or_, select
from sqlalchemy import update as sql_update

from gateway.outbox.messages import (
    DEAD,
    DELIVERED,
    PENDING,
    REASON_LENGTH,
    DeliveryResult,
    OutboxMessage,
)
from gateway.outbox.retry_policy import RetryPolicy
from gateway.store.engine import is_sqlite, read_transaction, write_transaction
from gateway.store.tables import outbox_attempt_table, outbox_table

ABANDONED = "abandoned"
"""Attempt-log outcome of an attempt whose worker died (lease expired) or was stopped."""

_m = outbox_table.c


def _claimable(kinds: Sequence[str], now: int) -> ColumnElement[bool]:
    return and_(
        _m.status == PENDING,
        _m.kind.in_(kinds),
        or_(_m.claimed_until.is_(None), _m.claimed_until < now),
    )


def _waits_for_an_earlier_message() -> ColumnElement[bool]:
    earlier = outbox_table.alias("earlier")
    # NULL ordering keys never compare equal, so unordered messages wait for nothing
    return exists().where(
        earlier.c.kind == _m.kind,
        earlier.c.destination == _m.destination,
        earlier.c.ordering_key == _m.ordering_key,
        earlier.c.status == PENDING,
        earlier.c.seq < _m.seq,
    )


def anything_due(engine: Engine, *, kinds: Sequence[str], now: int) -> bool:
    """A cheap read before a claim, so an idle worker never takes the SQLite write lock."""
    query = select(_m.seq).where(_claimable(kinds, now), _m.next_attempt_at <= now).limit(1)
    with read_transaction(engine) as connection:
        return connection.execute(query).first() is not None


def next_due_after(engine: Engine, *, kinds: Sequence[str], now: int) -> int | None:
    """When the next pending message falls due (epoch µs), if any is scheduled after ``now``."""
    query = select(func.min(_m.next_attempt_at)).where(
        _claimable(kinds, now), _m.next_attempt_at > now
    )
    with read_transaction(engine) as connection:
        value: int | None = connection.execute(query).scalar()
        return value


_COLUMNS = (
    _m.seq,
    _m.id,
    _m.kind,
    _m.destination,
    _m.ordering_key,
    _m.payload,
    _m.created_at,
    _m.attempts,
    _m.claimed_by,
    _m.claimed_until,
    _m.next_attempt_at,
)


def claim_due(
    engine: Engine,
    *,
    kinds: Sequence[str],
    worker: str,
    limit: int,
    lease_us: int,
    now: int,
    run_length: int = 1,
) -> list[OutboxMessage]:
    """Lease up to ``limit`` due messages (oldest due first, at most one per key) to ``worker``,
    each followed by up to ``run_length - 1`` more of its key that are due now, in order (a
    run: the worker sends them one after another, as it would have anyway, without a claim
    transaction and a scan of every waiting message between each two). Only a head on its
    first attempt takes followers; their attempts count from the claim, as every claim's do,
    and ``record_results`` takes back those of the ones never attempted."""
    query = (
        select(*_COLUMNS)
        .where(_claimable(kinds, now), _m.next_attempt_at <= now, ~_waits_for_an_earlier_message())
        .order_by(_m.next_attempt_at, _m.seq)
        .limit(limit)
    )
    with write_transaction(engine) as connection:
        if not is_sqlite(connection):
            query = query.with_for_update(skip_locked=True, of=outbox_table)
        heads = connection.execute(query).all()
        if not heads:
            return []
        rows = []
        for head in heads:
            rows.append(head)
            # a head being retried goes alone: its key is likely still failing
            if head.ordering_key is not None and run_length > 1 and head.attempts == 0:
                rows.extend(_followers(connection, head, run_length - 1, now))
        connection.execute(
            sql_update(outbox_table)
            .where(_m.seq.in_([row.seq for row in rows]))
            .values(claimed_by=worker, claimed_until=now + lease_us, attempts=_m.attempts + 1)
        )
        # a row still carrying a lease was claimed by a worker that never finished it
        abandoned = [
            {
                "message_id": row.id,
                "attempt": row.attempts,
                "finished_at": now,
                "duration_ms": None,
                "outcome": ABANDONED,
                "status_code": None,
                "error": "lease expired",
                "worker": row.claimed_by,
            }
            for row in rows
            if row.claimed_by is not None
        ]
        if abandoned:
            connection.execute(insert(outbox_attempt_table), abandoned)
    return [
        OutboxMessage(
            id=row.id,
            kind=row.kind,
            destination=row.destination,
            ordering_key=row.ordering_key,
            payload_json=row.payload,
            created_at=row.created_at,
            attempt=row.attempts + 1,
        )
        for row in rows
    ]


def _followers(connection: Connection, head: Any, count: int, now: int) -> list[Any]:
    """The next ``count`` pending messages of ``head``'s key, as long as each is due now and
    unleased (the first that is not ends the run: order is never skipped over). Only the
    holder of the head can be claiming them, so waiting for a row lock here is brief."""
    query = (
        select(*_COLUMNS)
        .where(
            _m.kind == head.kind,
            _m.destination == head.destination,
            _m.ordering_key == head.ordering_key,
            _m.status == PENDING,
            _m.seq > head.seq,
        )
        .order_by(_m.seq)
        .limit(count)
    )
    if not is_sqlite(connection):
        query = query.with_for_update(of=outbox_table)
    followers = []
    for row in connection.execute(query):
        if row.next_attempt_at > now or (
            row.claimed_until is not None and row.claimed_until >= now
        ):
            break
        followers.append(row)
    return followers


def record_results(
    engine: Engine,
    finished: Sequence[tuple[OutboxMessage, DeliveryResult, int]],
    *,
    unattempted: Sequence[OutboxMessage] = (),
    cut_short: Sequence[OutboxMessage] = (),
    worker: str,
    policy: RetryPolicy,
    now: int,
) -> list[str | None]:
    """One transaction for a run: store how each finished attempt (message, result, duration
    in ms) ended, as ``record_result`` does, hand back the attempts cut short (as ``release``)
    and the leases of messages never attempted, uncounted. Returns each finished one's
    outcome."""
    with write_transaction(engine) as connection:
        outcomes = [
            _record_in(
                connection, message, result, worker=worker, policy=policy, now=now, duration_ms=ms
            )
            for message, result, ms in finished
        ]
        for message in cut_short:
            _release_in(connection, message, worker=worker, now=now, reason="worker stopped")
        if unattempted:
            connection.execute(
                sql_update(outbox_table)
                .where(
                    _m.id.in_([m.id for m in unattempted]),
                    _m.claimed_by == worker,
                    _m.status == PENDING,
                )
                .values(claimed_by=None, claimed_until=None, attempts=_m.attempts - 1)
            )
    return outcomes


def record_result(
    engine: Engine,
    message: OutboxMessage,
    result: DeliveryResult,
    *,
    worker: str,
    policy: RetryPolicy,
    now: int,
    duration_ms: int,
) -> str | None:
    """Store how ``worker``'s attempt ended and release the lease; returns the outcome logged
    (delivered | retry | dead), or None if the lease had already passed to another worker."""
    with write_transaction(engine) as connection:
        return _record_in(
            connection,
            message,
            result,
            worker=worker,
            policy=policy,
            now=now,
            duration_ms=duration_ms,
        )


def _record_in(
    connection: Connection,
    message: OutboxMessage,
    result: DeliveryResult,
    *,
    worker: str,
    policy: RetryPolicy,
    now: int,
    duration_ms: int,
) -> str | None:
    reason = _short(result.reason)
    row = connection.execute(
        select(_m.seq, _m.pending_since).where(
            _m.id == message.id, _m.claimed_by == worker, _m.status == PENDING
        )
    ).first()
    if row is None:
        return None
    released = {"claimed_by": None, "claimed_until": None}
    outcome: str = result.outcome
    if result.outcome == "delivered":
        values = {"status": DELIVERED, "delivered_at": now, "last_error": None, **released}
    elif result.outcome == "dead":
        values = {"status": DEAD, "dead_at": now, "last_error": reason, **released}
    else:
        next_at = policy.next_attempt_at(
            attempt=message.attempt,
            pending_since=row.pending_since,
            now=now,
            retry_after_s=result.retry_after_s,
        )
        if next_at is None:
            outcome = DEAD
            reason = _short(f"gave up: {reason}")
            values = {"status": DEAD, "dead_at": now, "last_error": reason, **released}
        else:
            values = {"next_attempt_at": next_at, "last_error": reason, **released}
            _hold_later_messages(connection, message, seq=row.seq, until=next_at)
    connection.execute(sql_update(outbox_table).where(_m.seq == row.seq).values(**values))
    connection.execute(
        insert(outbox_attempt_table).values(
            message_id=message.id,
            attempt=message.attempt,
            finished_at=now,
            duration_ms=duration_ms,
            outcome=outcome,
            status_code=result.status_code,
            error=reason or None,
            worker=worker,
        )
    )
    return outcome


def _hold_later_messages(
    connection: Connection, message: OutboxMessage, *, seq: int, until: int
) -> None:
    """Later messages of a failing key cannot go before it anyway; scheduling them no earlier
    than its retry keeps them out of every claim query until then (a CBO down for a day with
    thousands of queued events would otherwise be rescanned on every poll)."""
    if message.ordering_key is None:
        return
    connection.execute(
        sql_update(outbox_table)
        .where(
            _m.kind == message.kind,
            _m.destination == message.destination,
            _m.ordering_key == message.ordering_key,
            _m.status == PENDING,
            _m.seq > seq,
            _m.next_attempt_at < until,
        )
        .values(next_attempt_at=until)
    )


def release(
    engine: Engine, messages: Sequence[OutboxMessage], *, worker: str, now: int, reason: str
) -> None:
    """Hand back leases of attempts cut short (the worker is stopping): due again now."""
    if not messages:
        return
    with write_transaction(engine) as connection:
        for message in messages:
            _release_in(connection, message, worker=worker, now=now, reason=reason)


def _release_in(
    connection: Connection, message: OutboxMessage, *, worker: str, now: int, reason: str
) -> None:
    released = connection.execute(
        sql_update(outbox_table)
        .where(_m.id == message.id, _m.claimed_by == worker, _m.status == PENDING)
        .values(claimed_by=None, claimed_until=None, next_attempt_at=now)
    ).rowcount
    if released:
        connection.execute(
            insert(outbox_attempt_table).values(
                message_id=message.id,
                attempt=message.attempt,
                finished_at=now,
                duration_ms=None,
                outcome=ABANDONED,
                status_code=None,
                error=reason,
                worker=worker,
            )
        )


def _short(reason: str) -> str:
    return " ".join(reason.split())[:REASON_LENGTH]
