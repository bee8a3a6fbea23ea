"""Token introspection (RFC 7662, SMART token-introspection.html) and revocation (RFC 7009).

Introspection callers must be a registered confidential client (client secret, or a client
assertion) or present the bearer token of a backend client; anyone else gets 401, so nobody
can scan for live tokens. Revocation takes the owning client's usual authentication.
"""

from typing import Any

from sqlalchemy import Connection, Engine
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from smart_auth.bearer import bearer_token
from smart_auth.client_auth import ClientAuthenticator
from smart_auth.db import now, reading, writing
from smart_auth.oauth import NO_STORE, OAuthError
from smart_auth.settings import SmartSettings
from smart_auth.tokens import (
    by_access_token,
    by_refresh_token,
    is_active,
    refresh_is_active,
    revoke_family,
    revoke_row,
)

MAX_TOKEN_CHARS = 512
_CONTEXT_PARAMETERS = ("patient", "encounter", "fhirContext", "need_patient_banner")


class TokenInspector:
    def __init__(
        self, *, engine: Engine, settings: SmartSettings, authenticator: ClientAuthenticator
    ) -> None:
        self._engine = engine
        self._settings = settings
        self._authenticator = authenticator

    async def caller_may_introspect(self, request: Request, form: dict[str, str]) -> bool:
        token = bearer_token(request)
        if token is not None:
            with reading(self._engine) as connection:
                row = by_access_token(connection, token) if len(token) <= MAX_TOKEN_CHARS else None
            return (
                row is not None
                and is_active(row, at=now())
                and row.grant_type == "client_credentials"
            )
        try:
            caller = await self._authenticator.authenticate(form, request.headers)
        except OAuthError:
            return False
        return caller.method != "none"

    def introspect(self, token: str) -> dict[str, Any]:
        """The RFC 7662 §2.2 response, with SMART's launch context and identity fields."""
        at = now()
        if not token or len(token) > MAX_TOKEN_CHARS:
            return {"active": False}
        with reading(self._engine) as connection:
            row = by_access_token(connection, token)
            expires_at = row.expires_at if row is not None else 0
            if row is None or not is_active(row, at=at):
                row = by_refresh_token(connection, token)
                if row is None or not refresh_is_active(row, at=at):
                    return {"active": False}
                expires_at = row.refresh_expires_at
        info: dict[str, Any] = {
            "active": True,
            "scope": row.scope,
            "client_id": row.client_id,
            "exp": expires_at,
            "iat": row.issued_at,
            "token_type": "Bearer",
            "aud": row.aud,
        }
        if row.fhir_user is not None and "fhirUser" in row.scope.split(" "):
            info["fhirUser"] = f"{self._settings.fhir_base}/{row.fhir_user}"
        if row.id_token_issued:
            info["iss"] = self._settings.issuer
            info["sub"] = row.username
        info.update({k: v for k, v in row.context.items() if k in _CONTEXT_PARAMETERS})
        return info

    def revoke(self, client_id: str, token: str) -> None:
        """RFC 7009 §2.1: revoke a token of ``client_id``; anything else is silently ignored."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return
        at = now()
        with writing(self._engine) as connection:
            _revoke(connection, client_id, token, at=at)


def _revoke(connection: Connection, client_id: str, token: str, *, at: int) -> None:
    row = by_access_token(connection, token)
    if row is not None and row.client_id == client_id:
        revoke_row(connection, row.id, at=at)
        return
    row = by_refresh_token(connection, token)
    if row is not None and row.client_id == client_id:
        revoke_family(connection, row.family_id, at=at)  # §2.1: and what it was used for


def introspection_response(info: dict[str, Any]) -> Response:
    return JSONResponse(info, headers=NO_STORE)


def unauthorized() -> Response:
    return JSONResponse(
        {"error": "invalid_client", "error_description": "Introspection needs client auth."},
        status_code=401,
        headers={
            **NO_STORE,
            "WWW-Authenticate": 'Basic realm="loopgate", Bearer realm="loopgate"',
        },
    )
