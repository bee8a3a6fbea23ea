"""The resource-server check: who does this bearer token speak for (RFC 6750 §2.1, §3)?

Only the ``Authorization`` header is read, never an ``access_token`` query parameter. The token
must exist, be unexpired and unrevoked, and have been issued for this audience (SMART: the
resource server SHALL check that ``aud`` matches its endpoint).
"""

from functools import lru_cache

from sqlalchemy import Engine
from starlette.requests import Request

from conformance.access import AccessContext, Grant
from conformance.errors import Unauthenticated
from smart_auth.db import now
from smart_auth.scopes import grants_of
from smart_auth.tokens import bearer_grant, is_active

CHALLENGE = 'Bearer realm="loopgate"'
INVALID_TOKEN = 'Bearer realm="loopgate", error="invalid_token"'
MAX_TOKEN_CHARS = 512


def bearer_token(request: Request) -> str | None:
    """The token of ``Authorization: Bearer <token>``; None when there is no bearer credential."""
    scheme, _, token = request.headers.get("authorization", "").strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip()


def access_context(engine: Engine, request: Request, *, audience: str) -> AccessContext:
    token = bearer_token(request)
    if token is None:
        raise Unauthenticated("Authentication is required", headers={"WWW-Authenticate": CHALLENGE})
    at = now()
    row = None
    if token and len(token) <= MAX_TOKEN_CHARS:
        row = bearer_grant(engine, token)
    if row is None or not is_active(row, at=at) or row.aud != audience:
        raise Unauthenticated(
            "The access token is invalid, expired, revoked or for another audience",
            headers={"WWW-Authenticate": INVALID_TOKEN},
        )
    patient = row.context.get("patient")
    return AccessContext(
        organization=row.organization,
        user=row.fhir_user,
        client_id=row.client_id,
        grants=_grants(row.scope),
        patient=f"Patient/{patient}" if patient else None,
        roles=frozenset(row.roles),
    )


@lru_cache(maxsize=1024)
def _grants(scope: str) -> tuple[Grant, ...]:
    return grants_of(scope)
