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

import functools
from collections.abc import Callable, Sequence
from typing import Any

from sqlalchemy import (
    CTE,
    BindParameter,
    ColumnElement,
    Connection,
    Engine,
    FromClause,
    Select,
    and_,
    bindparam,
    exists,
    func,
    insert,
    literal_column,
    or_,
    select,
)
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


_KINDS: BindParameter[Any] = bindparam("kinds", expanding=True)
_NOW: BindParameter[int] = bindparam("now")
"""The claim's statements are built once, with these for the kinds handled and the time."""


def _claimable(table: FromClause = outbox_table) -> ColumnElement[bool]:
    return and_(
        table.c.status == PENDING,
        table.c.kind.in_(_KINDS),
        or_(table.c.claimed_until.is_(None), table.c.claimed_until < _NOW),
    )


def _pending(table: FromClause) -> ColumnElement[bool]:
    # a literal, not a bound parameter: SQLite uses the partial index on pending rows only when
    # the query's condition is the index's own, word for word
    return table.c.status == literal_column(f"'{PENDING}'")


def _key_heads() -> CTE:
    """The first pending message (lowest seq) of every ordering key, found by skipping from
    one key to the next in ``ix_outbox_message_pending_key`` (pending rows only, by key and
    seq): a few index seeks per key with pending messages, however many wait behind each
    head. (On SQLite, where NULLs sort first, a destination's pending unordered messages are
    stepped over too.)"""
    first_pending = outbox_table.alias("first_pending")
    first = (
        select(*_row_of(first_pending))
        .where(_pending(first_pending), first_pending.c.ordering_key.is_not(None))
        .order_by(*_key_order(first_pending))
        .limit(1)
        .subquery("first_head")
    )
    heads = select(*_row_of(first)).cte("key_head", recursive=True)
    previous = heads.alias("previous")

    def first_after(
        conditions: Callable[[FromClause], tuple[ColumnElement[bool], ...]],
    ) -> ColumnElement[int]:
        later = outbox_table.alias("later")
        # each ``conditions`` is a range on a prefix of the index, so each lookup is one seek
        # (a row-value comparison would use only the index's first column on SQLite)
        return (
            select(later.c.seq)
            .where(_pending(later), later.c.ordering_key.is_not(None), *conditions(later))
            .order_by(*_key_order(later))
            .limit(1)
            .scalar_subquery()
        )

    p = previous.c
    next_head = func.coalesce(
        first_after(
            lambda t: (
                t.c.kind == p.kind,
                t.c.destination == p.destination,
                t.c.ordering_key > p.ordering_key,
            )
        ),
        first_after(lambda t: (t.c.kind == p.kind, t.c.destination > p.destination)),
        first_after(lambda t: (t.c.kind > p.kind,)),
    )
    head = outbox_table.alias("head")
    return heads.union_all(
        select(*_row_of(head)).select_from(previous.join(head, head.c.seq == next_head))
    )


def _row_of(table: FromClause) -> list[ColumnElement[Any]]:
    """What the claim reads of a row, and its status, from ``table``."""
    return [table.c[column.name] for column in (*_COLUMNS, _m.status)]


def _key_order(table: FromClause) -> tuple[ColumnElement[Any], ...]:
    return (table.c.kind, table.c.destination, table.c.ordering_key, table.c.seq)


_ANYTHING_DUE = select(_m.seq).where(_claimable(), _m.next_attempt_at <= _NOW).limit(1)


def anything_due(engine: Engine, *, kinds: Sequence[str], now: int) -> bool:
    """A cheap read before a claim, so an idle worker never takes the SQLite write lock."""
    with read_transaction(engine) as connection:
        found = connection.execute(_ANYTHING_DUE, {"kinds": list(kinds), "now": now}).first()
        return found is not None


_NEXT_DUE = select(func.min(_m.next_attempt_at)).where(_claimable(), _m.next_attempt_at > _NOW)


