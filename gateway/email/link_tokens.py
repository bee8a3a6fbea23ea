"""The token in an e-mail link: what it allows (one action on one referral for one organization,
until a time), signed with HMAC-SHA256 so it cannot be forged or altered (pure, no I/O).

Format: ``<kid>.<base64url JSON claims>.<base64url HMAC>``, the HMAC over everything before
it. The standard library is enough for a format this small, and keeps it in plain view; a
token carries no secret, only a signature, and says nothing about the client.
"""

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass
from typing import Literal, get_args

import orjson

LinkAction = Literal["accept", "decline"]
LinkProblem = Literal["invalid", "expired"]
_DOMAIN = b"loopgate-email-link.v1."
"""Signed with the message, so a signature made for anything else never verifies here."""
MAX_TOKEN_LENGTH = 1024


@dataclass(frozen=True)
class LinkClaims:
    link_id: str
    """One per e-mail: its accept and decline links share it, so either one uses up both."""
    referral_id: str
    organization: str
    action: LinkAction
    expires_at: int
    """Epoch seconds."""


def sign_link(claims: LinkClaims, *, kid: str, key: bytes) -> str:
    body = orjson.dumps(
        [
            claims.link_id,
            claims.referral_id,
            claims.organization,
            claims.action,
            claims.expires_at,
        ]
    )
    signed = f"{kid}.{_b64(body)}"
    return f"{signed}.{_b64(_mac(key, signed))}"


def read_link(token: str, *, keys: dict[str, bytes], now: int) -> LinkClaims | LinkProblem:
    """The claims of a genuine, unexpired token; else why not. ``now`` is epoch seconds."""
    if len(token) > MAX_TOKEN_LENGTH or token.count(".") != 2:
        return "invalid"
    kid, body, signature = token.split(".")
    key = keys.get(kid)
    if key is None:
        return "invalid"
    try:
        given = _unb64(signature)
        if _b64(given) != signature:  # one spelling per token: no padding, no stray characters
            return "invalid"
        if not hmac.compare_digest(given, _mac(key, f"{kid}.{body}")):
            return "invalid"
        link_id, referral_id, organization, action, expires_at = orjson.loads(_unb64(body))
    except (binascii.Error, ValueError, TypeError):
        return "invalid"
    if action not in get_args(LinkAction) or not isinstance(expires_at, int):
        return "invalid"
    if now >= expires_at:
        return "expired"
    return LinkClaims(str(link_id), str(referral_id), str(organization), action, expires_at)


def _mac(key: bytes, signed: str) -> bytes:
    return hmac.new(key, _DOMAIN + signed.encode("ascii"), hashlib.sha256).digest()


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text.encode("ascii") + b"=" * (-len(text) % 4))
