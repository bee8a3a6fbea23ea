"""The rows one write transaction adds, sent as one multi-row statement per table.

A referral transaction stores six resource versions with about sixty search-index rows;
statement by statement that was some forty round trips and as many compiled statements. Rows
are collected here and flushed before the transaction reads anything (so it always sees its
own writes) and before it commits, straight to the driver (``bulk_statements``). An updated
resource's index rows are compared with those stored, and only the difference is written.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table

from conformance.search_index import IndexEntries
from gateway.store import driver
from gateway.store.bulk_statements import delete_where, insert_rows, update_where
from gateway.store.driver import Statement
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

_INSERT_VERSIONS = insert_rows(
    version_table, ("resource_type", "id", "version_id", "last_updated", "method", "body")
)
_INSERT_RESOURCES = insert_rows(
    resource_table, ("resource_type", "id", "version_id", "last_updated", "deleted", "created_by")
)
_UPDATE_RESOURCES = update_where(
    resource_table, ("resource_type", "id"), ("version_id", "last_updated", "deleted")
)
_RESOURCE_KEY = ("resource_type", "resource_id")
_INDEX_COLUMNS: dict[Table, tuple[str, ...]] = {
    token_table: ("param", "system", "code"),
    reference_table: ("param", "target_type", "target_id", "target_base"),
    date_table: ("param", "low", "high"),
    string_table: ("param", "normalised", "exact"),
}
_CLEAR_INDEX = [delete_where(table, _RESOURCE_KEY) for table in INDEX_TABLES]
_INSERT_INDEX = {t: insert_rows(t, _RESOURCE_KEY + c) for t, c in _INDEX_COLUMNS.items()}
_DELETE_INDEX_ROWS = {t: delete_where(t, _RESOURCE_KEY + c) for t, c in _INDEX_COLUMNS.items()}
# One resource's stored index rows from all four tables in one statement: each branch puts
# its text columns in the text slots and its numbers in the number slots, so the UNION's
# column types agree; the first column says which table (its position in INDEX_TABLES).
_SELECTED = {
    token_table: "param, system, code, '', 0, 0",
    reference_table: "param, target_type, target_id, target_base, 0, 0",
    date_table: "param, '', '', '', low, high",
    string_table: "param, normalised, exact, '', 0, 0",
}
_STORED_INDEX = Statement(
    " UNION ALL ".join(
        f"SELECT {n}, {_SELECTED[table]} FROM {table.name} "
        "WHERE resource_type = ? AND resource_id = ?"
        for n, table in enumerate(INDEX_TABLES)
    )
)
_SLOTS = {  # where each table's columns are in a row of _STORED_INDEX
    token_table: (1, 2, 3),
    reference_table: (1, 2, 3, 4),
    date_table: (1, 5, 6),
    string_table: (1, 2, 3),
}
_CLEAR_PARTIES = delete_where(task_party_table, ("task_id",))
PARTY_COLUMNS = (
    "task_id",
    "requester_org",
    "owner_org",
    "has_owner",
    "owner_ref",
    "status",
    "last_updated",
)
_INSERT_PARTIES = insert_rows(task_party_table, PARTY_COLUMNS)

Row = tuple[Any, ...]


@dataclass
class PendingRows:
    versions: list[Row] = field(default_factory=list)
    new_resources: list[Row] = field(default_factory=list)
    changed_resources: list[Row] = field(default_factory=list)
    cleared: list[Row] = field(default_factory=list)
    """Resources (type, id) whose index rows all go (deleted resources)."""
    index_rows: dict[Table, list[Row]] = field(default_factory=dict)
    """Index rows of new resources, per table, each starting with its resource's key."""
    reindexed: dict[tuple[str, str], dict[Table, set[Row]]] = field(default_factory=dict)
    """The index rows each changed resource should have, per table, without its key: only
    the difference from what is stored is written (a status change rewrites one row)."""
    parties_cleared: list[Row] = field(default_factory=list)
    parties: list[Row] = field(default_factory=list)
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
        self.versions.append((resource_type, resource_id, version_id, last_updated, method, body))
        deleted = body is None
        if version_id == 1:
            self.new_resources.append(
                (resource_type, resource_id, 1, last_updated, deleted, created_by)
            )
        else:
            self.changed_resources.append(
                (version_id, last_updated, deleted, resource_type, resource_id)
            )

    def replace_index(
        self, resource_type: str, resource_id: str, entries: IndexEntries | None, *, is_new: bool
    ) -> None:
        """The resource's index rows become ``entries`` (None: it has none, being deleted).

        A write reads the resource it changes first, which sends any rows pending for it, so
        each resource is here at most once.
        """
        key = (resource_type, resource_id)
        if entries is None:
            if not is_new:
                self.cleared.append(key)
            return
        rows = _index_rows(entries)
        if not is_new:
            self.reindexed[key] = rows
            return
        for table, table_rows in rows.items():
            self.index_rows.setdefault(table, []).extend(key + row for row in table_rows)

    def set_task_parties(self, task_id: str, row: dict[str, Any] | None) -> None:
        """The Task's requester/owner row becomes ``row`` (None: the Task is gone)."""
        self.parties_cleared.append((task_id,))
        if row is not None:
            values = {"task_id": task_id, **row}
            self.parties.append(tuple(values[name] for name in PARTY_COLUMNS))

    def flush(self, connection: Connection) -> None:
        if not self.keys and not self.parties_cleared:
            return
        _INSERT_VERSIONS.send(connection, self.versions)
        _INSERT_RESOURCES.send(connection, self.new_resources)
        _UPDATE_RESOURCES.send(connection, self.changed_resources)
        for clear in _CLEAR_INDEX:
            clear.send(connection, self.cleared)
        added, removed = self._index_changes(connection)
        for table in INDEX_TABLES:
            _DELETE_INDEX_ROWS[table].send(connection, removed.get(table, []))
            _INSERT_INDEX[table].send(connection, added.get(table, []))
        _CLEAR_PARTIES.send(connection, self.parties_cleared)
        _INSERT_PARTIES.send(connection, self.parties)
        self.clear()

    def _index_changes(
        self, connection: Connection
    ) -> tuple[dict[Table, list[Row]], dict[Table, list[Row]]]:
        """Index rows to add (those of new resources included) and to remove, per table."""
        added = {table: list(rows) for table, rows in self.index_rows.items()}
        removed: dict[Table, list[Row]] = {}
        for key, wanted in self.reindexed.items():
            stored: dict[Table, set[Row]] = {table: set() for table in INDEX_TABLES}
            for row in driver.rows(connection, _STORED_INDEX, key * len(INDEX_TABLES)):
                table = INDEX_TABLES[row[0]]
                stored[table].add(tuple(row[slot] for slot in _SLOTS[table]))
            for table in INDEX_TABLES:
                have, want = stored[table], wanted[table]
                added.setdefault(table, []).extend(key + row for row in want - have)
                removed.setdefault(table, []).extend(key + row for row in have - want)
        return added, removed

    def clear(self) -> None:
        self.versions, self.new_resources, self.changed_resources = [], [], []
        self.cleared, self.index_rows, self.reindexed = [], {}, {}
        self.parties_cleared, self.parties = [], []
        self.keys = set()


def _index_rows(entries: IndexEntries) -> dict[Table, set[Row]]:
    """``entries`` as index-table rows without the resource's key, duplicates dropped."""
    return {
        token_table: {(t.param, t.system, t.code) for t in entries.tokens},
        reference_table: {
            (r.param, r.target_type, r.target_id, r.target_base) for r in entries.references
        },
        date_table: {(d.param, d.low, d.high) for d in entries.dates},
        string_table: {(s.param, s.normalised, s.exact) for s in entries.strings},
    }