def next_due_after(engine: Engine, *, kinds: Sequence[str], now: int) -> int | None:
    """When the next pending message falls due (epoch µs), if any is scheduled after ``now``."""
    with read_transaction(engine) as connection:
        value: int | None = connection.execute(
            _NEXT_DUE, {"kinds": list(kinds), "now": now}
        ).scalar()
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
    with write_transaction(engine) as connection:
        heads_due = _due_heads(connection, kinds, now, limit)
        if not heads_due:
            return []
        rows = []
        for head in heads_due:
            rows.append(head)
            # a head being retried goes alone: its key is likely still failing
            if head.ordering_key is not None and run_length > 1 and head.attempts == 0:
                rows.extend(_followers(connection, head, run_length - 1, now))
        connection.execute(
            _LEASE,
            {"seqs": [row.seq for row in rows], "worker": worker, "until": now + lease_us},
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


_LEASE = (
    sql_update(outbox_table)
    .where(_m.seq.in_(bindparam("seqs", expanding=True)))
    .values(
        claimed_by=bindparam("worker"),
        claimed_until=bindparam("until"),
        attempts=_m.attempts + 1,
    )
)

PROBE_FACTOR = 4
"""The claim first looks at the ``PROBE_FACTOR × limit`` claimable messages due longest."""


def _due_heads(connection: Connection, kinds: Sequence[str], now: int, limit: int) -> list[Any]:
    """The ``limit`` claimable messages due longest that no earlier pending message of their
    key holds back (the heads), oldest due first; on PostgreSQL locked for this claim.

    Two ways, both exact. First the messages due longest, a few times ``limit`` of them, each
    asked whether an earlier one of its key is pending: when many keys are due (one write
    fanned out to many subscriptions) that finds ``limit`` heads at once, and any head beyond
    them falls due no earlier; when fewer are due than that, all of them were asked. Only
    otherwise (few keys, each with many waiting behind its head,
    where asking every waiting message, as the claim did, cost 5–8 ms a claim with 3,000
    waiting behind 10 keys) the walk from key to key in ``_key_heads`` finds every key's
    head."""
    sqlite = is_sqlite(connection)
    params: dict[str, Any] = {"kinds": list(kinds), "now": now, "limit": limit}
    window = connection.execute(_EARLIEST, {**params, "window": limit * PROBE_FACTOR})
    seqs = window.scalars().all()
    if not seqs:
        return []
    found = connection.execute(_PROBE, {**params, "seqs": seqs}).all()
    if len(found) == limit or len(seqs) < limit * PROBE_FACTOR:
        # a full batch, or every claimable due message was in the window: exact either way
        return list(found)
    due_heads, due_unordered = _walk(sqlite)
    candidates = [
        *connection.execute(due_heads, params),
        *connection.execute(due_unordered, params),
    ]
    return sorted(candidates, key=lambda row: (row.next_attempt_at, row.seq))[:limit]


_EARLIEST = (
    select(_m.seq)
    .where(_claimable(), _m.next_attempt_at <= _NOW)
    .order_by(_m.next_attempt_at, _m.seq)
    .limit(bindparam("window"))
)


@functools.cache
def _walk(sqlite: bool) -> tuple[Select[Any], Select[Any]]:
    """The walk's two queries (heads of ordered keys, unordered messages), built once."""
    heads = _key_heads()
    h = heads.c
    due_heads: Select[Any] = (
        select(*[h[column.name] for column in _COLUMNS])
        .where(_claimable(heads), h.next_attempt_at <= _NOW)
        .order_by(h.next_attempt_at, h.seq)
        .limit(bindparam("limit"))
    )
    if not sqlite:
        # lock the heads found (and check them again once locked), skipping any another
        # worker is claiming; SQLite's writers take turns, so its heads are read as found
        due_heads = _due_first(
            select(*_COLUMNS).where(_m.seq.in_(due_heads.with_only_columns(h.seq)))
        )
    # NULL ordering keys never compare equal: unordered messages wait for nothing
    due_unordered = _due_first(
        select(*_COLUMNS).where(_m.ordering_key.is_(None), _pending(outbox_table))
    )
    return due_heads, due_unordered


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


def _due_first(query: Select[Any]) -> Select[Any]:
    """Of ``query``'s rows, the ``limit`` claimable ones due longest; on PostgreSQL locked for
    this claim (rows another worker is claiming are skipped, never waited for)."""
    query = (
        query.where(_claimable(), _m.next_attempt_at <= _NOW)
        .order_by(_m.next_attempt_at, _m.seq)
        .limit(bindparam("limit"))
    )
    return query.with_for_update(skip_locked=True, of=outbox_table)


_PROBE = _due_first(
    select(*_COLUMNS).where(
        _m.seq.in_(bindparam("seqs", expanding=True)), ~_waits_for_an_earlier_message()
    )
)


def _followers(connection: Connection, head: Any, count: int, now: int) -> list[Any]:
    """The next ``count`` pending messages of ``head``'s key, as long as each is due now and
    unleased (the first that is not ends the run: order is never skipped over). Only the
    holder of the head can be claiming them, so waiting for a row lock here is brief."""
    query = _FOLLOWERS_SQLITE if is_sqlite(connection) else _FOLLOWERS_LOCKED
    rows = connection.execute(
        query,
        {
            "kind": head.kind,
            "destination": head.destination,
            "ordering_key": head.ordering_key,
            "seq": head.seq,
            "count": count,
        },
    )
    followers = []
    for row in rows:
        if row.next_attempt_at > now or (
            row.claimed_until is not None and row.claimed_until >= now
        ):
            break
        followers.append(row)
    return followers


_FOLLOWERS_SQLITE = (
    select(*_COLUMNS)
    .where(
        _m.kind == bindparam("kind"),
        _m.destination == bindparam("destination"),
        _m.ordering_key == bindparam("ordering_key"),
        _m.status == PENDING,
        _m.seq > bindparam("seq"),
    )
    .order_by(_m.seq)
    .limit(bindparam("count"))
)
_FOLLOWERS_LOCKED = _FOLLOWERS_SQLITE.with_for_update(of=outbox_table)


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
    in ms) ended and release its lease, hand back the attempts cut short (due again now,
    logged as abandoned) and the leases of messages never attempted, uncounted. Returns each
    finished one's outcome. The delivered ones, nearly all of a run, take two statements."""
    with write_transaction(engine) as connection:
        stored = _record_delivered(
            connection,
            [(m, r, ms) for m, r, ms in finished if r.outcome == "delivered"],
            worker=worker,
            now=now,
        )
        outcomes = [
            (DELIVERED if message.id in stored else None)
            if result.outcome == "delivered"
            else _record_in(
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


_MARK_DELIVERED = (
    sql_update(outbox_table)
    .where(
        _m.id.in_(bindparam("ids", expanding=True)),
        _m.claimed_by == bindparam("worker"),
        _m.status == PENDING,
    )
    .values(
        status=DELIVERED,
        delivered_at=bindparam("now"),
        last_error=None,
        claimed_by=None,
        claimed_until=None,
    )
    .returning(_m.id)
)


def _record_delivered(
    connection: Connection,
    delivered: Sequence[tuple[OutboxMessage, DeliveryResult, int]],
    *,
    worker: str,
    now: int,
) -> set[str]:
    """``_record_in`` for delivered attempts, all in one ``UPDATE … RETURNING`` and one
    insert; returns the ids still leased to ``worker`` (the others' outcome is None)."""
    if not delivered:
        return set()
    ids = [message.id for message, _, _ in delivered]
    stored = set(
        connection.execute(_MARK_DELIVERED, {"ids": ids, "worker": worker, "now": now}).scalars()
    )
    attempts = [
        {
            "message_id": message.id,
            "attempt": message.attempt,
            "finished_at": now,
            "duration_ms": duration_ms,
            "outcome": DELIVERED,
            "status_code": result.status_code,
            # "not sent: …" when the handler decided nothing was owed, as _record_in keeps it
            "error": _short(result.reason) or None,
            "worker": worker,
        }
        for message, result, duration_ms in delivered
        if message.id in stored
    ]
    if attempts:
        connection.execute(insert(outbox_attempt_table), attempts)
    return stored


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
