"""Seeding: the network and resource pools through the HTTP API, Tasks in bulk by cloning.

Bulk Tasks are stored exactly as the API stores them, because they are copies of Tasks the API
itself wrote. For each kind of Task the workloads need (owner × history, e.g. "requested, owned
by the food bank" or "created, then accepted by its owner"), one template Task is written
through the real HTTP API, with every rule, index, Provenance and bookkeeping row the product
writes today. ``capture`` then collects every row, in every table, that belongs to it (found by
its id and, transitively, by the ids of the rows it caused, such as its Provenances), and
deletes them again. ``clone`` rewrites those rows for Task number i: new ids, its own pool
ServiceRequest and Patient, and its own lastUpdated instants (so the search can select a recent
slice); then the rows are inserted in batches (COPY on PostgreSQL). Nothing here knows the
product's table layout, so new tables or columns are picked up without changes.
"""

import functools
import http.client
import multiprocessing
import re
import time
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Engine, Integer, MetaData, String, Table, and_, delete, or_, select

from bench import payloads
from conformance.fhir_time import format_instant
from gateway.store.engine import write_transaction

DAY_US = 86_400 * 1_000_000
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
_TEMPLATE_POOL = payloads.POOL_PATIENTS - 1
"""Templates reference the last pool ServiceRequest/Patient, whose ids are no prefix of another."""


