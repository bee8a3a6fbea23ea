"""SmartSettings: the plain configuration gateway hands in, and the URLs derived from it."""

from dataclasses import dataclass
from urllib.parse import urlsplit

LOOPBACK_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})


def is_allowed_url(url: str) -> bool:
    """Absolute https, or http on a loopback address (RFC 8252 §7.3); never userinfo or fragment."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018  (raises ValueError on a malformed port)
    except ValueError:
        return False
    if not host or parts.username is not None or parts.password is not None or parts.fragment:
        return False
    if parts.scheme == "https":
        return True
    return parts.scheme == "http" and host in LOOPBACK_HOSTS


@dataclass(frozen=True)
class SmartSettings:
    """Where Loopgate lives and how long each credential lasts (seconds)."""

    public_url: str
    """Public base, e.g. ``http://127.0.0.1:8080``; the OpenID issuer; https unless loopback."""
    fhir_base: str
    """``public_url + "/fhir"``: the default token audience."""
    api_base: str
    """``public_url + "/api/v1"``: the JSON API audience (RFC 8707 ``resource``)."""
    access_token_ttl: int = 3600
    backend_token_ttl: int = 300
    code_ttl: int = 60
    launch_ttl: int = 300
    refresh_token_ttl: int = 30 * 24 * 3600
    session_ttl: int = 8 * 3600

    def __post_init__(self) -> None:
        for name in ("public_url", "fhir_base", "api_base"):
            value = getattr(self, name)
            if value != value.rstrip("/") or not is_allowed_url(value):
                raise ValueError(f"{name} must be https (http only on loopback), no trailing /")
        if self.backend_token_ttl > 300:
            raise ValueError("backend_token_ttl must be at most 300 s (SMART Backend Services)")

    @property
    def issuer(self) -> str:
        return self.public_url

    @property
    def jwks_uri(self) -> str:
        return f"{self.public_url}/.well-known/jwks.json"

    @property
    def authorize_url(self) -> str:
        return f"{self.public_url}/auth/authorize"

    @property
    def token_url(self) -> str:
        return f"{self.public_url}/auth/token"

    @property
    def introspect_url(self) -> str:
        return f"{self.public_url}/auth/introspect"

    @property
    def revoke_url(self) -> str:
        return f"{self.public_url}/auth/revoke"

    @property
    def style_url(self) -> str:
        return f"{self.public_url}/auth/smart-style.json"

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def audiences(self) -> tuple[str, str]:
        return (self.fhir_base, self.api_base)
