"""Standard Webhooks signatures: ``whsec_`` secrets, signing, and the receiver's check.

Spec: https://www.standardwebhooks.com/ (spec/standard-webhooks.md, "Signature scheme" and
"Verifying signatures"): HMAC-SHA256 with the decoded secret over ``{id}.{timestamp}.{body}``,
sent as ``webhook-signature: v1,<base64>`` (space-separated when a secret is being rotated).
"""

import base64
import binascii
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
"""The spec asks for 24 to 64 random bytes."""
DEFAULT_TOLERANCE_S = 300
"""Five minutes either way, the spec libraries' default."""


class WebhookVerificationError(ValueError):
    """A delivery whose signature, timestamp or headers do not check out: answer 401 and do
    not process it."""


def new_webhook_secret() -> str:
    """A fresh signing secret for one endpoint, as ``whsec_<base64 of 32 random bytes>``."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key a ``whsec_…`` secret stands for (the bytes after base64 decoding)."""
    try:
        key = base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("a webhook secret is whsec_ followed by base64") from None
    if not key:
        raise ValueError("a webhook secret is whsec_ followed by base64")
    return key


def sign_webhook(secret: str, *, message_id: str, timestamp: int, body: bytes) -> str:
    """The ``webhook-signature`` value for one attempt: ``v1,<base64 HMAC-SHA256>``."""
    if "." in message_id:
        # the spec: ids in the signed content must not contain the delimiter
        raise ValueError("a webhook id must not contain '.'")
    signed = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def webhook_headers(
    secret: str, *, message_id: str, body: bytes, timestamp: int | None = None
) -> dict[str, str]:
    """The three Standard Webhooks headers for one delivery attempt of ``body``."""
    sent_at = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(sent_at),
        "webhook-signature": sign_webhook(
            secret, message_id=message_id, timestamp=sent_at, body=body
        ),
    }


def verify_webhook(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    tolerance: int = DEFAULT_TOLERANCE_S,
    now: float | None = None,
) -> None:
    """Check a received delivery as the spec asks; raise ``WebhookVerificationError`` if not.

    ``body`` must be the raw bytes received (re-serialized JSON will not match). The timestamp
    must be within ``tolerance`` seconds of ``now`` either way, which stops replays of old
    deliveries; use ``webhook-id`` as an idempotency key to drop repeats inside that window.
    """
    lowered = {name.lower(): value for name, value in headers.items()}
    message_id = lowered.get("webhook-id")
    timestamp_text = lowered.get("webhook-timestamp")
    signatures = lowered.get("webhook-signature")
    if not message_id or not timestamp_text or not signatures:
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or signature")
    try:
        timestamp = int(timestamp_text)
    except ValueError:
        raise WebhookVerificationError("webhook-timestamp is not unix seconds") from None
    current = time.time() if now is None else now
    if abs(current - timestamp) > tolerance:
        raise WebhookVerificationError("webhook-timestamp is outside the tolerance")
    if "." in message_id:
        raise WebhookVerificationError("webhook-id contains '.'")
    expected = sign_webhook(secret, message_id=message_id, timestamp=timestamp, body=body)
    for candidate in signatures.split(" "):
        # constant-time, so the check cannot be used as a signing oracle
        if hmac.compare_digest(candidate.encode(), expected.encode()):
            return
    raise WebhookVerificationError("no webhook-signature matches")
