"""One rest-hook notification POST (Backport IG, "rest-hook": the Bundle as the body, the
subscription's ``channel.header`` values as HTTP headers), and what the answer means.

The answer is read the way webhooks are (``adapters.webhooks``): 2xx is delivered, 410 Gone
means the endpoint wants no more, anything else is retried with backoff; redirects are never
followed. https is required except to a loopback address.
"""

from collections.abc import Sequence

import httpx

from adapters.webhooks.delivery import (
    DRAINED_BYTES,
    WebhookAttempt,
    attempt_for_status,
    transport_failure,
)
from conformance.subscriptions import rest_hook_problem

USER_AGENT = "Loopgate-Subscriptions"
FHIR_JSON = "application/fhir+json"


async def post_notification(
    http: httpx.AsyncClient,
    *,
    url: str,
    headers: Sequence[tuple[str, str]],
    body: bytes,
    timeout: float,
) -> WebhookAttempt:
    problem = rest_hook_problem(url)
    if problem is not None:
        return WebhookAttempt("dead", "endpoint " + problem.split(" (")[0])
    sent = [(name, value) for name, value in headers]
    sent += [("content-type", FHIR_JSON), ("user-agent", USER_AGENT)]
    try:
        async with http.stream(
            "POST",
            url,
            content=body,
            headers=httpx.Headers(sent),
            timeout=timeout,
            follow_redirects=False,
        ) as response:
            read = 0
            try:
                async for chunk in response.aiter_raw():
                    read += len(chunk)
                    if read > DRAINED_BYTES:
                        break
            except httpx.TransportError:
                pass  # the status line has decided already
    except httpx.TransportError as error:
        return transport_failure(error)
    except httpx.InvalidURL:
        return WebhookAttempt("dead", "invalid endpoint")
    return attempt_for_status(response.status_code, response.headers.get("retry-after"))
