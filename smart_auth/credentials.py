"""Bearer secrets and passwords: how we mint them and the only forms in which we store them.

Opaque secrets are 256-bit random values (RFC 6749 §10.10) stored as SHA-256 hex digests, so a
database leak yields nothing usable; passwords and client secrets are argon2id hashes.
"""

import hashlib
import hmac
import secrets

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

# argon2id at OWASP's baseline (m=19 MiB, t=2, p=1): about 30 ms a hash on a small server.
# https://cheatsheetseries.owasp.org/cheatsheets/Password_Storage_Cheat_Sheet.html#argon2id
_hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
_DUMMY_HASH = _hasher.hash("loopgate-dummy-password")


def new_secret() -> str:
    """32 random bytes, base64url without padding (43 characters)."""
    return secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def same(a: str, b: str) -> bool:
    """Constant-time comparison of two strings."""
    return hmac.compare_digest(a.encode(), b.encode())


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    """True when ``password`` matches; an unknown account costs as much time as a known one."""
    try:
        return _hasher.verify(password_hash or _DUMMY_HASH, password) and password_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def csrf_token(session_secret: str) -> str:
    """The CSRF token for a browser: derived from its secret cookie, so it needs no storage."""
    return hashlib.sha256(b"loopgate-csrf\x00" + session_secret.encode()).hexdigest()