class ApiClient:
    """A small synchronous keep-alive client for seeding (not used for timed runs)."""

    def __init__(self, host: str, port: int, auth: dict[str, dict[str, str]]) -> None:
        self.connection = http.client.HTTPConnection(host, port, timeout=120)
        self.auth = auth
        self.last_headers: dict[str, str] = {}

    def call(
        self,
        method: str,
        path: str,
        organization: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        sent = {**self.auth[organization], "Accept": "application/fhir+json", **(headers or {})}
        data = None
        if body is not None:
            data = orjson.dumps(body)
            sent["Content-Type"] = "application/fhir+json"
        try:
            self.connection.request(method, path, body=data, headers=sent)
            response = self.connection.getresponse()
        except (http.client.RemoteDisconnected, ConnectionError):
            # uvicorn closes keep-alive connections idle for 5 s (e.g. during bulk seeding)
            self.connection.close()
            self.connection.request(method, path, body=data, headers=sent)
            response = self.connection.getresponse()
        raw = response.read()
        self.last_headers = {k.lower(): v for k, v in response.getheaders()}
        return response.status, orjson.loads(raw) if raw else None

    def must(
        self,
        method: str,
        path: str,
        organization: str,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> Any:
        status, answer = self.call(method, path, organization, body, headers)
        if status >= 300:
            raise RuntimeError(f"seeding {method} {path} → {status}: {str(answer)[:500]}")
        return answer

    def close(self) -> None:
        self.connection.close()


def seed_network_and_pools(client: ApiClient) -> int:
    """Orgs, clinician, patients, ServiceRequests and Observations; returns resources written."""
    written = 0
    for resource in payloads.network():
        path = f"/fhir/{resource['resourceType']}/{resource['id']}"
        client.must("PUT", path, payloads.HOSPITAL, resource)
        written += 1
    pools = [
        [payloads.pool_patient(i) for i in range(payloads.POOL_PATIENTS)],
        [payloads.pool_service_request(i) for i in range(payloads.POOL_PATIENTS)],
        [payloads.pool_observation(i) for i in range(payloads.POOL_OBSERVATIONS)],
    ]
    for pool in pools:
        for start in range(0, len(pool), 100):
            chunk = pool[start : start + 100]
            client.must("POST", "/fhir", payloads.HOSPITAL, payloads.put_bundle(chunk))
            written += len(chunk)
    return written


# -- templates ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Kind:
    """A kind of Task: who owns it and whether the owner has accepted it (2 versions)."""

    owner: str
    accepted: bool


@dataclass
class Template:
    kind: Kind
    task_id: str
    times: list[int]
    """lastUpdated of each version, oldest first (the rows carry these instants)."""
    rows: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    """(table name, row) for every row the API wrote for this Task."""

    def summary(self) -> str:
        counts: dict[str, int] = defaultdict(int)
        for table, _ in self.rows:
            counts[table] += 1
        return ", ".join(f"{t} {n}" for t, n in sorted(counts.items()))


def reflect(engine: Engine) -> dict[str, Table]:
    metadata = MetaData()
    metadata.reflect(bind=engine)
    return {name: t for name, t in metadata.tables.items() if name != "alembic_version"}


def _string_columns(table: Table) -> list[Any]:
    return [c for c in table.columns if isinstance(c.type, String)]


def _find_rows(
    engine: Engine, tables: dict[str, Table], needles: set[str]
) -> list[tuple[str, dict[str, Any]]]:
    found = []
    with engine.connect() as connection:
        for name, table in tables.items():
            columns = _string_columns(table)
            if not columns:
                continue
            condition = or_(*(c.contains(n, autoescape=True) for c in columns for n in needles))
            for row in connection.execute(select(table).where(condition)).mappings():
                found.append((name, dict(row)))
    return found


def capture(engine: Engine, client: ApiClient, kind: Kind) -> Template:
    """Write one Task of ``kind`` through the API, collect all its rows, then remove them."""
    task = payloads.task(
        None,
        sr_ref=f"ServiceRequest/{payloads.pool_sr_id(_TEMPLATE_POOL)}",
        patient_ref=f"Patient/{payloads.pool_patient_id(_TEMPLATE_POOL)}",
        owner=kind.owner,
    )
    created = client.must("POST", "/fhir/Task", payloads.HOSPITAL, task)
    task_id = str(created["id"])
    if kind.accepted:
        time.sleep(0.1)  # keeps the two versions' instants apart, see _shift
        accepted = {**task, "id": task_id, "status": "accepted"}
        client.must(
            "PUT", f"/fhir/Task/{task_id}", kind.owner, accepted, headers={"If-Match": 'W/"1"'}
        )
    tables = reflect(engine)
    needles = {task_id}
    rows: list[tuple[str, dict[str, Any]]] = []
    for _ in range(5):  # the Task's rows name its Provenances, whose rows name nothing new
        rows = _find_rows(engine, tables, needles)
        more = {v for _, row in rows for v in row.values() if isinstance(v, str) and _UUID.match(v)}
        if more <= needles:
            break
        needles |= more
    version = tables["resource_version"].c
    with engine.connect() as connection:
        times = [
            int(r.last_updated)
            for r in connection.execute(
                select(version.last_updated)
                .where(version.resource_type == "Task", version.id == task_id)
                .order_by(version.version_id)
            )
        ]
    template = Template(kind, task_id, times, rows)
    _check(template)
    _delete_rows(engine, tables, rows)
    return template


def _check(template: Template) -> None:
    bodies = " ".join(
        str(v) for _, row in template.rows for v in row.values() if isinstance(v, str)
    )
    if not template.times or any(format_instant(t) not in bodies for t in template.times):
        raise RuntimeError(
            "bench.seed: the stored Task does not carry its lastUpdated as format_instant() "
            "renders it; update bench/seed.py to the product's new storage format"
        )


def _delete_rows(
    engine: Engine, tables: dict[str, Table], rows: list[tuple[str, dict[str, Any]]]
) -> None:
    with write_transaction(engine) as connection:
        for name, row in rows:
            table = tables[name]
            keys = list(table.primary_key.columns) or list(table.columns)
            connection.execute(delete(table).where(and_(*(c == row[c.name] for c in keys))))


# -- cloning --------------------------------------------------------------------------------


def _autoincrement_columns(tables: dict[str, Table]) -> dict[str, set[str]]:
    out: dict[str, set[str]] = {}
    for name, table in tables.items():
        primary = list(table.primary_key.columns)
        if len(primary) == 1 and isinstance(primary[0].type, Integer):
            out[name] = {primary[0].name}
    return out


NOT_CLONED = frozenset({"referral_event"})
"""Rows a bulk Task does without: its entries in the organizations' live-update feed, numbered
by a per-organization counter that copies would collide on (the bulk Tasks were created
before the benchmark watches any feed, and old feed entries are purged anyway)."""


def clone(
    template: Template, task_id: str, pool_index: int, times: list[int], salt: str
) -> list[tuple[str, dict[str, Any]]]:
    """The template's rows for another Task: ids, pool references and instants replaced."""
    text: dict[str, str] = {template.task_id: task_id}
    for _, row in template.rows:
        for value in row.values():
            if isinstance(value, str) and _UUID.match(value) and value not in text:
                text[value] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{salt}/{task_id}/{value}"))
    old_sr, old_pat = payloads.pool_sr_id(_TEMPLATE_POOL), payloads.pool_patient_id(_TEMPLATE_POOL)
    new_sr, new_pat = payloads.pool_sr_id(pool_index), payloads.pool_patient_id(pool_index)
    for old, new in zip(template.times, times, strict=True):
        text[format_instant(old)] = format_instant(new)
    exact = {**text, old_sr: new_sr, old_pat: new_pat}
    inside = [
        *text.items(),
        (f"ServiceRequest/{old_sr}", f"ServiceRequest/{new_sr}"),
        (f"Patient/{old_pat}", f"Patient/{new_pat}"),
    ]
    shift = _shifter(template.times, times)
    out = []
    for table, row in template.rows:
        if table in NOT_CLONED:
            continue
        new_row = {}
        for column, value in row.items():
            if isinstance(value, str):
                if value in exact:
                    value = exact[value]
                else:
                    for old, new in inside:
                        if old in value:
                            value = value.replace(old, new)
            elif isinstance(value, int) and not isinstance(value, bool):
                value = shift(value)
            new_row[column] = value
        out.append((table, new_row))
    return out


def _shifter(old_times: list[int], new_times: list[int]) -> Callable[[int], int]:
    """Integers within 40 ms of a template instant are that instant (µs columns, date-index
    bounds); they move with it. The template's versions are written ≥100 ms apart."""
    pairs = list(zip(old_times, new_times, strict=True))

    def shift(value: int) -> int:
        for old, new in pairs:
            if abs(value - old) < 40_000:
                return new + (value - old)
        return value

    return shift


class Inserter:
    """Batched INSERTs (COPY on PostgreSQL) of cloned rows, in dependency-safe table order."""

    def __init__(self, engine: Engine, tables: dict[str, Table]) -> None:
        self.engine = engine
        self.tables = tables
        self.skip = _autoincrement_columns(tables)
        self.total = 0

    def insert(self, rows: list[tuple[str, dict[str, Any]]]) -> None:
        by_table: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for name, row in rows:
            by_table[name].append(row)
        with write_transaction(self.engine) as connection:
            cursor = None
            if connection.dialect.name == "postgresql":  # COPY: ~10× executemany
                cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
            for name in sorted(by_table, key=lambda n: (n != "resource_version", n)):
                table_rows = by_table[name]
                columns = [c for c in table_rows[0] if c not in self.skip.get(name, set())]
                if cursor is None:  # SQLite: the driver's executemany over tuples
                    marks = ", ".join("?" for _ in columns)
                    connection.connection.driver_connection.executemany(  # type: ignore[union-attr]
                        f"INSERT INTO {name} ({', '.join(columns)}) VALUES ({marks})",
                        [tuple(r[c] for c in columns) for r in table_rows],
                    )
                    continue
                sql = f"COPY {name} ({', '.join(columns)}) FROM STDIN"
                with cursor.copy(sql) as copy:
                    for row in table_rows:
                        copy.write_row([row[c] for c in columns])
        self.total += len(rows)


# -- the Task sets the workloads use --------------------------------------------------------


INBOX_KINDS = [
    Kind(payloads.CBO_INBOX, accepted=False),
    Kind(payloads.CBO_OTHER, accepted=False),
    Kind(payloads.CBO_INBOX, accepted=True),
    Kind(payloads.CBO_OTHER, accepted=True),
]
"""Task t-i is of kind i % 4: owners alternate between two CBOs, and half of each CBO's Tasks
are still requested while the other half were accepted by the CBO."""
STATUS_KIND = Kind(payloads.CBO_WORK, accepted=False)


def inbox_task(i: int, *, now: int, span_us: int, count: int) -> tuple[Kind, list[int]]:
    """Kind and version instants of Task t-i: lastUpdated spread evenly over ``span_us``
    before ``now``, the highest i being the newest; accepted ones were created 1 h earlier."""
    kind = INBOX_KINDS[i % 4]
    updated = now - span_us + (i * span_us) // count
    times = [updated - 3_600_000_000, updated] if kind.accepted else [updated]
    return kind, times


def _inbox_chunk(
    job: tuple[dict[Kind, Template], int, int, int, int, int],
) -> list[tuple[str, dict[str, Any]]]:
    templates, start, stop, now, span_us, count = job
    rows = []
    for i in range(start, stop):
        kind, times = inbox_task(i, now=now, span_us=span_us, count=count)
        rows += clone(templates[kind], f"t-{i}", i, times, "inbox")
    return rows


def _status_chunk(
    job: tuple[dict[Kind, Template], int, int, int, int, int],
    prefix: str = "st",
) -> list[tuple[str, dict[str, Any]]]:
    templates, start, stop, now, _, _ = job
    rows = []
    for i in range(start, stop):
        rows += clone(templates[STATUS_KIND], f"{prefix}-{i}", i, [now - DAY_US + i], "status")
    return rows


def capture_templates(engine: Engine, client: ApiClient) -> dict[Kind, Template]:
    return {kind: capture(engine, client, kind) for kind in [*INBOX_KINDS, STATUS_KIND]}


def _bulk(
    engine: Engine,
    templates: dict[Kind, Template],
    work: Callable[[Any], list[tuple[str, dict[str, Any]]]],
    count: int,
    now: int,
    span_us: int,
    processes: int,
) -> int:
    """Clone in ``processes`` forked workers while this process inserts."""
    inserter = Inserter(engine, reflect(engine))
    step = 2000
    jobs = [
        (templates, s, min(s + step, count), now, span_us, count) for s in range(0, count, step)
    ]
    engine.dispose()  # no pooled connection may be shared with the forked workers
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        for rows in pool.imap(work, jobs):
            inserter.insert(rows)
    # a bulk load leaves the planner without statistics until autovacuum (PostgreSQL) or
    # the server's periodic PRAGMA optimize (SQLite) catches up; gather them now
    with engine.begin() as connection:
        connection.exec_driver_sql("ANALYZE")
    return inserter.total


def seed_inbox_tasks(
    engine: Engine,
    templates: dict[Kind, Template],
    count: int,
    *,
    now: int,
    span_us: int,
    processes: int = 2,
) -> int:
    return _bulk(engine, templates, _inbox_chunk, count, now, span_us, processes)


def seed_status_tasks(
    engine: Engine,
    templates: dict[Kind, Template],
    count: int,
    *,
    now: int,
    processes: int = 2,
    prefix: str = "st",
) -> int:
    """st-0 … st-(count-1) (or another ``prefix``): requested Tasks owned by CBO_WORK, created
    a day ago; Task <prefix>-i is ``payloads.status_task(i)`` under that id."""
    work = functools.partial(_status_chunk, prefix=prefix)
    return _bulk(engine, templates, work, count, now, 0, processes)
