"""Reading and writing the ``subscription`` and ``subscription_event`` rows.

Every change to which subscriptions are live or what they match (a new one, a client's new
version, a move to ``off``) also draws a new ``subscription_generation`` token in the same
transaction, which tells ``gateway.subscriptions.live`` when to read the table again.

Event numbers come from one atomic ``UPDATE … SET events_since_start = events_since_start + 1
… RETURNING`` in the writer's own transaction: the row stays locked until that transaction
ends (PostgreSQL) or the whole database is (SQLite), so two writers never draw the same number,
numbers follow commit order, and a rolled-back write leaves no gap.
"""

import functools
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

import orjson
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    and_,
    bindparam,
    cast,
    insert,
    literal,
    select,
    update,
)

from conformance.access import AccessContext, Grant
from conformance.subscriptions import TOPICS, SubscriptionSpec, Topic
from gateway.outbox.messages import REASON_LENGTH
from gateway.store import driver
from gateway.store.bulk_statements import insert_rows
from gateway.store.driver import Statement
from gateway.subscriptions.tables import (
    subscription_event_table,
    subscription_generation_table,
    subscription_table,
)

S, E, G = subscription_table.c, subscription_event_table.c, subscription_generation_table.c
MICROS = 1_000_000
GENERATION = "subscription"
LIVE = ("requested", "active", "error")
"""The statuses in which a subscription counts events (delivered once it answers)."""


@dataclass(frozen=True)
class SubscriptionRecord:
    id: str
    owner: str | None
    access: AccessContext
    topic: Topic
    filters: tuple[tuple[str, str], ...]
    channel: str
    endpoint: str
    headers: tuple[tuple[str, str], ...]
    content: str
    heartbeat_s: int
    timeout_s: int | None
    status: str
    events_since_start: int
    last_error: str | None


@dataclass(frozen=True)
class EventRecord:
    number: int
    occurred_at: int
    focus_type: str
    focus_id: str
    focus_version: int
    method: str

    @property
    def focus(self) -> str:
        return f"{self.focus_type}/{self.focus_id}"


def access_json(actor: AccessContext) -> str:
    grants = None
    if actor.grants is not None:
        grants = [
            {
                "level": g.level,
                "resource_type": g.resource_type,
                "letters": sorted(g.letters),
                "constraints": [list(c) for c in g.constraints],
            }
            for g in actor.grants
        ]
    return orjson.dumps(
        {
            "organization": actor.organization,
            "user": actor.user,
            "client_id": actor.client_id,
            "grants": grants,
            "patient": actor.patient,
            "roles": sorted(actor.roles),
        }
    ).decode()


@functools.lru_cache(maxsize=1024)
def access_from_json(text: str) -> AccessContext:
    """Decoded once per distinct text (an ``AccessContext`` is immutable): a delivery reads its
    subscription's row every time, and many subscriptions share a subscriber."""
    data = orjson.loads(text)
    grants = None
    if data["grants"] is not None:
        grants = tuple(
            Grant(
                level=g["level"],
                resource_type=g["resource_type"],
                letters=frozenset(g["letters"]),
                constraints=tuple((str(k), str(v)) for k, v in g["constraints"]),
            )
            for g in data["grants"]
        )
    return AccessContext(
        organization=data["organization"],
        user=data["user"],
        client_id=data["client_id"],
        grants=grants,
        patient=data["patient"],
        roles=frozenset(data["roles"]),
    )


def _config(spec: SubscriptionSpec) -> dict[str, object]:
    return {
        "topic": spec.topic.canonical,
        "resource_type": spec.topic.resource_type,
        "filters": orjson.dumps(spec.filters).decode(),
        "channel": spec.channel,
        "endpoint": spec.endpoint,
        "headers": orjson.dumps(spec.headers).decode(),
        "content": spec.content,
        "heartbeat_s": spec.heartbeat_s,
        "timeout_s": spec.timeout_s,
    }


def insert_subscription(
    connection: Connection,
    subscription_id: str,
    spec: SubscriptionSpec,
    *,
    actor: AccessContext,
    status: str,
    now: int,
) -> None:
    connection.execute(
        insert(subscription_table).values(
            id=subscription_id,
            owner=actor.organization,
            access=access_json(actor),
            status=status,
            events_since_start=0,
            created_at=now,
            **_config(spec),
        )
    )
    new_generation(connection)


