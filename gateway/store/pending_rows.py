"""The rows one write transaction adds, sent as one multi-row statement per table.

A referral transaction stores six resource versions with about sixty search-index rows;
statement by statement that was some forty round trips and as many compiled statements. Rows
are collected here and flushed before the transaction reads anything (so it always sees its
own writes) and before it commits, straight to the driver (``bulk_statements``).
"""

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from conformance.search_index import IndexEntries
from gateway.store.bulk_statements import delete_where, insert_rows, update_where
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
_CLEAR_INDEX = [delete_where(table, ("resource_type", "resource_id")) for table in INDEX_TABLES]
_INSERT_INDEX = {
    token_table: insert_rows(
        token_table, ("resource_type", "resource_id", "param", "system", "code")
    ),
    reference_table: insert_rows(
        reference_table,
        ("resource_type", "resource_id", "param", "target_type", "target_id", "target_base"),
    ),
    date_table: insert_rows(date_table, ("resource_type", "resource_id", "param", "low", "high")),
    string_table: insert_rows(
        string_table, ("resource_type", "resource_id", "param", "normalised", "exact")
    ),
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
    """Resources (type, id) whose old index rows go before the new ones are added."""
    tokens: list[Row] = field(default_factory=list)
    references: list[Row] = field(default_factory=list)
    dates: list[Row] = field(default_factory=list)
    strings: list[Row] = field(default_factory=list)
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
        """The resource's index rows become ``entries`` (None: it has none, being deleted)."""
        if not is_new:
            self.cleared.append((resource_type, resource_id))
        if entries is None:
            return
        key = (resource_type, resource_id)
        self.tokens.extend(
            key + row for row in {(t.param, t.system, t.code) for t in entries.tokens}
        )
        self.references.extend(
            key + row
            for row in {
                (r.param, r.target_type, r.target_id, r.target_base) for r in entries.references
            }
        )
        self.dates.extend(key + row for row in {(d.param, d.low, d.high) for d in entries.dates})
        self.strings.extend(
            key + row for row in {(s.param, s.normalised, s.exact) for s in entries.strings}
        )

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
        _INSERT_INDEX[token_table].send(connection, self.tokens)
        _INSERT_INDEX[reference_table].send(connection, self.references)
        _INSERT_INDEX[date_table].send(connection, self.dates)
        _INSERT_INDEX[string_table].send(connection, self.strings)
        _CLEAR_PARTIES.send(connection, self.parties_cleared)
        _INSERT_PARTIES.send(connection, self.parties)
        self.clear()

    def clear(self) -> None:
        self.versions, self.new_resources, self.changed_resources = [], [], []
        self.cleared = []
        self.tokens, self.references, self.dates, self.strings = [], [], [], []
        self.parties_cleared, self.parties = [], []
        self.keys = set()
