"""All of Loopgate's JOSE, and the only module that imports joserfc.

Every call names its algorithms explicitly and every key is a JWK dict, never PEM or bytes, so
alg-none, HS256-with-a-public-key and algorithm-from-header tricks have nowhere to go
(reference/smart.md §3.2, §5 rows 11–13).
"""

import json
from typing import Any

from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeyParameters, RSAKey, import_key

ASSERTION_ALGORITHMS = ("RS384", "ES384")
"""Client assertions: SMART client-confidential-asymmetric names RS384 and ES384."""
KEY_TYPE_FOR = {"RS384": "RSA", "ES384": "EC"}
ID_TOKEN_ALGORITHM = "RS256"
"""SMART sso-openid-connect: id_tokens SHALL be RS256-signable."""
_PUBLIC_MEMBERS = {"RSA": ("kty", "n", "e"), "EC": ("kty", "crv", "x", "y")}
_PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})


class JoseRejected(Exception):
    """A token or key failed a check; the message is safe to log (it quotes no token content)."""


def generate_signing_key(kid: str) -> dict[str, Any]:
    """A new RSA-2048 private JWK for signing our id_tokens."""
    parameters: KeyParameters = {"kid": kid, "alg": ID_TOKEN_ALGORITHM, "use": "sig"}
    key = RSAKey.generate_key(2048, parameters=parameters, private=True)
    return dict(key.as_dict(private=True))


def generate_client_key(kid: str) -> dict[str, Any]:
    """A new RSA-2048 private JWK a Backend Services client signs its assertions with (RS384)."""
    parameters: KeyParameters = {"kid": kid, "alg": "RS384", "use": "sig"}
    key = RSAKey.generate_key(2048, parameters=parameters, private=True)
    return dict(key.as_dict(private=True))


def public_jwk(jwk: dict[str, Any]) -> dict[str, Any]:
    """The bare public JWK (SMART: "publish bare JWK keys"), with kid, alg and use."""
    public = {name: jwk[name] for name in _PUBLIC_MEMBERS[jwk["kty"]]}
    public.update({name: jwk[name] for name in ("kid", "alg", "use") if name in jwk})
    return public


def sign_id_token(private_jwk: dict[str, Any], claims: dict[str, Any]) -> str:
    header = {"alg": ID_TOKEN_ALGORITHM, "typ": "JWT", "kid": private_jwk["kid"]}
    return jwt.encode(header, claims, import_key(private_jwk), algorithms=[ID_TOKEN_ALGORITHM])


def read_unverified(token: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Header and claims of a compact JWS, NOT verified: only to find which key verifies it.

    joserfc's size limits apply (header 512 bytes, payload 128 kB).
    """
    try:
        compact = jws.extract_compact(token.encode("ascii"))
        payload = json.loads(compact.payload)
        header = dict(compact.headers())
    except (JoseError, ValueError, UnicodeError) as error:
        raise JoseRejected("the assertion is not a compact JWS with a JSON payload") from error
    if not isinstance(payload, dict):
        raise JoseRejected("the assertion payload is not a JSON object")
    return header, payload


def select_client_key(jwks: dict[str, Any], *, kid: str, alg: str) -> dict[str, Any] | None:
    """The one key whose ``kid`` matches and whose ``kty`` fits ``alg``; None when there is none.

    SMART client-confidential-asymmetric, "Signature Verification" step 3: more than one
    match is a failure, not a choice.
    """
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    if not isinstance(keys, list):
        raise JoseRejected("the client's JWKS has no keys array")
    kty = KEY_TYPE_FOR[alg]
    matches = [
        key
        for key in keys
        if isinstance(key, dict) and key.get("kid") == kid and key.get("kty") == kty
    ]
    if len(matches) > 1:
        raise JoseRejected("the client's JWKS has more than one key with this kid and kty")
    return matches[0] if matches else None


def verify_assertion(token: str, jwk: dict[str, Any], *, alg: str) -> dict[str, Any]:
    """Verify the signature of a client assertion with one public JWK and one allowed algorithm."""
    if alg not in ASSERTION_ALGORITHMS:
        raise JoseRejected("the assertion algorithm is not allowed")
    public = {name: value for name, value in jwk.items() if name not in _PRIVATE_MEMBERS}
    try:
        key = import_key(public)
        return dict(jwt.decode(token, key, algorithms=[alg]).claims)
    except (JoseError, ValueError, TypeError) as error:
        raise JoseRejected("the assertion signature does not verify") from error


def jwks_problem(jwks: Any) -> str | None:
    """Why a client's JWKS cannot be registered, or None when every key is a usable public key."""
    if not isinstance(jwks, dict) or not isinstance(jwks.get("keys"), list) or not jwks["keys"]:
        return "must be an object with a non-empty keys array"
    kids: set[str] = set()
    for key in jwks["keys"]:
        if not isinstance(key, dict) or key.get("kty") not in _PUBLIC_MEMBERS:
            return "every key must be an RSA or EC JWK"
        if _PRIVATE_MEMBERS & key.keys():
            return "keys must be public: remove the private members"
        kid = key.get("kid")
        if not isinstance(kid, str) or not kid:
            return "every key needs a kid"
        if kid in kids:
            return "kid values must be unique"
        kids.add(kid)
        try:
            import_key(key)
        except (JoseError, ValueError, TypeError):
            return "a key is not a valid JWK"
    return None