def update_subscription(
    connection: Connection,
    subscription_id: str,
    spec: SubscriptionSpec,
    *,
    actor: AccessContext,
    status: str,
) -> None:
    """A client's new version: its configuration, status and (its token's) access."""
    connection.execute(
        update(subscription_table)
        .where(S.id == subscription_id)
        .values(access=access_json(actor), status=status, last_error=None, **_config(spec))
    )
    new_generation(connection)


_GET_SUBSCRIPTION = select(subscription_table).where(S.id == bindparam("subscription_id"))
"""Built once: each delivery reads its subscription's row, and building the statement cost
more than running it."""


def get_subscription(connection: Connection, subscription_id: str) -> SubscriptionRecord | None:
    row = connection.execute(_GET_SUBSCRIPTION, {"subscription_id": subscription_id}).first()
    return _record(row) if row is not None else None


_GENERATION = Statement("SELECT token FROM subscription_generation WHERE name = ?")


def generation(connection: Connection) -> str | None:
    """The token of the last committed change to live subscriptions (or this transaction's).

    Every Task and ServiceRequest write reads it, so it goes straight to the driver."""
    row = driver.first(connection, _GENERATION, (GENERATION,))
    return str(row[0]) if row is not None else None


def new_generation(connection: Connection) -> None:
    """Draw a new random token (never reused, unlike a counter a rollback could take back)."""
    token = secrets.token_hex(16)
    changed = connection.execute(
        update(subscription_generation_table).where(G.name == GENERATION).values(token=token)
    ).rowcount
    if not changed:
        connection.execute(
            insert(subscription_generation_table).values(name=GENERATION, token=token)
        )


@dataclass(frozen=True)
class LiveConfig:
    """What the write side needs of a live subscription, as stored (JSON text undecoded)."""

    id: str
    topic: str
    filters: str
    access: str


def live_configs(connection: Connection, resource_type: str) -> list[LiveConfig]:
    """Every subscription not ``off`` on topics about ``resource_type``, in id order: events are
    recorded (and queued) while one is ``requested`` or in ``error``, and delivered once it
    answers."""
    rows = connection.execute(
        select(S.id, S.topic, S.filters, S.access)
        .where(S.resource_type == resource_type, S.status.in_(LIVE))
        # by id: writers then lock the rows they count events on in one order, never deadlock
        .order_by(S.id)
    )
    return [LiveConfig(row.id, row.topic, row.filters, row.access) for row in rows]


def next_event_numbers(
    connection: Connection, subscription_ids: Sequence[str], *, now: int
) -> dict[str, int]:
    """Count one more event for each subscription; their new counts (each event's number).
    Postpones their next heartbeats too. One statement: on PostgreSQL the rows are locked in
    id order first, so writers never deadlock."""
    if not subscription_ids:
        return {}
    rows = driver.rows(
        connection,
        _COUNT_EVENTS,
        (now, MICROS, orjson.dumps(sorted(subscription_ids)).decode()),
    )
    return {str(subscription_id): int(number) for subscription_id, number in rows}


_COUNT_EVENTS = Statement(
    "UPDATE subscription SET events_since_start = events_since_start + 1, "
    "next_heartbeat_at = ? + heartbeat_s * ? "
    "WHERE id IN (SELECT value FROM json_each(?)) RETURNING id, events_since_start",
    "UPDATE subscription SET events_since_start = events_since_start + 1, "
    "next_heartbeat_at = ?::bigint + heartbeat_s::bigint * ? "
    "WHERE id IN (SELECT id FROM subscription "
    "WHERE id IN (SELECT json_array_elements_text(?::json)) ORDER BY id FOR UPDATE) "
    "RETURNING id, events_since_start",
)
"""One more event for each subscription named in a JSON array (one statement text for any
number of them), postponing its heartbeat as ``_one_period_after`` does (64-bit arithmetic on
PostgreSQL); returns (id, its new count)."""


def record_events(connection: Connection, events: Sequence[tuple[str, EventRecord]]) -> None:
    """Log (subscription id, event) pairs in one statement."""
    _INSERT_EVENTS.send(
        connection,
        [
            (
                subscription_id,
                event.number,
                event.occurred_at,
                event.focus_type,
                event.focus_id,
                event.focus_version,
                event.method,
            )
            for subscription_id, event in events
        ],
    )


