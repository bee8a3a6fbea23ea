"""Reads of stored resource versions; writes go through ``pending_rows``.

The reads every request makes (current version, existence, one version) are fixed statements
sent straight to the driver (``driver``): the ORM costs 4–5× Core on lookups (reference/perf.md
§4.8) and Core's execution layer several times what SQLite takes to run them. History pages
are built with Core. Every function takes the caller's connection, so a read inside a write
sees that write's own rows.
"""

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    exists,
    func,
    select,
    true,
)

from gateway.store import driver
from gateway.store.driver import Statement
from gateway.store.tables import (
    reference_table,
    resource_table,
    version_table,
)

R, V = resource_table.c, version_table.c


@dataclass(frozen=True)
class StoredVersion:
    resource_type: str
    id: str
    version_id: int
    last_updated: int
    deleted: bool
    body: str | None
    method: str = ""
    created_by: str | None = None


_JOINED = (
    "SELECT r.resource_type, r.id, r.version_id, r.last_updated, r.deleted, v.body, r.created_by "
    "FROM resource AS r JOIN resource_version AS v "
    "ON v.resource_type = r.resource_type AND v.id = r.id AND v.version_id = r.version_id "
)
_CURRENT = Statement(_JOINED + "WHERE r.resource_type = ? AND r.id = ?")
_LOCK = Statement(
    "SELECT version_id, last_updated, deleted, created_by FROM resource "
    "WHERE resource_type = ? AND id = ?",
    "SELECT version_id, last_updated, deleted, created_by FROM resource "
    "WHERE resource_type = ? AND id = ? FOR UPDATE",
)
_BODY = Statement(
    "SELECT body FROM resource_version WHERE resource_type = ? AND id = ? AND version_id = ?"
)
_VERSION = Statement(
    "SELECT last_updated, body, method FROM resource_version "
    "WHERE resource_type = ? AND id = ? AND version_id = ?"
)
_EXISTS = Statement(
    "SELECT 1 FROM resource WHERE resource_type = ? AND id = ? AND deleted = ?",
)
_BATCH = 100
"""Ids per ``IN`` list: chunks are padded to this length on SQLite, so there is one statement
text; PostgreSQL takes each chunk as one array (sending 100 parameters cost 300 µs of CPU)."""
_CURRENT_BATCH = Statement(
    _JOINED
    + f"WHERE r.resource_type = ? AND r.id IN ({', '.join('?' * _BATCH)}) AND r.deleted = ?",
    _JOINED + "WHERE r.resource_type = ? AND r.id = ANY(?::varchar[]) AND r.deleted = ?",
    binary=True,
)
_EXISTING_BATCH = Statement(
    f"SELECT id FROM resource WHERE resource_type = ? AND id IN ({', '.join('?' * _BATCH)}) "
    "AND deleted = ?",
    "SELECT id FROM resource WHERE resource_type = ? AND id = ANY(?::varchar[]) AND deleted = ?",
    binary=True,
)


def _current(row: driver.Row) -> StoredVersion:
    resource_type, resource_id, version_id, last_updated, deleted, body, created_by = row
    return StoredVersion(
        resource_type,
        resource_id,
        version_id,
        last_updated,
        bool(deleted),
        body,
        created_by=created_by,
    )


def current(
    connection: Connection, resource_type: str, resource_id: str, *, for_update: bool = False
) -> StoredVersion | None:
    """The current version (deleted or not); ``for_update`` locks the row until commit."""
    if for_update:
        return _locked_current(connection, resource_type, resource_id)
    row = driver.first(connection, _CURRENT, (resource_type, resource_id))
    return _current(row) if row else None


def _locked_current(
    connection: Connection, resource_type: str, resource_id: str
) -> StoredVersion | None:
    """Lock the current row alone, then read its body.

    Locking through the join would be wrong on PostgreSQL: a writer that waited for the lock
    re-checks the join against the *new* row and the *old* version row, finds no match, and
    concludes that the resource does not exist.
    """
    row = driver.first(connection, _LOCK, (resource_type, resource_id))
    if row is None:
        return None
    version_id, last_updated, deleted, created_by = row
    found = driver.first(connection, _BODY, (resource_type, resource_id, version_id))
    assert found is not None  # the version row is written with the resource row
    return _current(
        (resource_type, resource_id, version_id, last_updated, deleted, found[0], created_by)
    )


