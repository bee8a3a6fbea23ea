"""Partner settings, API keys and idempotency records."""

from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Text
from sqlmodel import Field, SQLModel


class PartnerRow(SQLModel, table=True):
    """One community organization's policy and where to tell it things."""

    __tablename__ = "partner"

    organization: str = Field(primary_key=True, max_length=255)
    consent_required: bool = False
    auto_decline_at_capacity: bool = False
    respond_within_hours: int | None = None
    close_within_days: int | None = None
    webhook_url: str | None = Field(default=None, max_length=2048)
    webhook_secret: str | None = Field(default=None, max_length=255)
    """Kept as given: Loopgate signs with it, so it cannot be a hash."""
    emails: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class ApiKeyRow(SQLModel, table=True):
    """An organization-bound API key, stored as a SHA-256 digest only."""

    __tablename__ = "partner_api_key"
    __table_args__ = (Index("ix_partner_api_key_organization", "organization"),)

    id: str = Field(primary_key=True, max_length=64)
    organization: str = Field(max_length=255)
    key_hash: str = Field(unique=True, max_length=64)
    prefix: str = Field(max_length=16)
    """The first characters of the key, so people can tell their keys apart."""
    label: str | None = Field(default=None, max_length=200)
    created_at: int = Field(sa_type=BigInteger)
    last_used_at: int | None = Field(default=None, sa_type=BigInteger)
    revoked_at: int | None = Field(default=None, sa_type=BigInteger)


class IdempotencyRow(SQLModel, table=True):
    """The answer given to one ``Idempotency-Key``, replayed when the key comes again."""

    __tablename__ = "idempotency_record"

    organization: str = Field(primary_key=True, max_length=255)
    key: str = Field(primary_key=True, max_length=255)
    fingerprint: str = Field(max_length=64)
    status_code: int
    body: str = Field(sa_column=Column(Text, nullable=False))
    created_at: int = Field(sa_type=BigInteger)


partner_table: Any = PartnerRow.__table__  # type: ignore[attr-defined]
api_key_table: Any = ApiKeyRow.__table__  # type: ignore[attr-defined]
idempotency_table: Any = IdempotencyRow.__table__  # type: ignore[attr-defined]
