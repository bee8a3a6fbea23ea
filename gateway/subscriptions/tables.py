"""Subscriptions' own state, next to their FHIR resource: what each one delivers, where, as
whom, its status and event counter, and the log of its events kept for ``$events``."""

from typing import Any

from sqlalchemy import BigInteger, Column, Index, Text
from sqlmodel import Field, SQLModel


class SubscriptionRow(SQLModel, table=True):
    """One Subscription as Loopgate honours it; rewritten with each version of the resource,
    except the counter and status the server moves itself."""

    __tablename__ = "subscription"
    __table_args__ = (
        Index("ix_subscription_type_status", "resource_type", "status"),
        Index("ix_subscription_heartbeat", "next_heartbeat_at"),
    )

    id: str = Field(primary_key=True, max_length=64)
    owner: str | None = Field(default=None, max_length=255)
    """The organization that created it; only it reads and changes it."""
    access: str = Field(sa_column=Column(Text, nullable=False))
    """The creating token's access context (JSON): notifications show what it may read."""
    topic: str = Field(max_length=255)
    resource_type: str = Field(max_length=64)
    filters: str = Field(sa_column=Column(Text, nullable=False))
    """JSON list of (parameter, value) pairs."""
    channel: str = Field(max_length=16)
    endpoint: str = Field(sa_column=Column(Text, nullable=False))
    headers: str = Field(sa_column=Column(Text, nullable=False))
    """JSON list of (name, value) pairs."""
    content: str = Field(max_length=16)
    heartbeat_s: int = 0
    timeout_s: int | None = None
    status: str = Field(max_length=16)
    events_since_start: int = Field(default=0, sa_type=BigInteger)
    next_heartbeat_at: int | None = Field(default=None, sa_type=BigInteger)
    last_error: str | None = Field(default=None, max_length=200)
    created_at: int = Field(sa_type=BigInteger)


class SubscriptionEventRow(SQLModel, table=True):
    """One event of one subscription, numbered from 1 with no gaps."""

    __tablename__ = "subscription_event"

    subscription_id: str = Field(primary_key=True, max_length=64)
    event_number: int = Field(primary_key=True, sa_type=BigInteger)
    occurred_at: int = Field(sa_type=BigInteger)
    focus_type: str = Field(max_length=64)
    focus_id: str = Field(max_length=64)
    focus_version: int
    method: str = Field(max_length=8)


class SubscriptionGenerationRow(SQLModel, table=True):
    """One row: a new random token each time a subscription is created, changed or turned
    off, so a process that keeps subscriptions in memory knows, with one cheap read in its
    own transaction, whether what it holds is still what the table says. Random, never a
    counter: a rolled-back change's value never comes back to stand for another change."""

    __tablename__ = "subscription_generation"

    name: str = Field(primary_key=True, max_length=32)
    token: str = Field(max_length=32)


subscription_table: Any = SubscriptionRow.__table__  # type: ignore[attr-defined]
subscription_event_table: Any = SubscriptionEventRow.__table__  # type: ignore[attr-defined]
subscription_generation_table: Any = SubscriptionGenerationRow.__table__  # type: ignore[attr-defined]
