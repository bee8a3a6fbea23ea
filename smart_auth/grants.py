"""The three token grants: authorization_code, refresh_token and client_credentials.

Each takes an authenticated client and the token request form and returns the token response
body, or raises an RFC 6749 error. Spec: http://hl7.org/fhir/smart-app-launch/app-launch.html
(steps 5 and 7) and backend-services.html. Failures that must leave a trace (a replayed code, a
reused refresh token) commit their revocation first and raise afterwards.
"""

from enum import Enum
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from smart_auth.client_auth import AuthenticatedClient
from smart_auth.credentials import digest
from smart_auth.db import now, writing
from smart_auth.jose import sign_id_token
from smart_auth.oauth import (
    InvalidGrant,
    InvalidRequest,
    InvalidScope,
    UnauthorizedClient,
    invalid_target,
    is_valid_verifier,
    s256_matches,
)
from smart_auth.registry import BACKEND, Client, User, get_user
from smart_auth.scopes import (
    MalformedScope,
    Scope,
    names,
    narrow,
    parse_scopes,
    scope_text,
)
from smart_auth.settings import SmartSettings
from smart_auth.signing_keys import current_signing_key
from smart_auth.tables import code_table
from smart_auth.tokens import (
    Issued,
    NewToken,
    by_refresh_token,
    claim_refresh,
    issue,
    new_family_id,
    refresh_is_active,
    revoke_family,
)

_C = code_table.c
ID_TOKEN_TTL = 3600


class _Outcome(Enum):
    OK = "ok"
    INVALID = "invalid"
    REPLAYED = "replayed"


