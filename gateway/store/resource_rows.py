"""Reads of stored resource versions (SQLAlchemy Core); writes go through ``pending_rows``.

Core, not the ORM, on these paths: the ORM costs 4–5× on lookups (reference/perf.md §4.8), and
the statements are built once, with bind parameters: building one per call cost 90 µs, running a
prebuilt one 18 µs. Every function takes the caller's connection, so a read inside a write sees
that write's own rows.
"""

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    and_,
    bindparam,
    exists,
    func,
    select,
    true,
)

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


_CURRENT_COLUMNS = (R.resource_type, R.id, R.version_id, R.last_updated, R.deleted, V.body)


def _current(row: Any) -> StoredVersion:
    return StoredVersion(
        row.resource_type,
        row.id,
        row.version_id,
        row.last_updated,
        row.deleted,
        row.body,
        created_by=row.created_by,
    )


_JOIN = resource_table.join(
    version_table,
    and_(V.resource_type == R.resource_type, V.id == R.id, V.version_id == R.version_id),
)
_THIS_TYPE = R.resource_type == bindparam("resource_type")
_CURRENT = (
    select(*_CURRENT_COLUMNS, R.created_by)
    .select_from(_JOIN)
    .where(_THIS_TYPE, R.id == bindparam("resource_id"))
)
_CURRENT_MANY = (
    select(*_CURRENT_COLUMNS, R.created_by)
    .select_from(_JOIN)
    .where(_THIS_TYPE, R.id.in_(bindparam("ids", expanding=True)), R.deleted.is_(False))
)
_EXISTING = select(R.id).where(
    _THIS_TYPE, R.id.in_(bindparam("ids", expanding=True)), R.deleted.is_(False)
)
_EXISTING_ONE = select(R.id).where(
    _THIS_TYPE, R.id == bindparam("resource_id"), R.deleted.is_(False)
)
"""For the usual single id: an expanding ``IN`` list is compiled again on every execution."""
_LOCK = (
    select(R.version_id, R.last_updated, R.deleted, R.created_by)
    .where(_THIS_TYPE, R.id == bindparam("resource_id"))
    .with_for_update()
)
_BODY = select(V.body).where(
    V.resource_type == bindparam("resource_type"),
    V.id == bindparam("resource_id"),
    V.version_id == bindparam("version_id"),
)
_VERSION = select(V.resource_type, V.id, V.version_id, V.last_updated, V.body, V.method).where(
    V.resource_type == bindparam("resource_type"),
    V.id == bindparam("resource_id"),
    V.version_id == bindparam("version_id"),
)


def current(
    connection: Connection, resource_type: str, resource_id: str, *, for_update: bool = False
) -> StoredVersion | None:
    """The current version (deleted or not); ``for_update`` locks the row until commit."""
    if for_update:
        return _locked_current(connection, resource_type, resource_id)
    key = {"resource_type": resource_type, "resource_id": resource_id}
    row = connection.execute(_CURRENT, key).first()
    return _current(row) if row else None


def _locked_current(
    connection: Connection, resource_type: str, resource_id: str
) -> StoredVersion | None:
    """Lock the current row alone, then read its body.

    Locking through the join would be wrong on PostgreSQL: a writer that waited for the lock
    re-checks the join against the *new* row and the *old* version row, finds no match, and
    concludes that the resource does not exist.
    """
    key = {"resource_type": resource_type, "resource_id": resource_id}
    row = connection.execute(_LOCK, key).first()
    if row is None:
        return None
    body = connection.execute(_BODY, {**key, "version_id": row.version_id}).scalar_one()
    return StoredVersion(
        resource_type,
        resource_id,
        row.version_id,
        row.last_updated,
        row.deleted,
        body,
        created_by=row.created_by,
    )


def current_many(
    connection: Connection, keys: Iterable[tuple[str, str]]
) -> dict[tuple[str, str], StoredVersion]:
    """Current, not-deleted versions of several resources at once, keyed by (type, id)."""
    found: dict[tuple[str, str], StoredVersion] = {}
    for resource_type, ids in _ids_by_type(keys):
        for row in connection.execute(_CURRENT_MANY, {"resource_type": resource_type, "ids": ids}):
            found[(row.resource_type, row.id)] = _current(row)
    return found


def _ids_by_type(keys: Iterable[tuple[str, str]]) -> Iterator[tuple[str, list[str]]]:
    """Keys grouped by type, in chunks: ``type = ? AND id IN (…)`` uses the primary key on
    both databases, where SQLite scans the table for a ``(type, id) IN`` row-value list."""
    grouped: dict[str, list[str]] = {}
    for resource_type, resource_id in dict.fromkeys(keys):
        grouped.setdefault(resource_type, []).append(resource_id)
    for resource_type, ids in grouped.items():
        for start in range(0, len(ids), 500):
            yield resource_type, ids[start : start + 500]


def version(
    connection: Connection, resource_type: str, resource_id: str, version_id: int
) -> StoredVersion | None:
    key = {"resource_type": resource_type, "resource_id": resource_id, "version_id": version_id}
    row = connection.execute(_VERSION, key).first()
    if row is None:
        return None
    return StoredVersion(
        row.resource_type,
        row.id,
        row.version_id,
        row.last_updated,
        row.body is None,
        row.body,
        row.method,
    )


def existing_keys(connection: Connection, keys: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
    """Which of ``keys`` name a stored, not-deleted resource."""
    found: set[tuple[str, str]] = set()
    for resource_type, ids in _ids_by_type(keys):
        if len(ids) == 1:
            rows = connection.execute(
                _EXISTING_ONE, {"resource_type": resource_type, "resource_id": ids[0]}
            )
        else:
            rows = connection.execute(_EXISTING, {"resource_type": resource_type, "ids": ids})
        found.update((resource_type, row.id) for row in rows)
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