_INSERT_EVENTS = insert_rows(
    subscription_event_table,
    (
        "subscription_id",
        "event_number",
        "occurred_at",
        "focus_type",
        "focus_id",
        "focus_version",
        "method",
    ),
)


def events_between(
    connection: Connection, subscription_id: str, first: int, last: int
) -> list[EventRecord]:
    rows = connection.execute(
        select(subscription_event_table)
        .where(E.subscription_id == subscription_id, E.event_number.between(first, last))
        .order_by(E.event_number)
    )
    return [
        EventRecord(
            row.event_number,
            row.occurred_at,
            row.focus_type,
            row.focus_id,
            row.focus_version,
            row.method,
        )
        for row in rows
    ]


def move_status(
    connection: Connection,
    subscription_id: str,
    status: str,
    *,
    from_statuses: Sequence[str],
    error: str | None = None,
    now: int,
) -> bool:
    """Set ``status`` if the subscription is in one of ``from_statuses``; True if it moved."""
    values: dict[str, object] = {"status": status, "last_error": _short(error)}
    if status == "active":
        values["next_heartbeat_at"] = _one_period_after(now)
    moved = connection.execute(
        update(subscription_table)
        .where(and_(S.id == subscription_id, S.status.in_(list(from_statuses))))
        .values(**values)
    ).rowcount
    if moved and status not in LIVE:
        new_generation(connection)
    return bool(moved)


def due_heartbeats(connection: Connection, *, now: int) -> list[tuple[str, int]]:
    """Claim the heartbeats due now (active rest-hook subscriptions with a period, silent for
    that long): reschedule each and return (id, events so far). A row another process claimed
    first no longer matches, so each heartbeat is claimed once.

    On PostgreSQL the rows are locked in id order, skipping any a writer holds: that writer is
    counting an event, which postpones the heartbeat anyway, and waiting for it while holding
    other rows could deadlock with a writer counting events on several."""
    claimable = (
        select(S.id)
        .where(
            S.status == "active",
            S.heartbeat_s > 0,
            S.channel == "rest-hook",
            S.next_heartbeat_at <= now,
        )
        .order_by(S.id)
        .with_for_update(skip_locked=True)
    )
    rows = connection.execute(
        update(subscription_table)
        .where(S.id.in_(claimable))
        .values(next_heartbeat_at=_one_period_after(now))
        .returning(S.id, S.events_since_start)
    )
    return [(row.id, int(row.events_since_start)) for row in rows]


def any_heartbeat_due(connection: Connection, *, now: int) -> bool:
    query = (
        select(S.id)
        .where(
            S.status == "active",
            S.heartbeat_s > 0,
            S.channel == "rest-hook",
            S.next_heartbeat_at <= now,
        )
        .limit(1)
    )
    return connection.execute(query).first() is not None


def _one_period_after(now: int) -> ColumnElement[int]:
    """``now`` plus the row's heartbeat period, in 64-bit arithmetic (PostgreSQL would
    otherwise compute in the 32-bit type of ``heartbeat_s`` and overflow)."""
    return literal(now, BigInteger) + cast(S.heartbeat_s, BigInteger) * MICROS


def filter_pairs(filters_json: str) -> tuple[tuple[str, str], ...]:
    return tuple((str(k), str(v)) for k, v in orjson.loads(filters_json))


@functools.lru_cache(maxsize=4096)
def _pairs(text: str) -> tuple[tuple[str, str], ...]:
    """A stored JSON list of pairs (filters, headers), decoded once per distinct text."""
    return tuple((str(k), str(v)) for k, v in orjson.loads(text))


def _record(row: object) -> SubscriptionRecord:
    r = row._mapping  # type: ignore[attr-defined]
    return SubscriptionRecord(
        id=r["id"],
        owner=r["owner"],
        access=access_from_json(r["access"]),
        topic=TOPICS[r["topic"]],
        filters=_pairs(r["filters"]),
        channel=r["channel"],
        endpoint=r["endpoint"],
        headers=_pairs(r["headers"]),
        content=r["content"],
        heartbeat_s=int(r["heartbeat_s"]),
        timeout_s=r["timeout_s"],
        status=r["status"],
        events_since_start=int(r["events_since_start"]),
        last_error=r["last_error"],
    )


def _short(reason: str | None) -> str | None:
    return " ".join(reason.split())[:REASON_LENGTH] if reason else None
