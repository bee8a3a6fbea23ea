"""The FHIR store's tables: current versions, every version, and the search index.

Bodies are kept once, in ``resource_version``, exactly as served (validated client JSON with the
server's ``id`` and ``meta`` patched in), so reads return stored bytes without rebuilding them
through model classes (reference/perf.md §4.1). Times are UTC epoch microseconds: comparable
as integers on SQLite and PostgreSQL alike.
"""

from sqlalchemy import BigInteger, Column, Index, Integer, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel


class ResourceRow(SQLModel, table=True):
    """The current version of each resource, deleted or not."""

    __tablename__ = "resource"
    __table_args__ = (Index("ix_resource_type_updated", "resource_type", "last_updated"),)

    resource_type: str = Field(primary_key=True, max_length=64)
    id: str = Field(primary_key=True, max_length=64)
    version_id: int
    last_updated: int = Field(sa_type=BigInteger)
    deleted: bool = False
    created_by: str | None = Field(default=None, max_length=255)
    """The organization that created the resource (None for Loopgate's own records)."""


class TaskPartyRow(SQLModel, table=True):
    """Each current Task's requester and owner organizations, resolved when it was written.

    Visibility ("a CBO sees the Tasks it owns and unowned requested ones") is a query on this
    table; resolving PractitionerRoles at search time would cost a join per Task.
    """

    __tablename__ = "task_party"
    __table_args__ = (
        Index("ix_task_party_requester", "requester_org"),
        # the Tasks an organization owns, by status and age (overdue reminders)
        Index("ix_task_party_owner_status_updated", "owner_org", "status", "last_updated"),
        # a CBO's inbox poll (owner, status, _lastUpdated) is one range scan here
        Index("ix_task_party_inbox", "owner_ref", "status", "last_updated"),
    )

    task_id: str = Field(primary_key=True, max_length=64)
    requester_org: str | None = Field(default=None, max_length=255)
    owner_org: str | None = Field(default=None, max_length=255)
    has_owner: bool = False
    owner_ref: str | None = Field(default=None, max_length=255)
    """``Task.owner`` as written, when it is local (``PractitionerRole/x``, not its
    organization): what the ``owner`` search parameter matches."""
    status: str = Field(max_length=32)
    last_updated: int = Field(sa_type=BigInteger)
    """The Task's ``meta.lastUpdated``, as in ``resource``."""


class ResourceVersionRow(SQLModel, table=True):
    """Every version of every resource; ``body`` is NULL for a delete."""

    __tablename__ = "resource_version"
    __table_args__ = (
        Index("ix_resource_version_type_updated", "resource_type", "last_updated"),
        Index("ix_resource_version_updated", "last_updated"),
    )

    resource_type: str = Field(primary_key=True, max_length=64)
    id: str = Field(primary_key=True, max_length=64)
    version_id: int = Field(primary_key=True)
    last_updated: int = Field(sa_type=BigInteger)
    method: str = Field(max_length=8)
    body: str | None = Field(default=None, sa_column=Column(Text, nullable=True))


class TokenIndexRow(SQLModel, table=True):
    """token and uri search values: codes, identifiers, booleans, profiles."""

    __tablename__ = "search_token"
    __table_args__ = (
        # resource_id before system: a search probing one candidate's status (code known,
        # system not) matches four leading columns here and ends in one row
        Index("ix_search_token_lookup", "resource_type", "param", "code", "resource_id", "system"),
    )

    resource_type: str = Field(primary_key=True, max_length=64)
    resource_id: str = Field(primary_key=True, max_length=64)
    param: str = Field(primary_key=True, max_length=64)
    system: str = Field(primary_key=True, max_length=255)
    code: str = Field(primary_key=True, max_length=255)


class ReferenceIndexRow(SQLModel, table=True):
    """reference search values; ``target_base`` is empty for references to this server."""

    __tablename__ = "search_reference"
    __table_args__ = (
        Index(
            "ix_search_reference_lookup",
            "resource_type",
            "param",
            "target_id",
            "target_type",
            "target_base",
            "resource_id",
        ),
        Index("ix_search_reference_target", "target_type", "target_id", "target_base"),
    )

    resource_type: str = Field(primary_key=True, max_length=64)
    resource_id: str = Field(primary_key=True, max_length=64)
    param: str = Field(primary_key=True, max_length=64)
    target_type: str = Field(primary_key=True, max_length=64)
    target_id: str = Field(primary_key=True, max_length=64)
    target_base: str = Field(primary_key=True, max_length=255)