class TokenGrants:
    def __init__(self, *, engine: Engine, settings: SmartSettings) -> None:
        self._engine = engine
        self._settings = settings

    async def authorization_code(
        self, caller: AuthenticatedClient, form: dict[str, str]
    ) -> dict[str, Any]:
        """RFC 6749 §4.1.3 with mandatory PKCE S256 (RFC 7636 §4.6; SMART: SHALL)."""
        client = caller.client
        if not client.is_app:
            raise UnauthorizedClient(description="Backend clients use client_credentials.")
        code, redirect_uri = form.get("code"), form.get("redirect_uri")
        verifier = form.get("code_verifier")
        if not code or not redirect_uri:
            raise InvalidRequest(description="code and redirect_uri are required.")
        if not verifier:
            raise InvalidRequest(description="code_verifier is required (PKCE).")
        if not is_valid_verifier(verifier):
            raise InvalidRequest(description="code_verifier is malformed (RFC 7636 section 4.1).")
        audience = self._audience(form, default=self._settings.fhir_base)
        at = now()
        outcome, body = _Outcome.INVALID, {}
        with writing(self._engine) as connection:
            row = connection.execute(select(code_table).where(_C.code_hash == digest(code))).first()
            user = get_user(connection, row.username) if row is not None else None
            if row is None or row.client_id != client.client_id:
                pass
            elif row.used_at is not None:
                # RFC 6749 §4.1.2: a code used twice revokes the tokens issued from it.
                revoke_family(connection, row.family_id, at=at)
                outcome = _Outcome.REPLAYED
            elif (
                row.expires_at <= at
                or row.redirect_uri != redirect_uri
                or not s256_matches(verifier, row.code_challenge)
                or user is None
            ):
                pass  # a failed redemption does not count as the code's one use
            elif not _claim_code(connection, row.code_hash, at=at):
                revoke_family(connection, row.family_id, at=at)
                outcome = _Outcome.REPLAYED
            else:
                body = self._issue_user_token(
                    connection,
                    grant_type="authorization_code",
                    client=client,
                    user=user,
                    scopes=parse_scopes(row.scope),
                    context=dict(row.context),
                    audience=audience,
                    family_id=row.family_id,
                    nonce=row.nonce,
                    at=at,
                )
                outcome = _Outcome.OK
        if outcome is _Outcome.REPLAYED:
            raise InvalidGrant(description="This code was already used; its tokens are revoked.")
        if outcome is not _Outcome.OK:
            raise InvalidGrant(description="The code, redirect_uri or code_verifier is invalid.")
        return body

    async def refresh_token(
        self, caller: AuthenticatedClient, form: dict[str, str]
    ) -> dict[str, Any]:
        """RFC 6749 §6 with rotation; SMART: bound to the client, never wider than granted."""
        client = caller.client
        if not client.is_app:
            raise UnauthorizedClient(description="Backend clients get no refresh tokens.")
        presented = form.get("refresh_token")
        if not presented:
            raise InvalidRequest(description="refresh_token is required.")
        requested = _parse(form.get("scope"))
        at = now()
        outcome, body = _Outcome.INVALID, {}
        with writing(self._engine) as connection:
            row = by_refresh_token(connection, presented)
            if row is None or row.client_id != client.client_id:
                pass
            elif row.revoked_at is not None or row.refresh_used_at is not None:
                # SMART best practice: a refresh token used twice ends the whole authorization.
                revoke_family(connection, row.family_id, at=at)
                outcome = _Outcome.REPLAYED
            elif refresh_is_active(row, at=at):
                granted = parse_scopes(row.scope)
                if requested and narrow(requested, granted) != requested:
                    raise InvalidScope(description="A refresh cannot add scopes.")
                scopes = narrow(requested or granted, parse_scopes(client.scope))
                if not scopes:
                    raise InvalidScope(description="None of these scopes can be granted.")
                audience = self._audience(form, default=row.aud)
                if audience != row.aud:
                    raise invalid_target("A refresh keeps the audience of the original grant.")
                if not claim_refresh(connection, row.id, at=at):
                    revoke_family(connection, row.family_id, at=at)
                    outcome = _Outcome.REPLAYED
                elif (user := get_user(connection, row.username)) is not None:
                    body = self._issue_user_token(
                        connection,
                        grant_type="refresh_token",
                        client=client,
                        user=user,
                        scopes=scopes,
                        context=dict(row.context),
                        audience=audience,
                        family_id=row.family_id,
                        parent_id=row.id,
                        at=at,
                    )
                    outcome = _Outcome.OK
        if outcome is _Outcome.REPLAYED:
            raise InvalidGrant(description="This refresh token was already used; access revoked.")
        if outcome is not _Outcome.OK:
            raise InvalidGrant(description="The refresh token is invalid or expired.")
        return body

    async def client_credentials(
        self, caller: AuthenticatedClient, form: dict[str, str]
    ) -> dict[str, Any]:
        """SMART Backend Services: private_key_jwt only, scope narrowed, ≤ 300 s, no refresh."""
        client = caller.client
        if client.client_type != BACKEND or caller.method != "private_key_jwt":
            raise UnauthorizedClient(description="Only backend clients use client_credentials.")
        requested = _parse(form.get("scope"))
        if not requested:
            raise InvalidRequest(description="scope is required.")
        scopes = [
            scope
            for scope in narrow(requested, parse_scopes(client.scope))
            if scope.resource is not None and scope.resource.level == "system"
        ]
        if not scopes:
            raise InvalidScope(description="None of the requested scopes can be granted.")
        audience = self._audience(form, default=self._settings.fhir_base)
        expires_in = self._settings.backend_token_ttl
        with writing(self._engine) as connection:
            issued = issue(
                connection,
                NewToken(
                    grant_type="client_credentials",
                    client_id=client.client_id,
                    scope=scope_text(scopes),
                    aud=audience,
                    family_id=new_family_id(),
                    expires_in=expires_in,
                    organization=client.organization,
                ),
                at=now(),
            )
        return _token_body(issued, scopes)

    def _issue_user_token(
        self,
        connection: Connection,
        *,
        grant_type: str,
        client: Client,
        user: User,
        scopes: list[Scope],
        context: dict[str, Any],
        audience: str,
        family_id: str,
        at: int,
        parent_id: str | None = None,
        nonce: str | None = None,
    ) -> dict[str, Any]:
        granted = names(scopes)
        settings = self._settings
        refresh_ttl = None
        if "offline_access" in granted:
            refresh_ttl = settings.refresh_token_ttl
        elif "online_access" in granted:
            refresh_ttl = settings.session_ttl  # "online": no longer than a sign-in lasts
        id_token = None
        if "openid" in granted and grant_type == "authorization_code":
            id_token = self._id_token(connection, client, user, granted, nonce=nonce, at=at)
        issued = issue(
            connection,
            NewToken(
                grant_type=grant_type,
                client_id=client.client_id,
                scope=scope_text(scopes),
                aud=audience,
                family_id=family_id,
                parent_id=parent_id,
                expires_in=settings.access_token_ttl,
                refresh_ttl=refresh_ttl,
                username=user.username,
                fhir_user=user.fhir_user,
                organization=user.organization,
                roles=user.roles,
                context=context,
                id_token_issued=id_token is not None,
            ),
            at=at,
        )
        body = _token_body(issued, scopes)
        body.update(context)
        if id_token is not None:
            body["id_token"] = id_token
        return body

    def _id_token(
        self,
        connection: Connection,
        client: Client,
        user: User,
        granted: frozenset[str],
        *,
        nonce: str | None,
        at: int,
    ) -> str:
        """OpenID Connect Core §2 id_token; SMART: RS256, absolute ``fhirUser`` when granted."""
        claims: dict[str, Any] = {
            "iss": self._settings.issuer,
            "sub": user.username,
            "aud": client.client_id,
            "iat": at,
            "exp": at + min(ID_TOKEN_TTL, self._settings.access_token_ttl),
        }
        if nonce is not None:
            claims["nonce"] = nonce
        if "fhirUser" in granted:
            claims["fhirUser"] = f"{self._settings.fhir_base}/{user.fhir_user}"
        return sign_id_token(current_signing_key(connection), claims)

    def _audience(self, form: dict[str, str], *, default: str) -> str:
        """RFC 8707 ``resource`` (or SMART's ``aud``) picks the FHIR or the JSON API audience."""
        values = {form[name] for name in ("resource", "aud") if name in form}
        if not values:
            return default
        if len(values) > 1 or (value := values.pop()) not in self._settings.audiences:
            raise invalid_target("resource must be this server's FHIR base or API base URL.")
        return value


def _parse(scope: str | None) -> list[Scope]:
    try:
        return parse_scopes(scope)
    except MalformedScope as error:
        raise InvalidScope(description=f"Malformed scope: {error}.") from error


def _claim_code(connection: Connection, code_hash: str, *, at: int) -> bool:
    result = connection.execute(
        update(code_table).where(_C.code_hash == code_hash, _C.used_at.is_(None)).values(used_at=at)
    )
    return result.rowcount == 1


def _token_body(issued: Issued, scopes: list[Scope]) -> dict[str, Any]:
    body: dict[str, Any] = {
        "access_token": issued.access_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
        "scope": scope_text(scopes),
    }
    if issued.refresh_token is not None:
        body["refresh_token"] = issued.refresh_token
    return body
