"""Live-update tables: each organization's referral events in commit order, the counter that
numbers them, and the one-time tickets browsers open a stream with."""

from typing import Any

from sqlalchemy import BigInteger, Index
from sqlmodel import Field, SQLModel


class ReferralEventRow(SQLModel, table=True):
    """One referral change as one organization sees it; PHI-free (ids and statuses only).

    ``seq`` counts per organization, in the order the changes committed (see
    ``ReferralEventSequenceRow``): it is the stream's event id, and a client resuming after it
    misses nothing and sees nothing twice.
    """

    __tablename__ = "referral_event"
    __table_args__ = (Index("ix_referral_event_created", "created_at"),)

    organization: str = Field(primary_key=True, max_length=255)
    seq: int = Field(primary_key=True, sa_type=BigInteger)
    type: str = Field(max_length=32)
    referral_id: str = Field(max_length=64)
    version: int
    status: str = Field(max_length=32)
    previous_status: str | None = Field(default=None, max_length=32)
    changed_by: str | None = Field(default=None, max_length=255)
    message_number: int | None = None
    created_at: int = Field(sa_type=BigInteger)


class ReferralEventSequenceRow(SQLModel, table=True):
    """The last ``seq`` given to an organization's events. Writers bump it inside their
    transaction, so its row lock hands out numbers in commit order (a database sequence would
    not: a later number can commit first, and a reader past it would skip the earlier one)."""

    __tablename__ = "referral_event_sequence"

    organization: str = Field(primary_key=True, max_length=255)
    last_seq: int = Field(sa_type=BigInteger)


class StreamTicketRow(SQLModel, table=True):
    """A one-time ticket to open an organization's event stream; only its SHA-256 is kept."""

    __tablename__ = "event_stream_ticket"
    __table_args__ = (Index("ix_event_stream_ticket_expires", "expires_at"),)

    ticket_hash: str = Field(primary_key=True, max_length=64)
    organization: str = Field(max_length=255)
    client_id: str | None = Field(default=None, max_length=255)
    expires_at: int = Field(sa_type=BigInteger)
    used_at: int | None = Field(default=None, sa_type=BigInteger)


event_table: Any = ReferralEventRow.__table__  # type: ignore[attr-defined]
sequence_table: Any = ReferralEventSequenceRow.__table__  # type: ignore[attr-defined]
ticket_table: Any = StreamTicketRow.__table__  # type: ignore[attr-defined]
