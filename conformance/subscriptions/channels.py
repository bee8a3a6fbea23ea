"""Where and how a notification may be sent: the channel types, endpoints and headers Loopgate
accepts (Backport IG 1.1, "Channels": https://hl7.org/fhir/uv/subscriptions-backport/channels.html).

rest-hook endpoints must be https, except to a loopback address (a receiver on the same
machine); e-mail endpoints are one ``mailto:`` address. Custom headers are sent as given,
except the few that would change how the request itself is framed or routed.
"""

import re
from urllib.parse import unquote, urlsplit

from conformance.loopback import is_loopback

REST_HOOK = "rest-hook"
EMAIL = "email"
CHANNEL_TYPES = (REST_HOOK, EMAIL)

_HEADER_NAME = re.compile(r"^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,64}$")
RESERVED_HEADERS = frozenset(
    {"host", "content-length", "content-type", "transfer-encoding", "connection", "te", "upgrade"}
)
MAX_HEADER_VALUE = 1024
_MAILBOX = re.compile(r"^[^@\s<>,;:\"]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}$")


def rest_hook_problem(endpoint: str) -> str | None:
    """Why ``endpoint`` cannot receive rest-hook notifications, or None."""
    try:
        parts = urlsplit(endpoint)
        host = parts.hostname
    except ValueError:
        return "must be an absolute https URL"
    if parts.scheme not in ("https", "http") or not host:
        return "must be an absolute https URL"
    if parts.username or parts.password:
        return "must not carry credentials; send them in channel.header instead"
    if parts.scheme == "http" and not is_loopback(host):
        return "must use https (http is allowed only to a loopback address)"
    return None


def email_address(endpoint: str) -> str | None:
    """The one address of a ``mailto:`` endpoint, or None when it is not one."""
    if not endpoint.startswith("mailto:"):
        return None
    address = unquote(endpoint.removeprefix("mailto:"))
    return address if _MAILBOX.match(address) else None


def parse_header(line: str) -> tuple[str, str] | None:
    """``"Name: value"`` → (name, value); None when malformed or reserved."""
    name, colon, value = line.partition(":")
    name, value = name.strip(), value.strip()
    if not colon or not _HEADER_NAME.match(name) or name.lower() in RESERVED_HEADERS:
        return None
    if not value or len(value) > MAX_HEADER_VALUE or any(c in value for c in "\r\n\0"):
        return None
    return name, value
