"""smart_auth's own tables: registrations, browser sessions, launches, codes, tokens, jtis, keys.

Bearer secrets (session ids, launch handles, codes, access and refresh tokens) are stored only
as SHA-256 hex digests; passwords and client secrets as argon2 hashes. Times are UTC epoch
seconds. Queries go through SQLAlchemy Core on the ``*_table`` objects below.
"""

from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


class ClientRow(SQLModel, table=True):
    """A registered SMART client; ``organization`` binds backend clients to a tenant."""

    __tablename__ = "smart_client"

    client_id: str = Field(primary_key=True, max_length=128)
    client_type: str = Field(max_length=32)
    organization: str | None = Field(default=None, max_length=128)
    redirect_uris: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    launch_uri: str | None = Field(default=None, max_length=2048)
    scope: str = Field(sa_column=Column(Text, nullable=False))
    jwks: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    jwks_uri: str | None = Field(default=None, max_length=2048)
    secret_hash: str | None = Field(default=None, max_length=255)


class UserRow(SQLModel, table=True):
    """A person who signs in at ``/auth/login``; ``fhir_user`` is a relative reference."""

    __tablename__ = "smart_user"

    username: str = Field(primary_key=True, max_length=128)
    password_hash: str = Field(max_length=255)
    fhir_user: str = Field(max_length=128)
    organization: str = Field(max_length=128)
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class SessionRow(SQLModel, table=True):
    """A signed-in browser, keyed by the hash of its cookie value."""

    __tablename__ = "smart_session"
    __table_args__ = (Index("ix_smart_session_expires", "expires_at"),)

    session_hash: str = Field(primary_key=True, max_length=64)
    username: str = Field(max_length=128)
    created_at: int = Field(sa_type=BigInteger)
    expires_at: int = Field(sa_type=BigInteger)


class LaunchRow(SQLModel, table=True):
    """An EHR launch handle: opaque, single use, bound to one client and one user."""

    __tablename__ = "smart_launch"
    __table_args__ = (Index("ix_smart_launch_expires", "expires_at"),)

    launch_hash: str = Field(primary_key=True, max_length=64)
    client_id: str = Field(max_length=128)
    username: str = Field(max_length=128)
    patient: str | None = Field(default=None, max_length=128)
    encounter: str | None = Field(default=None, max_length=128)
    fhir_context: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    """Further references in context, e.g. the ``ServiceRequest/…`` being referred."""
    expires_at: int = Field(sa_type=BigInteger)
    used_at: int | None = Field(default=None, sa_type=BigInteger)


class AuthCodeRow(SQLModel, table=True):
    """An authorization code; kept after use so a replay can revoke what it produced."""

    __tablename__ = "smart_auth_code"
    __table_args__ = (Index("ix_smart_auth_code_expires", "expires_at"),)

    code_hash: str = Field(primary_key=True, max_length=64)
    family_id: str = Field(max_length=64)
    client_id: str = Field(max_length=128)
    username: str = Field(max_length=128)
    redirect_uri: str = Field(max_length=2048)
    scope: str = Field(sa_column=Column(Text, nullable=False))
    code_challenge: str = Field(max_length=128)
    nonce: str | None = Field(default=None, max_length=512)
    context: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    expires_at: int = Field(sa_type=BigInteger)
    used_at: int | None = Field(default=None, sa_type=BigInteger)


class TokenRow(SQLModel, table=True):
    """An issued access token and its optional refresh token; a family shares one grant."""

    __tablename__ = "smart_token"
    __table_args__ = (
        Index("ix_smart_token_family", "family_id"),
        Index("ix_smart_token_expires", "expires_at"),
        UniqueConstraint("access_hash", name="uq_smart_token_access_hash"),
        UniqueConstraint("refresh_hash", name="uq_smart_token_refresh_hash"),
    )

    id: str = Field(primary_key=True, max_length=64)
    access_hash: str = Field(max_length=64)
    refresh_hash: str | None = Field(default=None, max_length=64)
    family_id: str = Field(max_length=64)
    parent_id: str | None = Field(default=None, max_length=64)
    grant_type: str = Field(max_length=32)
    client_id: str = Field(max_length=128)
    username: str | None = Field(default=None, max_length=128)
    fhir_user: str | None = Field(default=None, max_length=128)
    organization: str | None = Field(default=None, max_length=128)
    roles: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    scope: str = Field(sa_column=Column(Text, nullable=False))
    context: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    aud: str = Field(max_length=2048)
    id_token_issued: bool = False
    issued_at: int = Field(sa_type=BigInteger)
    expires_at: int = Field(sa_type=BigInteger)
    refresh_expires_at: int | None = Field(default=None, sa_type=BigInteger)
    revoked_at: int | None = Field(default=None, sa_type=BigInteger)
    refresh_used_at: int | None = Field(default=None, sa_type=BigInteger)


class JtiRow(SQLModel, table=True):
    """A client-assertion ``jti`` seen, kept until the assertion could no longer be valid."""

    __tablename__ = "smart_jti"
    __table_args__ = (Index("ix_smart_jti_expires", "expires_at"),)

    iss: str = Field(primary_key=True, max_length=128)
    jti: str = Field(primary_key=True, max_length=256)
    expires_at: int = Field(sa_type=BigInteger)


class SigningKeyRow(SQLModel, table=True):
    """Our RS256 id_token signing key, as a private JWK (the newest one signs)."""

    __tablename__ = "smart_signing_key"

    kid: str = Field(primary_key=True, max_length=64)
    alg: str = Field(max_length=16)
    private_jwk: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))
    created_at: int = Field(sa_type=BigInteger)


client_table = ClientRow.__table__  # type: ignore[attr-defined]
user_table = UserRow.__table__  # type: ignore[attr-defined]
session_table = SessionRow.__table__  # type: ignore[attr-defined]
launch_table = LaunchRow.__table__  # type: ignore[attr-defined]
code_table = AuthCodeRow.__table__  # type: ignore[attr-defined]
token_table = TokenRow.__table__  # type: ignore[attr-defined]
jti_table = JtiRow.__table__  # type: ignore[attr-defined]
signing_key_table = SigningKeyRow.__table__  # type: ignore[attr-defined]
