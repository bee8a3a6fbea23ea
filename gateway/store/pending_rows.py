"""The rows one write transaction adds, sent as one ``executemany`` per table.

A referral transaction stores six resource versions with about sixty search-index rows;
statement by statement that was some forty round trips and as many compiled statements. Rows
are collected here and flushed before the transaction reads anything (so it always sees its
own writes) and before it commits.
"""

from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, bindparam, delete, insert, update

from conformance.search_index import IndexEntries
from gateway.store.tables import (
    INDEX_TABLES,
    date_table,
    reference_table,
    resource_table,
    string_table,
    task_party_table,
    token_table,
    version_table,
)

R = resource_table.c

_INSERT = {
    table: insert(table)
    for table in (version_table, resource_table, task_party_table, *INDEX_TABLES)
}
_CLEAR_INDEX = {
    table: delete(table).where(
        table.c.resource_type == bindparam("resource_type"),
        table.c.resource_id == bindparam("resource_id"),
    )
    for table in INDEX_TABLES
}
"""Sent with one parameter set per resource: an expanding ``IN`` list would be compiled
again on every execution."""
_CLEAR_PARTIES = delete(task_party_table).where(task_party_table.c.task_id == bindparam("task_id"))
_UPDATE_RESOURCE = (
    update(resource_table)
    .where(R.resource_type == bindparam("key_type"), R.id == bindparam("key_id"))
    .values(
        version_id=bindparam("new_version"),
        last_updated=bindparam("new_last_updated"),
        deleted=bindparam("new_deleted"),
    )
)


@dataclass
class PendingRows:
    versions: list[dict[str, Any]] = field(default_factory=list)
    new_resources: list[dict[str, Any]] = field(default_factory=list)
    changed_resources: list[dict[str, Any]] = field(default_factory=list)
    cleared: list[tuple[str, str]] = field(default_factory=list)
    """Resources (type, id) whose old index rows go before the new ones are added."""
    index_rows: dict[Table, list[dict[str, Any]]] = field(default_factory=lambda: defaultdict(list))
    parties_cleared: list[str] = field(default_factory=list)
    parties: list[dict[str, Any]] = field(default_factory=list)
    keys: set[tuple[str, str]] = field(default_factory=set)
    """The (type, id) of every resource these rows write."""

    def touches(self, keys: Iterable[tuple[str, str]]) -> bool:
        """Whether any of these resources has rows waiting here."""
        return bool(self.keys) and not self.keys.isdisjoint(keys)

    def touches_type(self, resource_type: str) -> bool:
        return any(key[0] == resource_type for key in self.keys)

    def add_version(
        self,
        *,
        resource_type: str,
        resource_id: str,
        version_id: int,
        last_updated: int,
        method: str,
        body: str | None,
        created_by: str | None,
    ) -> None:
        """A new version made current (``body`` None is a delete); the first one creates the
        resource row, recording ``created_by``."""
        self.keys.add((resource_type, resource_id))
        self.versions.append(
            {
                "resource_type": resource_type,
                "id": resource_id,
                "version_id": version_id,
                "last_updated": last_updated,
                "method": method,
                "body": body,
            }
        )
        if version_id == 1:
            self.new_resources.append(
                {
                    "resource_type": resource_type,
                    "id": resource_id,
                    "version_id": 1,
                    "last_updated": last_updated,
                    "deleted": body is None,
                    "created_by": created_by,
                }
            )
        else:
            self.changed_resources.append(
                {
                    "key_type": resource_type,
                    "key_id": resource_id,
                    "new_version": version_id,
                    "new_last_updated": last_updated,
                    "new_deleted": body is None,
                }
            )

    def replace_index(
        self, resource_type: str, resource_id: str, entries: IndexEntries | None, *, is_new: bool
    ) -> None:
        """The resource's index rows become ``entries`` (None: it has none, being deleted)."""
        if not is_new:
            self.cleared.append((resource_type, resource_id))
        if entries is None:
            return
        key = {"resource_type": resource_type, "resource_id": resource_id}
        rows = self.index_rows
        rows[token_table].extend(
            key | {"param": p, "system": s, "code": c}
            for p, s, c in {(t.param, t.system, t.code) for t in entries.tokens}
        )
        rows[reference_table].extend(
            key | {"param": p, "target_type": t, "target_id": i, "target_base": b}
            for p, t, i, b in {
                (r.param, r.target_type, r.target_id, r.target_base) for r in entries.references
            }
        )
        rows[date_table].extend(
            key | {"param": p, "low": lo, "high": hi}
            for p, lo, hi in {(d.param, d.low, d.high) for d in entries.dates}
        )
        rows[string_table].extend(
            key | {"param": p, "normalised": n, "exact": e}
            for p, n, e in {(s.param, s.normalised, s.exact) for s in entries.strings}
        )

    def set_task_parties(self, task_id: str, row: dict[str, Any] | None) -> None:
        """The Task's requester/owner row becomes ``row`` (None: the Task is gone)."""
        self.parties_cleared.append(task_id)
        if row is not None:
            self.parties.append({"task_id": task_id, **row})

    def flush(self, connection: Connection) -> None:
        if self.versions:
            connection.execute(_INSERT[version_table], self.versions)
        if self.new_resources:
            connection.execute(_INSERT[resource_table], self.new_resources)
        if self.changed_resources:
            connection.execute(_UPDATE_RESOURCE, self.changed_resources)
        if self.cleared:
            cleared = [{"resource_type": t, "resource_id": i} for t, i in self.cleared]
            for table in INDEX_TABLES:
                connection.execute(_CLEAR_INDEX[table], cleared)
        for table, rows in self.index_rows.items():
            if rows:
                connection.execute(_INSERT[table], rows)
        if self.parties_cleared:
            connection.execute(_CLEAR_PARTIES, [{"task_id": i} for i in self.parties_cleared])
        if self.parties:
            connection.execute(_INSERT[task_party_table], self.parties)
        self.clear()

    def clear(self) -> None:
        self.versions, self.new_resources, self.changed_resources = [], [], []
        self.cleared = []
        self.index_rows = defaultdict(list)
        self.parties_cleared, self.parties = [], []
        self.keys = set()
