"""One webhook POST and how each answer maps to delivered / retry / dead (respx fakes the CBO;
the connection-refused case uses a real closed port)."""

import asyncio
import email.utils
import time

import httpx
import pytest
import respx

from adapters.webhooks import WebhookAttempt, deliver_webhook, new_webhook_secret, verify_webhook
from adapters.webhooks.delivery import retry_after_seconds, transport_failure
from tests.adapters.webhook_receiver import free_port

URL = "https://cbo.example/hooks/loopgate"
SECRET = new_webhook_secret()
BODY = b'{"type":"referral.created","data":{"id":"task-1"}}'


def deliver(url: str = URL, *, secret: str = SECRET, timeout: float = 10.0) -> WebhookAttempt:
    async def go() -> WebhookAttempt:
        async with httpx.AsyncClient() as http:
            return await deliver_webhook(
                http, url=url, secret=secret, message_id="0190-m1", body=BODY, timeout=timeout
            )

    return asyncio.run(go())


def test_deliver__posts_the_exact_body_signed_with_the_message_id() -> None:
    with respx.mock(assert_all_called=True) as cbo:
        route = cbo.post(URL).respond(204)
        attempt = deliver()
    assert attempt == WebhookAttempt("delivered", "", 204)
    request = route.calls.last.request
    assert request.content == BODY
    assert request.headers["webhook-id"] == "0190-m1"
    assert request.headers["content-type"] == "application/json"
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 5
    verify_webhook(SECRET, request.headers, request.content)


def test_deliver__never_follows_a_redirect() -> None:
    with respx.mock(assert_all_called=False) as cbo:
        cbo.post(URL).respond(307, headers={"location": "https://elsewhere.example/x"})
        elsewhere = cbo.post("https://elsewhere.example/x").respond(200)
        attempt = deliver()
    assert attempt.outcome == "retry"
    assert attempt.reason == "HTTP 307"
    assert not elsewhere.called


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (200, "delivered"),
        (202, "delivered"),
        (400, "retry"),
        (401, "retry"),
        (404, "retry"),
        (408, "retry"),
        (410, "dead"),
        (429, "retry"),
        (500, "retry"),
        (502, "retry"),
        (503, "retry"),
    ],
)
def test_deliver__maps_the_status_to_an_outcome(status: int, outcome: str) -> None:
    with respx.mock(assert_all_called=True) as cbo:
        cbo.post(URL).respond(status, text="patient Denise Rivera, DOB 1961-03-02")
        attempt = deliver()
    assert attempt.outcome == outcome
    assert attempt.status_code == status
    assert attempt.reason == ("" if outcome == "delivered" else f"HTTP {status}")
    assert "Rivera" not in attempt.reason  # never the response body


def test_deliver__passes_retry_after_on() -> None:
    later = email.utils.formatdate(time.time() + 90, usegmt=True)
    with respx.mock(assert_all_called=True) as cbo:
        cbo.post(URL).mock(
            side_effect=[
                httpx.Response(503, headers={"retry-after": "120"}),
                httpx.Response(429, headers={"retry-after": later}),
            ]
        )
        first, second = deliver(), deliver()
    assert first.retry_after_s == 120
    assert second.retry_after_s is not None
    assert 85 <= second.retry_after_s <= 91


@pytest.mark.parametrize(
    ("error", "reason"),
    [
        (httpx.ConnectTimeout("connect timed out to 10.0.0.1"), "timeout"),
        (httpx.ReadTimeout("read timed out"), "timeout"),
        (httpx.ConnectError("[Errno -2] Name or service not known"), "connection failed"),
        (httpx.ReadError("connection reset by peer"), "connection reset"),
        (httpx.RemoteProtocolError("server disconnected"), "protocol error"),
    ],
)
def test_deliver__network_failures_are_retried_with_a_short_reason(
    error: Exception, reason: str
) -> None:
    with respx.mock(assert_all_called=True) as cbo:
        cbo.post(URL).mock(side_effect=error)
        attempt = deliver()
    assert attempt == WebhookAttempt("retry", reason)


def test_deliver__a_real_closed_port_is_connection_refused() -> None:
    attempt = deliver(f"http://127.0.0.1:{free_port()}/hooks")
    assert attempt == WebhookAttempt("retry", "connection refused")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://cbo.example/hooks", "webhook URL must use https"),
        ("http://10.0.0.7/hooks", "webhook URL must use https"),
        ("ftp://cbo.example/hooks", "invalid webhook URL"),
        ("not a url", "invalid webhook URL"),
    ],
)
def test_deliver__refuses_urls_without_https_unless_loopback(url: str, reason: str) -> None:
    with respx.mock(assert_all_mocked=True, assert_all_called=False):
        assert deliver(url) == WebhookAttempt("dead", reason)


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:9/h", "http://localhost:9/h", "http://[::1]:9/h"]
)
def test_deliver__allows_plain_http_to_loopback(url: str) -> None:
    with respx.mock(assert_all_called=True) as cbo:
        cbo.post(url).respond(200)
        assert deliver(url).outcome == "delivered"


def test_deliver__a_broken_secret_is_dead_not_retried() -> None:
    with respx.mock(assert_all_mocked=True, assert_all_called=False):
        assert deliver(secret="whsec_???") == WebhookAttempt("dead", "invalid webhook secret")


def _subclasses(cls: type) -> set[type]:
    found = set()
    for sub in cls.__subclasses__():
        found |= {sub} | _subclasses(sub)
    return found


@pytest.mark.parametrize(
    "error_class",
    sorted(_subclasses(httpx.TransportError), key=lambda c: c.__name__),
    ids=lambda c: c.__name__,
)
def test_transport_failure__maps_every_httpx_transport_error_specifically(error_class) -> None:
    attempt = transport_failure(error_class("secret detail: patient Rivera"))
    assert attempt.reason != "transport error"
    assert "Rivera" not in attempt.reason


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        (None, None),
        ("", None),
        ("0", 0),
        ("30", 30),
        ("99999999", 86_400),
        ("soon", None),
        ("-5", None),
        ("Wed, 21 Oct 2015 07:28:00 GMT", 0),
    ],
)
def test_retry_after__reads_delay_seconds_and_http_dates(value, seconds) -> None:
    assert retry_after_seconds(value) == seconds


def test_retry_after__an_http_date_in_the_future_is_the_wait_until_then() -> None:
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412480 - 60) == 60