def current_many(
    connection: Connection, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], StoredVersion]:
    """Current, not-deleted versions of several resources at once, keyed by (type, id)."""
    found: dict[tuple[str, str], StoredVersion] = {}
    for resource_type, ids in _ids_by_type(keys):
        if len(ids) == 1:
            row = driver.first(connection, _CURRENT, (resource_type, ids[0]))
            rows = [row] if row is not None and not row[4] else []
        else:
            rows = driver.rows(
                connection, _CURRENT_BATCH, _batch_params(connection, resource_type, ids)
            )
        for row in rows:
            stored = _current(row)
            found[(stored.resource_type, stored.id)] = stored
    return found


def _ids_by_type(keys: Iterable[tuple[str, str]]) -> Iterator[tuple[str, list[str]]]:
    """Keys grouped by type, in chunks: ``type = ? AND id IN (…)`` uses the primary key on
    both databases, where SQLite scans the table for a ``(type, id) IN`` row-value list."""
    grouped: dict[str, list[str]] = {}
    for resource_type, resource_id in dict.fromkeys(keys):
        grouped.setdefault(resource_type, []).append(resource_id)
    for resource_type, ids in grouped.items():
        for start in range(0, len(ids), _BATCH):
            yield resource_type, ids[start : start + _BATCH]


def _batch_params(connection: Connection, resource_type: str, ids: list[str]) -> tuple[Any, ...]:
    """Parameters for a ``_BATCH`` statement: on SQLite the ids, the last repeated to fill the
    list; on PostgreSQL the ids as one array."""
    if connection.dialect.name != "sqlite":
        return (resource_type, ids, False)
    return (resource_type, *ids, *[ids[-1]] * (_BATCH - len(ids)), False)


def version(
    connection: Connection, resource_type: str, resource_id: str, version_id: int
) -> StoredVersion | None:
    row = driver.first(connection, _VERSION, (resource_type, resource_id, version_id))
    if row is None:
        return None
    last_updated, body, method = row
    return StoredVersion(
        resource_type, resource_id, version_id, last_updated, body is None, body, method
    )


def existing_keys(connection: Connection, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of ``keys`` name a stored, not-deleted resource."""
    found: set[tuple[str, str]] = set()
    for resource_type, ids in _ids_by_type(keys):
        if len(ids) == 1:
            if driver.first(connection, _EXISTS, (resource_type, ids[0], False)) is not None:
                found.add((resource_type, ids[0]))
        else:
            rows = driver.rows(
                connection, _EXISTING_BATCH, _batch_params(connection, resource_type, ids)
            )
            found.update((resource_type, row[0]) for row in rows)
    return found


def referenced_by(
    connection: Connection, resource_type: str, resource_id: str, *, ignore: Sequence[str]
) -> list[str]:
    """Types of stored resources (other than ``ignore``) that reference this one locally."""
    ref = reference_table.c
    rows = connection.execute(
        select(ref.resource_type)
        .where(
            ref.target_type == resource_type,
            ref.target_id == resource_id,
            ref.target_base == "",
            ref.resource_type.not_in(ignore),
            ~and_(ref.resource_type == resource_type, ref.resource_id == resource_id),
        )
        .distinct()
    )
    return sorted(row.resource_type for row in rows)


def history(
    connection: Connection,
    *,
    visible: ColumnElement[bool] | None = None,
    resource_type: str | None,
    resource_id: str | None,
    since: int | None,
    at_or_before: int | None,
    count: int,
    offset: int,
) -> tuple[list[StoredVersion], int]:
    """Versions newest first, one page of them, and how many there are in all."""
    conditions = []
    if resource_type is not None:
        conditions.append(V.resource_type == resource_type)
    if resource_id is not None:
        conditions.append(V.id == resource_id)
    if since is not None:
        conditions.append(V.last_updated >= since)
    if at_or_before is not None:
        conditions.append(V.last_updated <= at_or_before)
    if visible is not None:  # only versions of resources the caller may see (now)
        conditions.append(
            exists(select(1).where(R.resource_type == V.resource_type, R.id == V.id, visible))
        )
    where = and_(true(), *conditions)
    total = connection.execute(select(func.count()).select_from(version_table).where(where))
    rows = connection.execute(
        select(V.resource_type, V.id, V.version_id, V.last_updated, V.body, V.method)
        .where(where)
        .order_by(V.last_updated.desc(), V.resource_type, V.id, V.version_id.desc())
        .limit(count)
        .offset(offset)
    )
    versions = [
        StoredVersion(
            r.resource_type, r.id, r.version_id, r.last_updated, r.body is None, r.body, r.method
        )
        for r in rows
    ]
    return versions, int(total.scalar_one())
