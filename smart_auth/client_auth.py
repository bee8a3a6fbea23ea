"""Who is calling the token, introspection or revocation endpoint: RFC 6749 §2.3 client auth.

Three methods, each for one kind of registered client: ``private_key_jwt`` (RFC 7523 §3 with
SMART's rules, for backend and confidential-asymmetric clients), ``client_secret_basic`` (for
confidential-symmetric apps only: SMART's symmetric profile is not for Backend Services) and
``none`` (public apps, which present only ``client_id`` and rely on PKCE).
http://hl7.org/fhir/smart-app-launch/client-confidential-asymmetric.html
"""

from dataclasses import dataclass
from typing import Any, Literal

from sqlalchemy import Engine, insert
from sqlalchemy.exc import IntegrityError
from starlette.concurrency import run_in_threadpool

from smart_auth.client_jwks import ClientJwksCache, JwksUnavailable
from smart_auth.credentials import verify_password
from smart_auth.db import now, reading, writing
from smart_auth.jose import (
    ASSERTION_ALGORITHMS,
    JoseRejected,
    read_unverified,
    select_client_key,
    verify_assertion,
)
from smart_auth.oauth import InvalidClient, InvalidRequest, basic_credentials
from smart_auth.registry import PUBLIC, SYMMETRIC, Client, get_client
from smart_auth.tables import jti_table

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
MAX_ASSERTION_LIFETIME = 300
"""SMART Backend Services: an assertion's ``exp`` is no more than five minutes ahead."""
CLOCK_SKEW = 30
MAX_ASSERTION_CHARS = 8192
MAX_JTI_CHARS = 256

Method = Literal["private_key_jwt", "client_secret_basic", "none"]


@dataclass(frozen=True)
class AuthenticatedClient:
    client: Client
    method: Method


