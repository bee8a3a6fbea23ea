"""Access and refresh tokens: opaque 256-bit values, stored only as SHA-256 digests.

One row per issued access token, with its refresh token if any. Rows of one authorization
share a ``family_id``: a replayed code or a reused refresh token revokes the whole family
(RFC 6749 §4.1.2 and §10.4; SMART best practices).
"""

import secrets
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, bindparam, insert, select, update

from smart_auth.credentials import digest, new_secret
from smart_auth.db import first_row
from smart_auth.tables import token_table

_T = token_table.c


@dataclass(frozen=True)
class NewToken:
    """What to issue; the secrets are minted by ``issue``."""

    grant_type: str
    client_id: str
    scope: str
    aud: str
    family_id: str
    expires_in: int
    refresh_ttl: int | None = None
    """Seconds the refresh token lives; None issues no refresh token."""
    username: str | None = None
    fhir_user: str | None = None
    organization: str | None = None
    roles: tuple[str, ...] = ()
    context: dict[str, Any] = field(default_factory=dict)
    parent_id: str | None = None
    id_token_issued: bool = False


@dataclass(frozen=True)
class Issued:
    access_token: str
    refresh_token: str | None
    expires_in: int


def new_family_id() -> str:
    return secrets.token_hex(16)


def issue(connection: Connection, token: NewToken, *, at: int) -> Issued:
    access = new_secret()
    refresh = new_secret() if token.refresh_ttl is not None else None
    connection.execute(
        insert(token_table).values(
            id=secrets.token_hex(16),
            access_hash=digest(access),
            refresh_hash=digest(refresh) if refresh is not None else None,
            family_id=token.family_id,
            parent_id=token.parent_id,
            grant_type=token.grant_type,
            client_id=token.client_id,
            username=token.username,
            fhir_user=token.fhir_user,
            organization=token.organization,
            roles=list(token.roles),
            scope=token.scope,
            context=token.context,
            aud=token.aud,
            id_token_issued=token.id_token_issued,
            issued_at=at,
            expires_at=at + token.expires_in,
            refresh_expires_at=at + token.refresh_ttl if token.refresh_ttl is not None else None,
        )
    )
    return Issued(access, refresh, token.expires_in)


_BY_ACCESS_HASH = select(token_table).where(_T.access_hash == bindparam("access_hash"))
"""Built once: this lookup runs on every API request."""


def by_access_token(connection: Connection, access_token: str) -> Any | None:
    return connection.execute(_BY_ACCESS_HASH, {"access_hash": digest(access_token)}).first()


@dataclass(frozen=True)
class BearerGrant:
    """What an access token grants, as a protected route needs it."""

    organization: str | None
    fhir_user: str | None
    client_id: str
    scope: str
    context: dict[str, Any]
    roles: list[str]
    aud: str
    expires_at: int
    revoked_at: int | None


_BEARER_GRANT = (
    "SELECT organization, fhir_user, client_id, scope, context, roles, aud, expires_at, "
    f"revoked_at FROM {token_table.name} WHERE access_hash = ?"
)


def bearer_grant(engine: Engine, access_token: str) -> BearerGrant | None:
    """The grant of ``access_token`` (active or not), or None for a token never issued.

    Every API request asks this, so it is one statement on a DB-API connection
    (``smart_auth.db.first_row``), not SQLAlchemy Core inside a transaction."""
    row = first_row(engine, _BEARER_GRANT, (digest(access_token),))
    if row is None:
        return None
    organization, fhir_user, client_id, scope, context, roles, aud, expires_at, revoked_at = row
    return BearerGrant(
        organization=organization,
        fhir_user=fhir_user,
        client_id=client_id,
        scope=scope,
        context=_json(context),
        roles=_json(roles),
        aud=aud,
        expires_at=expires_at,
        revoked_at=revoked_at,
    )


def _json(value: Any) -> Any:
    """A JSON column's value: SQLite hands back its text, PostgreSQL the decoded value."""
    return orjson.loads(value) if isinstance(value, str | bytes) else value


def by_refresh_token(connection: Connection, refresh_token: str) -> Any | None:
    return connection.execute(
        select(token_table).where(_T.refresh_hash == digest(refresh_token))
    ).first()


def is_active(row: Any, *, at: int) -> bool:
    """The access token of ``row`` is usable now."""
    return row.revoked_at is None and row.expires_at > at


def refresh_is_active(row: Any, *, at: int) -> bool:
    return (
        row.revoked_at is None
        and row.refresh_used_at is None
        and row.refresh_expires_at is not None
        and row.refresh_expires_at > at
    )


def claim_refresh(connection: Connection, row_id: str, *, at: int) -> bool:
    """Mark a refresh token used; False if another request used it first (a reuse)."""
    result = connection.execute(
        update(token_table)
        .where(_T.id == row_id, _T.refresh_used_at.is_(None), _T.revoked_at.is_(None))
        .values(refresh_used_at=at)
    )
    return result.rowcount == 1


def revoke_family(connection: Connection, family_id: str, *, at: int) -> None:
    connection.execute(
        update(token_table)
        .where(_T.family_id == family_id, _T.revoked_at.is_(None))
        .values(revoked_at=at)
    )


def revoke_row(connection: Connection, row_id: str, *, at: int) -> None:
    connection.execute(
        update(token_table).where(_T.id == row_id, _T.revoked_at.is_(None)).values(revoked_at=at)
    )
