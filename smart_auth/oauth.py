"""The OAuth 2.0 plumbing we take from authlib, in the one module that imports it.

Taken from authlib: the RFC 6749 §5.2 error classes and their rendering (JSON body with
``Cache-Control: no-store``, 401 + ``WWW-Authenticate`` for failed Basic auth, or the §4.1.2.1
redirect carrying ``state``), RFC 7636's S256 transform and verifier/challenge grammar, RFC 6749
§2.3.1 Basic client credentials, and query-string appending for redirects.

Not taken: ``AuthorizationServer`` and its grant classes. In authlib 1.9.9 they are synchronous
while our client-JWKS fetch must use the injected ``httpx.AsyncClient``; and reference/smart.md
§3.1 lists nine defaults to override for SMART (PKCE plain/optional, RS384 refused, unbounded
assertion ``exp``, first-``kid`` key choice, client_credentials issuing the requested scope,
refresh tokens without ``offline_access``, no launch context in the response …). Overriding all
of them left little of authlib's grant logic, so the grants are small async functions of our
own (``smart_auth.grants``) that raise these error classes.
"""

import hmac
from typing import Any

from authlib.common.urls import add_params_to_uri  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749 import errors as _errors  # type: ignore[import-untyped]
from authlib.oauth2.rfc6749.util import (  # type: ignore[import-untyped]
    extract_basic_authorization,
)
from authlib.oauth2.rfc7636 import challenge as _pkce  # type: ignore[import-untyped]
from starlette.responses import JSONResponse

OAuthError: Any = _errors.OAuth2Error
InvalidRequest: Any = _errors.InvalidRequestError
InvalidClient: Any = _errors.InvalidClientError
InvalidGrant: Any = _errors.InvalidGrantError
InvalidScope: Any = _errors.InvalidScopeError
UnauthorizedClient: Any = _errors.UnauthorizedClientError
UnsupportedGrantType: Any = _errors.UnsupportedGrantTypeError
UnsupportedResponseType: Any = _errors.UnsupportedResponseTypeError
AccessDenied: Any = _errors.AccessDeniedError

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def invalid_target(description: str) -> Any:
    """RFC 8707 §2: the requested ``resource`` is not one of ours."""
    return OAuthError(error="invalid_target", description=description)


def error_response(error: Any) -> JSONResponse:
    """An RFC 6749 §5.2 JSON error, never cached."""
    status, body, headers = error()
    response = JSONResponse(dict(body), status_code=int(status))
    for name, value in headers:
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def redirect_with(uri: str, params: list[tuple[str, str]]) -> str:
    """``uri`` with ``params`` appended to its query (its own query is kept)."""
    return str(add_params_to_uri(uri, params))


def basic_credentials(headers: Any) -> tuple[str | None, str | None]:
    """(client_id, client_secret) from ``Authorization: Basic``, form-decoded per §2.3.1."""
    client_id, secret = extract_basic_authorization(headers)
    return client_id, secret


def is_valid_verifier(verifier: str) -> bool:
    return bool(_pkce.CODE_VERIFIER_PATTERN.match(verifier))


def is_valid_challenge(challenge: str) -> bool:
    return len(challenge) == 43 and bool(_pkce.CODE_CHALLENGE_PATTERN.match(challenge))


def s256_matches(verifier: str, challenge: str) -> bool:
    """RFC 7636 §4.6: BASE64URL(SHA256(verifier)) equals the challenge (constant time)."""
    computed = str(_pkce.create_s256_code_challenge(verifier))
    return hmac.compare_digest(computed.encode(), challenge.encode())
