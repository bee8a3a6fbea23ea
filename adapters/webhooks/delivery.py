"""One signed webhook delivery attempt, and what the receiver's answer means for the next one.

Standard Webhooks, "Delivery success and failure" (https://www.standardwebhooks.com/): only a
2xx answer is success; redirects are never followed (a 3xx is a failure, fix the URL); 410
Gone means the endpoint wants no more, so the message is dead at once. Every other answer is
retried with backoff until the outbox's give-up age, including 4xx such as 400, 401, 403 or
404: at a CBO these mean a deploy in progress, a rotated secret or a wrong path far more often
than a message that can never be accepted, a human fixes them within hours, and the next
attempt looks the URL and secret up again. Losing a referral event is worse than retrying one
(reference/peers.md §6). ``Retry-After`` (RFC 9110 §10.2.3) is passed on to the scheduler.
"""

import socket
import ssl
import time
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Literal
from urllib.parse import urlsplit

import httpx

from adapters.webhooks.signature import webhook_headers
from conformance.loopback import is_loopback

WEBHOOK_TIMEOUT_S = 10.0
"""The spec suggests 15–30 s; CBO endpoints that answer at all answer well within 10."""
MAX_RETRY_AFTER_S = 86_400.0
DRAINED_BYTES = 64 * 1024
"""Read (and drop) this much of an answer so the connection can be reused; never stored."""
USER_AGENT = "Loopgate-Webhooks"

Outcome = Literal["delivered", "retry", "dead"]


@dataclass(frozen=True)
class WebhookAttempt:
    """What one POST achieved. ``reason`` is short and PHI-free ("HTTP 503", "timeout"):
    never a response body or exception text."""

    outcome: Outcome
    reason: str = ""
    status_code: int | None = None
    retry_after_s: float | None = None


def webhook_url_problem(url: str) -> str | None:
    """Why Loopgate will not POST to ``url`` (https is required except to loopback), or None."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return "invalid webhook URL"
    if not host or parts.scheme not in ("https", "http"):
        return "invalid webhook URL"
    if parts.scheme == "http" and not is_loopback(host):
        return "webhook URL must use https"
    return None


async def deliver_webhook(
    http: httpx.AsyncClient,
    *,
    url: str,
    secret: str,
    message_id: str,
    body: bytes,
    timeout: float = WEBHOOK_TIMEOUT_S,
) -> WebhookAttempt:
    """POST ``body`` (JSON) to ``url`` signed with ``secret``, ``webhook-id`` = ``message_id``
    (the same on every retry, so receivers can drop repeats)."""
    problem = webhook_url_problem(url)
    if problem is not None:
        return WebhookAttempt("dead", problem)
    try:
        signed = webhook_headers(secret, message_id=message_id, body=body)
    except ValueError:
        return WebhookAttempt("dead", "invalid webhook secret")
    headers = {"content-type": "application/json", "user-agent": USER_AGENT, **signed}
    try:
        async with http.stream(
            "POST", url, content=body, headers=headers, timeout=timeout, follow_redirects=False
        ) as response:
            await _drain(response)
    except httpx.TransportError as error:
        return transport_failure(error)
    except httpx.InvalidURL:
        return WebhookAttempt("dead", "invalid webhook URL")
    return attempt_for_status(response.status_code, response.headers.get("retry-after"))


async def _drain(response: httpx.Response) -> None:
    """Read a little of the answer; the status line has already decided the outcome, so a
    connection dropped while reading the body changes nothing."""
    read = 0
    try:
        async for chunk in response.aiter_raw():
            read += len(chunk)
            if read > DRAINED_BYTES:
                return
    except httpx.TransportError:
        return


def attempt_for_status(status_code: int, retry_after: str | None = None) -> WebhookAttempt:
    reason = f"HTTP {status_code}"
    if 200 <= status_code < 300:
        return WebhookAttempt("delivered", "", status_code)
    if status_code == 410:
        return WebhookAttempt("dead", reason, status_code)
    return WebhookAttempt("retry", reason, status_code, retry_after_seconds(retry_after))


def retry_after_seconds(value: str | None, *, now: float | None = None) -> float | None:
    """RFC 9110 §10.2.3: delay-seconds or an HTTP-date; None when absent or unreadable."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return min(float(value), MAX_RETRY_AFTER_S)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    current = time.time() if now is None else now
    return min(max(when.timestamp() - current, 0.0), MAX_RETRY_AFTER_S)


def transport_failure(error: httpx.TransportError) -> WebhookAttempt:
    """Map httpx's transport errors (the most specific first) to a retry with a short reason;
    the exception's own text never leaves this function."""
    if isinstance(error, httpx.TimeoutException):
        return WebhookAttempt("retry", "timeout")
    if isinstance(error, httpx.ConnectError):
        return WebhookAttempt("retry", _connect_failure(error))
    if isinstance(error, httpx.NetworkError):  # read, write or close failed mid-request
        return WebhookAttempt("retry", "connection reset")
    if isinstance(error, httpx.ProtocolError):
        return WebhookAttempt("retry", "protocol error")
    if isinstance(error, httpx.ProxyError):
        return WebhookAttempt("retry", "proxy error")
    if isinstance(error, httpx.UnsupportedProtocol):
        return WebhookAttempt("dead", "invalid webhook URL")
    return WebhookAttempt("retry", "transport error")


def _connect_failure(error: BaseException) -> str:
    cause: BaseException | None = error
    while cause is not None:
        if isinstance(cause, ConnectionRefusedError):
            return "connection refused"
        if isinstance(cause, socket.gaierror):
            return "name lookup failed"
        if isinstance(cause, ssl.SSLError):
            return "TLS handshake failed"
        cause = cause.__cause__ or cause.__context__
    return "connection failed"