class DateIndexRow(SQLModel, table=True):
    """date search values as [low, high] microsecond ranges."""

    __tablename__ = "search_date"
    __table_args__ = (Index("ix_search_date_lookup", "resource_type", "param", "low", "high"),)

    resource_type: str = Field(primary_key=True, max_length=64)
    resource_id: str = Field(primary_key=True, max_length=64)
    param: str = Field(primary_key=True, max_length=64)
    low: int = Field(primary_key=True, sa_type=BigInteger)
    high: int = Field(primary_key=True, sa_type=BigInteger)


class StringIndexRow(SQLModel, table=True):
    """string search values, normalised for the default starts-with match."""

    __tablename__ = "search_string"
    __table_args__ = (Index("ix_search_string_lookup", "resource_type", "param", "normalised"),)

    resource_type: str = Field(primary_key=True, max_length=64)
    resource_id: str = Field(primary_key=True, max_length=64)
    param: str = Field(primary_key=True, max_length=64)
    normalised: str = Field(primary_key=True, max_length=200)
    exact: str = Field(primary_key=True, max_length=200)


resource_table = ResourceRow.__table__  # type: ignore[attr-defined]
version_table = ResourceVersionRow.__table__  # type: ignore[attr-defined]
token_table = TokenIndexRow.__table__  # type: ignore[attr-defined]
reference_table = ReferenceIndexRow.__table__  # type: ignore[attr-defined]
date_table = DateIndexRow.__table__  # type: ignore[attr-defined]
string_table = StringIndexRow.__table__  # type: ignore[attr-defined]
task_party_table = TaskPartyRow.__table__  # type: ignore[attr-defined]

INDEX_TABLES = (token_table, reference_table, date_table, string_table)


class OutboxMessageRow(SQLModel, table=True):
    """One outbound call owed to someone (a webhook, an e-mail, a subscription notification),
    written in the transaction of the change that caused it; ``gateway.outbox`` delivers it.

    ``seq`` is the database's insert order, which orders messages of one (kind, destination,
    ordering_key); ``id`` (UUIDv7) is the public id, sent as the event id on every attempt.
    """

    __tablename__ = "outbox_message"
    __table_args__ = (
        UniqueConstraint("id", name="uq_outbox_message_id"),
        Index("ix_outbox_message_due", "status", "next_attempt_at"),
        Index("ix_outbox_message_order", "kind", "destination", "ordering_key", "status", "seq"),
        # the claim's walk from one key's first pending message to the next (claims.py)
        Index(
            "ix_outbox_message_pending_key",
            "kind",
            "destination",
            "ordering_key",
            "seq",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
        # the claim's look for pending messages with no ordering key (claims.py)
        Index(
            "ix_outbox_message_pending_unordered",
            "ordering_key",
            "next_attempt_at",
            "seq",
            sqlite_where=text("status = 'pending' AND ordering_key IS NULL"),
            postgresql_where=text("status = 'pending' AND ordering_key IS NULL"),
        ),
    )

    seq: int | None = Field(
        default=None,
        sa_column=Column(
            BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
        ),
    )
    id: str = Field(max_length=36)
    kind: str = Field(max_length=32)
    destination: str = Field(max_length=255)
    ordering_key: str | None = Field(default=None, max_length=255)
    payload: str = Field(sa_column=Column(Text, nullable=False))
    created_at: int = Field(sa_type=BigInteger)
    status: str = Field(max_length=16)
    """pending | delivered | dead"""
    attempts: int = 0
    next_attempt_at: int = Field(sa_type=BigInteger)
    pending_since: int = Field(sa_type=BigInteger)
    """When the current delivery effort began (enqueued, or retried by hand): the give-up age
    counts from here."""
    claimed_by: str | None = Field(default=None, max_length=64)
    claimed_until: int | None = Field(default=None, sa_type=BigInteger)
    last_error: str | None = Field(default=None, max_length=200)
    delivered_at: int | None = Field(default=None, sa_type=BigInteger)
    dead_at: int | None = Field(default=None, sa_type=BigInteger)


class OutboxAttemptRow(SQLModel, table=True):
    """How each delivery attempt of an outbox message ended (PHI-free)."""

    __tablename__ = "outbox_attempt"

    message_id: str = Field(primary_key=True, max_length=36)
    attempt: int = Field(primary_key=True)
    finished_at: int = Field(sa_type=BigInteger)
    duration_ms: int | None = None
    outcome: str = Field(max_length=16)
    """delivered | retry | dead | abandoned (the worker died or stopped mid-attempt)"""
    status_code: int | None = None
    error: str | None = Field(default=None, max_length=200)
    worker: str = Field(max_length=64)


outbox_table = OutboxMessageRow.__table__  # type: ignore[attr-defined]
outbox_attempt_table = OutboxAttemptRow.__table__  # type: ignore[attr-defined]