class ClientAuthenticator:
    def __init__(self, *, engine: Engine, token_url: str, jwks: ClientJwksCache) -> None:
        self._engine = engine
        self._token_url = token_url
        self._jwks = jwks

    async def authenticate(self, form: dict[str, str], headers: Any) -> AuthenticatedClient:
        """The authenticated client, or an ``invalid_client`` / ``invalid_request`` error."""
        authorization = headers.get("authorization", "")
        uses_basic = authorization[:6].lower() == "basic "
        uses_assertion = "client_assertion" in form or "client_assertion_type" in form
        if "client_secret" in form:
            raise InvalidClient(description="client_secret_post is not supported: use HTTP Basic")
        if uses_basic and uses_assertion:
            raise InvalidRequest(description="Use one client authentication method, not two.")
        if uses_assertion:
            result = await self._private_key_jwt(form)
        elif uses_basic:
            result = await self._client_secret_basic(headers)
        else:
            result = self._public(form)
        claimed = form.get("client_id")
        if claimed is not None and claimed != result.client.client_id:
            raise InvalidClient(description="client_id does not match the authenticated client.")
        return result

    def _public(self, form: dict[str, str]) -> AuthenticatedClient:
        client_id = form.get("client_id")
        if not client_id:
            raise InvalidClient(description="Client authentication is required.")
        client = self._client(client_id)
        if client is None or client.client_type != PUBLIC:
            raise InvalidClient(description="This client must authenticate.")
        return AuthenticatedClient(client, "none")

    async def _client_secret_basic(self, headers: Any) -> AuthenticatedClient:
        client_id, secret = basic_credentials(headers)
        client = self._client(client_id) if client_id else None
        secret_hash = client.secret_hash if client and client.client_type == SYMMETRIC else None
        # Verify even for an unknown client, so timing does not tell which ids exist.
        valid = await run_in_threadpool(verify_password, secret_hash, secret or "")
        if client is None or not valid:
            raise InvalidClient(status_code=401, description="Client authentication failed.")
        return AuthenticatedClient(client, "client_secret_basic")

    async def _private_key_jwt(self, form: dict[str, str]) -> AuthenticatedClient:
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise InvalidClient(description=f"client_assertion_type must be {ASSERTION_TYPE}")
        assertion = form.get("client_assertion", "")
        if len(assertion) > MAX_ASSERTION_CHARS:
            raise InvalidClient(description="The client assertion is too large.")
        try:
            header, unverified = read_unverified(assertion)
        except JoseRejected as error:
            raise InvalidClient(description="The client assertion is not a JWT.") from error
        alg, kid = header.get("alg"), header.get("kid")
        if alg not in ASSERTION_ALGORITHMS:
            raise InvalidClient(description="Client assertions must be signed RS384 or ES384.")
        if not isinstance(kid, str) or not kid:
            raise InvalidClient(description="The client assertion header needs a kid.")
        if str(header.get("typ", "JWT")).upper() != "JWT":
            raise InvalidClient(description="The client assertion typ must be JWT.")
        client_id = unverified.get("iss")
        client = self._client(client_id) if isinstance(client_id, str) and client_id else None
        if client is None or not client.uses_keys:
            raise InvalidClient(description="The assertion issuer is not a client with keys.")
        jku = header.get("jku")
        if jku is not None and jku != client.jwks_uri:
            # SMART: a jku other than the registered JWKS URL fails; never fetch it.
            raise InvalidClient(description="jku is not the registered JWKS URL.")
        key = await self._client_key(client, kid=kid, alg=alg)
        try:
            claims = verify_assertion(assertion, key, alg=alg)
        except JoseRejected as error:
            raise InvalidClient(description="The client assertion signature is invalid.") from error
        expires_at = self._check_claims(claims, client.client_id)
        self._record_jti(client.client_id, claims["jti"], expires_at)
        return AuthenticatedClient(client, "private_key_jwt")

    async def _client_key(self, client: Client, *, kid: str, alg: str) -> dict[str, Any]:
        try:
            if client.jwks is not None:
                key = select_client_key(client.jwks, kid=kid, alg=alg)
            else:
                assert client.jwks_uri is not None
                key = select_client_key(await self._jwks.get(client.jwks_uri), kid=kid, alg=alg)
                if key is None:  # the client may have rotated its keys: refetch once
                    jwks = await self._jwks.get(client.jwks_uri, refresh=True)
                    key = select_client_key(jwks, kid=kid, alg=alg)
        except JwksUnavailable as error:
            raise InvalidClient(description="The client JWKS could not be fetched.") from error
        except JoseRejected as error:
            raise InvalidClient(description="The JWKS has several keys for this kid.") from error
        if key is None:
            raise InvalidClient(description="No registered key matches the kid and algorithm.")
        return key

    def _check_claims(self, claims: dict[str, Any], client_id: str) -> int:
        """RFC 7523 §3 plus SMART's five-minute ``exp`` cap; returns when the jti may go."""
        current = now()
        if claims.get("iss") != client_id or claims.get("sub") != client_id:
            raise InvalidClient(description="iss and sub must both be the client_id.")
        audience = claims.get("aud")
        audiences = audience if isinstance(audience, list) else [audience]
        if self._token_url not in audiences:
            raise InvalidClient(description="aud must be the token endpoint URL.")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or isinstance(exp, bool):
            raise InvalidClient(description="The client assertion needs a numeric exp.")
        if exp <= current - CLOCK_SKEW:
            raise InvalidClient(description="The client assertion has expired.")
        if exp > current + MAX_ASSERTION_LIFETIME + CLOCK_SKEW:
            raise InvalidClient(description="exp may be at most five minutes ahead.")
        for name in ("iat", "nbf"):
            value = claims.get(name)
            if value is None:
                continue
            if not isinstance(value, int | float) or isinstance(value, bool):
                raise InvalidClient(description=f"{name} must be numeric.")
            if value > current + CLOCK_SKEW:
                raise InvalidClient(description=f"{name} is in the future.")
        jti = claims.get("jti")
        if not isinstance(jti, str) or not 0 < len(jti) <= MAX_JTI_CHARS:
            raise InvalidClient(description="The client assertion needs a jti of 1 to 256 chars.")
        return int(exp) + CLOCK_SKEW

    def _record_jti(self, client_id: str, jti: str, expires_at: int) -> None:
        """SMART: a jti is never accepted twice; the unique key makes this hold across processes."""
        try:
            with writing(self._engine) as connection:
                connection.execute(
                    insert(jti_table).values(iss=client_id, jti=jti, expires_at=expires_at)
                )
        except IntegrityError as error:
            raise InvalidClient(description="This assertion jti was already used.") from error

    def _client(self, client_id: str) -> Client | None:
        with reading(self._engine) as connection:
            return get_client(connection, client_id)
