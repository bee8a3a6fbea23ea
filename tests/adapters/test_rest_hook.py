"""One rest-hook notification POST and how each answer or failure maps to delivered / retry /
dead. The subscriber's endpoint is a real HTTP(S) server on a loopback port."""

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from adapters.subscriptions import RestHookClient
from adapters.subscriptions.rest_hook import failure_of
from adapters.webhooks import WebhookAttempt
from tests.adapters.webhook_receiver import free_port

BODY = b'{"resourceType":"Bundle","type":"history"}'
Route = Callable[[web.Request], Awaitable[web.StreamResponse]]


@asynccontextmanager
async def endpoint(
    route: Route, *, tls: ssl.SSLContext | None = None
) -> AsyncIterator[tuple[str, list[web.Request]]]:
    """A subscriber on a loopback port: POST /hook answered by ``route``; yields its URL and
    the requests it got (with their bodies read)."""
    seen: list[web.Request] = []

    async def handle(request: web.Request) -> web.StreamResponse:
        await request.read()
        seen.append(request)
        return await route(request)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls).start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{port}/hook", seen
    finally:
        await runner.cleanup()


def answer(status: int, **headers: str) -> Route:
    async def route(_: web.Request) -> web.StreamResponse:
        return web.Response(status=status, headers=headers)

    return route


def post(
    route: Route, *, timeout: float = 5.0, tls: ssl.SSLContext | None = None
) -> tuple[WebhookAttempt, list[web.Request]]:
    async def go() -> tuple[WebhookAttempt, list[web.Request]]:
        client = RestHookClient()
        try:
            async with endpoint(route, tls=tls) as (url, seen):
                attempt = await client.post(
                    url=url,
                    headers=(("Authorization", "Bearer s3cret"),),
                    body=BODY,
                    timeout=timeout,
                )
                return attempt, seen
        finally:
            await client.aclose()

    return asyncio.run(go())


def test_post__sends_the_bundle_with_the_channel_headers() -> None:
    attempt, [request] = post(answer(200))
    assert attempt == WebhookAttempt("delivered", "", 200)
    assert request.method == "POST"
    assert request.path == "/hook"
    assert request.headers["authorization"] == "Bearer s3cret"
    assert request.headers["content-type"] == "application/fhir+json"
    assert request.headers["user-agent"] == "Loopgate-Subscriptions"
    assert "cookie" not in request.headers


def test_post__reads_the_body_it_posted() -> None:
    async def echo(request: web.Request) -> web.StreamResponse:
        return web.Response(status=200 if await request.read() == BODY else 400)

    assert post(echo)[0].outcome == "delivered"


def test_post__never_follows_a_redirect() -> None:
    attempt, seen = post(answer(307, Location="/elsewhere"))
    assert (attempt.outcome, attempt.reason, attempt.status_code) == ("retry", "HTTP 307", 307)
    assert [r.path for r in seen] == ["/hook"]


@pytest.mark.parametrize(
    ("status", "headers", "expected"),
    [
        (202, {}, WebhookAttempt("delivered", "", 202)),
        (410, {}, WebhookAttempt("dead", "HTTP 410", 410)),
        (503, {"Retry-After": "7"}, WebhookAttempt("retry", "HTTP 503", 503, 7.0)),
        (404, {}, WebhookAttempt("retry", "HTTP 404", 404)),
    ],
)
def test_post__the_status_line_decides(
    status: int, headers: dict[str, str], expected: WebhookAttempt
) -> None:
    assert post(answer(status, **headers))[0] == expected


def test_post__a_long_answer_is_read_only_in_part_and_still_counts() -> None:
    async def chatty(_: web.Request) -> web.StreamResponse:
        return web.Response(status=200, body=b"x" * (4 * 1024 * 1024))

    assert post(chatty)[0] == WebhookAttempt("delivered", "", 200)


def test_post__an_endpoint_that_does_not_answer_in_time_is_a_timeout() -> None:
    async def slow(_: web.Request) -> web.StreamResponse:
        await asyncio.sleep(5)
        return web.Response(status=200)

    assert post(slow, timeout=0.2)[0] == WebhookAttempt("retry", "timeout")


def test_post__a_closed_port_is_connection_refused() -> None:
    async def go() -> WebhookAttempt:
        client = RestHookClient()
        try:
            url = f"http://127.0.0.1:{free_port()}/hook"
            return await client.post(url=url, headers=(), body=BODY, timeout=5)
        finally:
            await client.aclose()

    assert asyncio.run(go()) == WebhookAttempt("retry", "connection refused")


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://subscriber.example/hook", "endpoint must use https"),
        ("https://user:pw@subscriber.example/hook", "endpoint must not carry credentials; send"),
        ("ftp://subscriber.example/hook", "endpoint must be an absolute https URL"),
    ],
)
def test_post__an_endpoint_it_may_not_use_is_dead_without_a_request(url: str, reason: str) -> None:
    async def go() -> WebhookAttempt:
        client = RestHookClient()
        try:
            return await client.post(url=url, headers=(), body=BODY, timeout=5)
        finally:
            await client.aclose()

    attempt = asyncio.run(go())
    assert attempt.outcome == "dead"
    assert attempt.reason.startswith(reason)


def test_post__verifies_the_endpoints_certificate(tmp_path: Path) -> None:
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(*_self_signed(tmp_path))
    attempt, seen = post(answer(200), tls=tls)
    assert attempt == WebhookAttempt("retry", "TLS handshake failed")
    assert seen == []


def test_failure_of__maps_every_aiohttp_client_error_to_a_specific_reason() -> None:
    errors = {
        value
        for value in vars(aiohttp).values()
        if isinstance(value, type) and issubclass(value, aiohttp.ClientError)
    }
    assert len(errors) > 20
    unmapped = sorted(e.__name__ for e in errors - {aiohttp.ClientError} if _generic(e))
    assert unmapped == []
    assert failure_of(aiohttp.InvalidUrlClientError) == ("dead", "invalid endpoint")
    assert failure_of(aiohttp.ConnectionTimeoutError) == ("retry", "timeout")
    assert failure_of(aiohttp.ClientConnectorCertificateError) == (
        "retry",
        "TLS handshake failed",
    )
    assert failure_of(aiohttp.ClientConnectorDNSError) == ("retry", "name lookup failed")
    assert failure_of(aiohttp.ServerDisconnectedError) == ("retry", "connection reset")


def _generic(error: type[BaseException]) -> bool:
    return failure_of(error) == ("retry", "transport error")


def _self_signed(directory: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
