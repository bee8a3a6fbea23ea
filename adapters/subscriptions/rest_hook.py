"""Rest-hook notification POSTs (Backport IG, "rest-hook": the Bundle as the body, the
subscription's ``channel.header`` values as HTTP headers), and what the answer means.

The answer is read the way webhooks are (``adapters.webhooks``): 2xx is delivered, 410 Gone
means the endpoint wants no more, anything else is retried with backoff; redirects are never
followed. https is required except to a loopback address, and certificates are verified
against the same trust store as every other outbound call (``httpx.create_ssl_context``).

The POSTs go through aiohttp, not httpx: with 16 notifications in flight a POST through
httpx/httpcore cost about 1.8 ms of CPU and through aiohttp about 0.2 ms, and a notification
burst is bound by CPU (bench/README.md, subscriptions). Only this module imports aiohttp.
"""

import functools
import ssl

import aiohttp
import httpx

from adapters.webhooks.delivery import (
    DRAINED_BYTES,
    Outcome,
    WebhookAttempt,
    attempt_for_status,
)
from conformance.subscriptions import rest_hook_problem

USER_AGENT = "Loopgate-Subscriptions"
FHIR_JSON = "application/fhir+json"
KEEPALIVE_S = 5.0
"""How long an idle connection to an endpoint is kept for the next notification (httpx's)."""
MAX_CONNECTIONS = 100

_FAILURES: tuple[tuple[type[BaseException], Outcome, str], ...] = (
    # most specific first: aiohttp's classes inherit from one another
    (aiohttp.InvalidURL, "dead", "invalid endpoint"),
    (aiohttp.NonHttpUrlClientError, "dead", "invalid endpoint"),
    (aiohttp.ServerTimeoutError, "retry", "timeout"),
    (TimeoutError, "retry", "timeout"),
    (aiohttp.ClientSSLError, "retry", "TLS handshake failed"),
    (aiohttp.ServerFingerprintMismatch, "retry", "TLS handshake failed"),
    (aiohttp.ClientConnectorDNSError, "retry", "name lookup failed"),
    (aiohttp.ClientProxyConnectionError, "retry", "proxy error"),
    (aiohttp.ClientHttpProxyError, "retry", "proxy error"),
    (aiohttp.ClientConnectorError, "retry", "connection failed"),
    (aiohttp.ServerDisconnectedError, "retry", "connection reset"),
    (aiohttp.ClientOSError, "retry", "connection reset"),
    (aiohttp.ClientConnectionResetError, "retry", "connection reset"),
    (aiohttp.UploadAbortedError, "retry", "connection reset"),
    (aiohttp.RedirectClientError, "retry", "protocol error"),
    (aiohttp.ClientPayloadError, "retry", "protocol error"),
    (aiohttp.ClientResponseError, "retry", "protocol error"),
    (aiohttp.ClientConnectionError, "retry", "connection failed"),
)


def failure_of(kind: type[BaseException]) -> tuple[Outcome, str]:
    """The outcome and short reason for an exception class raised by a POST."""
    for failure, outcome, reason in _FAILURES:
        if issubclass(kind, failure):
            return outcome, reason
    return "retry", "transport error"


def transport_failure(error: BaseException) -> WebhookAttempt:
    """``error`` as a retry (or dead, for an unusable URL) with a short, PHI-free reason; the
    exception's own text never leaves this function."""
    if isinstance(error, aiohttp.ClientConnectorError) and isinstance(
        error.os_error, ConnectionRefusedError
    ):
        return WebhookAttempt("retry", "connection refused")
    outcome, reason = failure_of(type(error))
    return WebhookAttempt(outcome, reason)


_endpoint_problem = functools.lru_cache(maxsize=4096)(rest_hook_problem)
"""Endpoints are few and checked on every notification."""


class RestHookClient:
    """One keep-alive connection pool for every rest-hook POST of this process. The session
    is opened on first use, inside the running event loop; ``aclose()`` when done."""

    def __init__(self, *, ssl_context: ssl.SSLContext | None = None) -> None:
        self._ssl_context = ssl_context
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            ssl=self._ssl_context or httpx.create_ssl_context(),
            limit=MAX_CONNECTIONS,
            keepalive_timeout=KEEPALIVE_S,
        )
        return aiohttp.ClientSession(
            connector=connector,
            # no proxy or .netrc credentials from the environment: a subscriber's endpoint
            # never gets anything but the body and its own channel headers
            trust_env=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            auto_decompress=False,
            skip_auto_headers=("Accept-Encoding",),
        )

    async def post(
        self, *, url: str, headers: tuple[tuple[str, str], ...], body: bytes, timeout: float
    ) -> WebhookAttempt:
        """POST ``body`` to ``url``; the answer's status line decides the outcome."""
        problem = _endpoint_problem(url)
        if problem is not None:
            return WebhookAttempt("dead", "endpoint " + problem.split(" (")[0])
        if self._session is None:
            self._session = self._open()
        sent = [*headers, ("content-type", FHIR_JSON), ("user-agent", USER_AGENT)]
        try:
            async with self._session.post(
                url,
                data=body,
                headers=sent,
                timeout=aiohttp.ClientTimeout(total=timeout),
                allow_redirects=False,
            ) as response:
                await _drain(response)
                status, retry_after = response.status, response.headers.get("retry-after")
        except (aiohttp.ClientError, TimeoutError) as error:
            return transport_failure(error)
        return attempt_for_status(status, retry_after)

    async def aclose(self) -> None:
        session, self._session = self._session, None
        if session is not None:
            await session.close()


async def _drain(response: aiohttp.ClientResponse) -> None:
    """Read (and drop) a little of the answer so the connection can be reused; a connection
    dropped meanwhile changes nothing, the status line has decided."""
    read = 0
    try:
        while read <= DRAINED_BYTES:
            chunk = await response.content.readany()
            if not chunk:
                return
            read += len(chunk)
    except (aiohttp.ClientError, TimeoutError):
        return
