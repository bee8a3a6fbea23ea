"""Our id_token signing keys: created on first start, the newest signs, all are published.

The private JWK is stored in ``smart_signing_key`` (protect the database like a key store).
Rotation is adding a newer row: it signs at once, and older keys stay in the JWKS until removed.
"""

import secrets
from typing import Any

from sqlalchemy import Connection, Engine, insert, select

from smart_auth.db import now, writing
from smart_auth.jose import ID_TOKEN_ALGORITHM, generate_signing_key, public_jwk
from smart_auth.tables import signing_key_table

_K = signing_key_table.c


def ensure_signing_key(engine: Engine) -> None:
    """Create an RS256 key unless one exists (safe when several processes start together)."""
    with writing(engine) as connection:
        if connection.execute(select(_K.kid).limit(1)).first() is not None:
            return
        kid = secrets.token_hex(8)
        connection.execute(
            insert(signing_key_table).values(
                kid=kid,
                alg=ID_TOKEN_ALGORITHM,
                private_jwk=generate_signing_key(kid),
                created_at=now(),
            )
        )


def current_signing_key(connection: Connection) -> dict[str, Any]:
    row = connection.execute(
        select(_K.private_jwk).order_by(_K.created_at.desc(), _K.kid).limit(1)
    ).first()
    if row is None:
        raise RuntimeError("no signing key: SmartAuth.ensure_keys() must run at start-up")
    return dict(row.private_jwk)


def published_jwks(connection: Connection) -> dict[str, Any]:
    rows = connection.execute(select(_K.private_jwk).order_by(_K.created_at, _K.kid))
    return {"keys": [public_jwk(row.private_jwk) for row in rows]}
