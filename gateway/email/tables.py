"""E-mail link keys, used links and reminders sent: what makes links verifiable, single-use,
and reminders one per referral across every Loopgate process."""

from typing import Any

from sqlalchemy import BigInteger
from sqlmodel import Field, SQLModel


class EmailLinkKeyRow(SQLModel, table=True):
    """An HMAC key e-mail links are signed with; kept here so every process and every restart
    signs and checks with the same one."""

    __tablename__ = "email_link_key"

    kid: str = Field(primary_key=True, max_length=16)
    secret: str = Field(max_length=128)
    """Hex of 32 random bytes."""
    created_at: int = Field(sa_type=BigInteger)


class EmailLinkUseRow(SQLModel, table=True):
    """A link that has acted, written in the transaction of the action it took."""

    __tablename__ = "email_link_use"

    link_id: str = Field(primary_key=True, max_length=36)
    referral_id: str = Field(max_length=64)
    organization: str = Field(max_length=255)
    status: str = Field(max_length=32)
    """The referral status the action led to (accepted, rejected)."""
    used_at: int = Field(sa_type=BigInteger)


class EmailReminderRow(SQLModel, table=True):
    """An overdue reminder sent for one referral, organization and stage (respond or close);
    the primary key is what stops a second process from sending it again."""

    __tablename__ = "email_reminder"

    referral_id: str = Field(primary_key=True, max_length=64)
    organization: str = Field(primary_key=True, max_length=255)
    stage: str = Field(primary_key=True, max_length=16)
    sent_at: int = Field(sa_type=BigInteger)


link_key_table: Any = EmailLinkKeyRow.__table__  # type: ignore[attr-defined]
link_use_table: Any = EmailLinkUseRow.__table__  # type: ignore[attr-defined]
reminder_table: Any = EmailReminderRow.__table__  # type: ignore[attr-defined]
