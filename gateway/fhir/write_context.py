"""The state one logical write carries: its connection, actor, timestamp and pending rows."""

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection

from conformance.access import AccessContext
from conformance.task_rules import TaskParties
from gateway.store.pending_rows import PendingRows
from gateway.store.resource_rows import StoredVersion


def now_us() -> int:
    return time.time_ns() // 1000


@dataclass(frozen=True)
class TaskWrite:
    """One Task version a write stored, with the version it replaced (None when new)."""

    previous: dict[str, Any] | None
    current: dict[str, Any]
    stored: StoredVersion
    parties: TaskParties


@dataclass
class WriteContext:
    _connection: Connection
    actor: AccessContext
    now: int = field(default_factory=now_us)
    defer_reference_checks: bool = False
    """In a transaction, references are checked once every entry is written."""
    pending_references: list[tuple[str, tuple[str, str]]] = field(default_factory=list)
    written: list[StoredVersion] = field(default_factory=list)
    """Every version this write stored, in order (Provenance included)."""
    pending: PendingRows = field(default_factory=PendingRows)
    task_writes: list[TaskWrite] = field(default_factory=list)
    """The Task versions written, for the service's task listeners at the end of the write."""
    after_commit: list[Callable[[], None]] = field(default_factory=list)
    """Called once the write has committed (e.g. wake the outbox worker)."""
    """Rows to add, sent in bulk (see ``connection``)."""

    @property
    def connection(self) -> Connection:
        """The transaction's connection for reading: the rows this write has added so far are
        sent first, so every read sees them."""
        self.pending.flush(self._connection)
        return self._connection

    def reading(self, keys: Iterable[tuple[str, str]]) -> Connection:
        """The connection for reading these resources (by type and id): the rows this write
        has added are sent first only if they write one of them, so a transaction's pending
        rows usually go in one batch at the end."""
        if self.pending.touches(keys):
            self.pending.flush(self._connection)
        return self._connection

    @property
    def other_tables(self) -> Connection:
        """The connection for statements on tables this write's pending rows never touch
        (partners, event counters and logs, subscriptions, the outbox): nothing is sent
        first."""
        return self._connection

    def reading_type(self, resource_type: str) -> Connection:
        """The connection for searching one resource type (see ``reading``)."""
        if self.pending.touches_type(resource_type):
            self.pending.flush(self._connection)
        return self._connection

    def flush(self) -> None:
        self.pending.flush(self._connection)
