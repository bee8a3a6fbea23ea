"""The delivery outbox: every outbound call is a row written with the change that caused it,
delivered at least once, in order per key, by ``OutboxWorker``."""

from gateway.outbox.admin import (
    AttemptRecord,
    MessageSummary,
    get_message,
    list_messages,
    message_attempts,
    redeliver_message,
)
from gateway.outbox.enqueue import enqueue, enqueue_many
from gateway.outbox.messages import DeliveryResult, Handler, OutboxMessage
from gateway.outbox.retry_policy import RetryPolicy
from gateway.outbox.webhooks import WebhookTarget, webhook_handler
from gateway.outbox.worker import OutboxOptions, OutboxWorker

__all__ = [
    "AttemptRecord",
    "DeliveryResult",
    "Handler",
    "MessageSummary",
    "OutboxMessage",
    "OutboxOptions",
    "OutboxWorker",
    "RetryPolicy",
    "WebhookTarget",
    "enqueue",
    "enqueue_many",
    "get_message",
    "list_messages",
    "message_attempts",
    "redeliver_message",
    "webhook_handler",
]
