"""The outbox handler for kind "webhook": a Standard Webhooks POST to the destination's URL.

The partner's URL and secret are looked up on every attempt through ``webhook_target``, so a
CBO that fixes its endpoint or rotates its secret is picked up by the next retry.
"""

from collections.abc import Callable

import httpx

from adapters.webhooks import WEBHOOK_TIMEOUT_S, deliver_webhook
from gateway.outbox.messages import DeliveryResult, Handler, OutboxMessage

WebhookTarget = Callable[[str], tuple[str, str] | None]
"""destination → (url, ``whsec_`` secret), or None when it has no webhook."""


def webhook_handler(
    http: httpx.AsyncClient, *, webhook_target: WebhookTarget, timeout: float = WEBHOOK_TIMEOUT_S
) -> Handler:
    """A handler that sends the message's payload as the body, ``webhook-id`` = message id."""

    async def deliver(message: OutboxMessage) -> DeliveryResult:
        target = webhook_target(message.destination)
        if target is None:
            return DeliveryResult.dead("no webhook configured")
        url, secret = target
        attempt = await deliver_webhook(
            http,
            url=url,
            secret=secret,
            message_id=message.id,
            body=message.payload_json.encode(),
            timeout=timeout,
        )
        return DeliveryResult(
            attempt.outcome, attempt.reason, attempt.status_code, attempt.retry_after_s
        )

    return deliver
