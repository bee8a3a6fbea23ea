"""Signed webhooks to CBOs, as Standard Webhooks (https://www.standardwebhooks.com/) has them."""

from adapters.webhooks.delivery import (
    WEBHOOK_TIMEOUT_S,
    WebhookAttempt,
    deliver_webhook,
    webhook_url_problem,
)
from adapters.webhooks.signature import (
    WebhookVerificationError,
    new_webhook_secret,
    sign_webhook,
    verify_webhook,
    webhook_headers,
)

__all__ = [
    "WEBHOOK_TIMEOUT_S",
    "WebhookAttempt",
    "WebhookVerificationError",
    "deliver_webhook",
    "new_webhook_secret",
    "sign_webhook",
    "verify_webhook",
    "webhook_headers",
    "webhook_url_problem",
]
