"""The outbox handler for kind "subscription": render the notification as the subscription
and its subscriber's rights stand now, send it on its channel, and move its status.

Messages of one subscription share an ordering key, so handshake, events and heartbeats go
out one at a time in the order they were queued; a receiver that is down holds the rest back
until it answers, then gets each missed event, numbers in order, none skipped.
"""

import asyncio
from email.utils import parseaddr
from typing import Any

import orjson
from sqlalchemy import Connection, Engine

from adapters.email import SmtpConfig, send_email
from adapters.subscriptions import RestHookClient, notification_email
from adapters.webhooks import WEBHOOK_TIMEOUT_S
from conformance.subscriptions import REST_HOOK, email_address
from gateway.outbox import DeliveryResult, Handler, OutboxMessage
from gateway.subscriptions import records
from gateway.subscriptions.reads import HeldReads
from gateway.subscriptions.records import SubscriptionRecord
from gateway.subscriptions.rendering import Renderer
from gateway.subscriptions.status import StatusMoves


def subscription_handler(
    *,
    engine: Engine,
    renderer: Renderer,
    statuses: StatusMoves,
    rest_hooks: RestHookClient,
    smtp: SmtpConfig | None,
    sender: str,
) -> Handler:
    reads = HeldReads(engine)

    async def deliver(message: OutboxMessage) -> DeliveryResult:
        with reads.in_flight():
            return await deliver_one(message)

    async def deliver_one(message: OutboxMessage) -> DeliveryResult:
        payload = message.payload
        kind = str(payload.get("type"))
        with reads.reading() as connection:
            record = records.get_subscription(connection, message.destination)
            if record is None:
                return DeliveryResult.dead("no such subscription")
            if record.status == "off":
                return DeliveryResult("delivered", "not sent: subscription off")
            event_number = None
            events: list[records.EventRecord] = []
            if kind == "event-notification":
                event_number = int(payload["event"])
                events = _events_of(connection, record.id, payload, event_number)
                since = event_number
            else:
                since = int(payload.get("events_since_start", 0))
            bundle = renderer.bundle(
                connection,
                record,
                kind=kind,
                reader=record.access,
                events_since_start=since,
                events=events,
                status="requested" if kind == "handshake" else None,
            )
        if record.channel == REST_HOOK:
            timeout = min(float(record.timeout_s or WEBHOOK_TIMEOUT_S), WEBHOOK_TIMEOUT_S)
            attempt = await rest_hooks.post(
                url=record.endpoint,
                headers=record.headers,
                body=orjson.dumps(bundle),
                timeout=timeout,
            )
            result = DeliveryResult(
                attempt.outcome, attempt.reason, attempt.status_code, attempt.retry_after_s
            )
        else:
            result = await _send_email(record, message, kind, event_number, smtp, sender, renderer)
        statuses.after_attempt(record, result)
        return result

    return deliver


def _events_of(
    connection: Connection, subscription_id: str, payload: dict[str, Any], number: int
) -> list[records.EventRecord]:
    """The event a notification is about: from its payload (``event_payload``), or, for one
    queued before payloads carried it, from the ``$events`` log."""
    focus = payload.get("focus")
    if isinstance(focus, list) and len(focus) == 4 and "occurred_at" in payload:
        focus_type, focus_id, version, method = focus
        return [
            records.EventRecord(
                number,
                int(payload["occurred_at"]),
                str(focus_type),
                str(focus_id),
                int(version),
                str(method),
            )
        ]
    return records.events_between(connection, subscription_id, number, number)


async def _send_email(
    record: SubscriptionRecord,
    message: OutboxMessage,
    kind: str,
    event_number: int | None,
    smtp: SmtpConfig | None,
    sender: str,
    renderer: Renderer,
) -> DeliveryResult:
    recipient = email_address(record.endpoint)
    if smtp is None or recipient is None:
        return DeliveryResult.dead("e-mail is not configured")
    if kind == "heartbeat":
        return DeliveryResult("delivered", "not sent: no heartbeats by e-mail")
    domain = parseaddr(sender)[1].rpartition("@")[2] or "loopgate.invalid"
    email = notification_email(
        sender=sender,
        recipient=recipient,
        subscription_url=f"{renderer.fhir_base}/Subscription/{record.id}",
        kind=kind,
        event_number=event_number,
        message_id=f"<{message.id}@{domain}>",
    )
    attempt = await asyncio.to_thread(send_email, smtp, email)
    return DeliveryResult(attempt.outcome, attempt.reason, attempt.reply_code)
