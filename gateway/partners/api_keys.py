"""Organization-bound API keys: shown once at creation, stored as SHA-256 digests, revocable."""

import hashlib
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, Engine, insert, select, update

from gateway.fhir.ids import new_resource_id
from gateway.fhir.write_context import now_us
from gateway.partners.tables import api_key_table
from gateway.store.engine import write_transaction

K = api_key_table.c
KEY_PREFIX = "lgk_"
LAST_USED_RESOLUTION_S = 60
"""``last_used_at`` is written at most this often per key, not on every request."""


@dataclass(frozen=True)
class ApiKey:
    id: str
    organization: str
    prefix: str
    label: str | None
    created_at: int
    last_used_at: int | None
    revoked_at: int | None


def new_api_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def is_api_key(credential: str) -> bool:
    return credential.startswith(KEY_PREFIX)


def store_api_key(
    connection: Connection, organization: str, key: str, *, label: str | None = None
) -> ApiKey:
    """Record ``key`` for ``organization`` (idempotent: a known key is left as it is)."""
    digest = key_digest(key)
    existing = connection.execute(select(api_key_table).where(K.key_hash == digest)).first()
    if existing is not None:
        return _api_key(existing)
    stored = ApiKey(new_resource_id(), organization, key[:12], label, now_us(), None, None)
    connection.execute(
        insert(api_key_table).values(
            id=stored.id,
            organization=organization,
            key_hash=digest,
            prefix=stored.prefix,
            label=label,
            created_at=stored.created_at,
        )
    )
    return stored


def list_api_keys(connection: Connection, organization: str) -> list[ApiKey]:
    rows = connection.execute(
        select(api_key_table).where(K.organization == organization).order_by(K.created_at, K.id)
    )
    return [_api_key(row) for row in rows]


def revoke_api_key(connection: Connection, organization: str, key_id: str) -> bool:
    result = connection.execute(
        update(api_key_table)
        .where(K.id == key_id, K.organization == organization, K.revoked_at.is_(None))
        .values(revoked_at=now_us())
    )
    return bool(result.rowcount)


def organization_for_key(engine: Engine, key: str) -> tuple[str, str] | None:
    """``(key id, organization)`` for an active key, noting when it was last used."""
    digest = key_digest(key)
    with engine.connect() as connection:
        row = connection.execute(
            select(K.id, K.organization, K.last_used_at, K.revoked_at).where(K.key_hash == digest)
        ).first()
    if row is None or row.revoked_at is not None:
        return None
    now = now_us()
    if row.last_used_at is None or now - row.last_used_at >= LAST_USED_RESOLUTION_S * 1_000_000:
        with write_transaction(engine) as connection:
            connection.execute(update(api_key_table).where(K.id == row.id).values(last_used_at=now))
    return str(row.id), str(row.organization)


def _api_key(row: object) -> ApiKey:
    return ApiKey(
        id=row.id,  # type: ignore[attr-defined]
        organization=row.organization,  # type: ignore[attr-defined]
        prefix=row.prefix,  # type: ignore[attr-defined]
        label=row.label,  # type: ignore[attr-defined]
        created_at=row.created_at,  # type: ignore[attr-defined]
        last_used_at=row.last_used_at,  # type: ignore[attr-defined]
        revoked_at=row.revoked_at,  # type: ignore[attr-defined]
    )
