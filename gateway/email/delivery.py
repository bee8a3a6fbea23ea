"""The outbox handler for kind "email": write the referral e-mail as the referral stands now
and hand it to the SMTP server.

Composing at send time, not when enqueued, means the e-mail shows the referral as it is, and
a referral answered meanwhile (by a colleague, through the API, or declined automatically)
gets no e-mail at all. The links carry the outbox message id, the same on every retry, so
an e-mail that went out twice is still used up by one click.
"""

import asyncio
import logging
import time
from dataclasses import replace
from datetime import UTC, datetime, tzinfo
from email.message import EmailMessage
from email.utils import parseaddr
from typing import Any
from zoneinfo import ZoneInfo

from adapters.email import (
    DEFAULT_PORTS,
    ActionLinks,
    Letter,
    SmtpConfig,
    referral_email,
    send_email,
)
from conformance.errors import Forbidden, ResourceGone, ResourceNotFound
from gateway.email.link_tokens import LinkClaims
from gateway.email.links import EmailLinks
from gateway.email.summaries import referral_summary
from gateway.outbox import DeliveryResult, Handler, OutboxMessage
from gateway.referrals.cbo_core import CboApi
from gateway.settings import Settings

log = logging.getLogger("loopgate.email")

SENDER_CLIENT = "loopgate:email"
_WORKING = ("accepted", "in-progress", "on-hold")
_STILL_DUE: dict[Letter, tuple[str, ...]] = {
    "new": ("requested",),
    "respond-overdue": ("requested",),
    "close-overdue": _WORKING,
}


def smtp_config(settings: Settings) -> SmtpConfig:
    return SmtpConfig(
        host=settings.smtp_host,
        port=settings.smtp_port or DEFAULT_PORTS[settings.smtp_security],
        security=settings.smtp_security,
        username=settings.smtp_username or None,
        password=settings.smtp_password,
        timeout_s=settings.smtp_timeout_s,
    )


def email_zone(settings: Settings) -> tzinfo:
    """The time zone e-mails and link pages show times in."""
    return UTC if settings.email_time_zone == "UTC" else ZoneInfo(settings.email_time_zone)


def email_handler(
    *,
    cbo: CboApi,
    links: EmailLinks,
    smtp: SmtpConfig,
    sender: str,
    zone: tzinfo,
    link_ttl_s: float,
) -> Handler:
    def compose(message: OutboxMessage) -> EmailMessage | str:
        """The e-mail to send, or why none is sent."""
        payload = message.payload
        referral_id, recipient = str(payload["referral_id"]), str(payload["recipient"])
        letter = _letter(payload)
        if letter is None:
            return "unknown template"
        try:
            summary = referral_summary(
                cbo,
                organization=message.destination,
                referral_id=referral_id,
                client_id=SENDER_CLIENT,
            )
        except (ResourceNotFound, ResourceGone, Forbidden):
            return "the referral is no longer with this organization"
        if summary.status not in _STILL_DUE[letter]:
            return f"the referral is {summary.status}"
        action_links = None
        if letter != "close-overdue":
            expires = int(time.time() + link_ttl_s)
            accept = LinkClaims(message.id, referral_id, message.destination, "accept", expires)
            action_links = ActionLinks(
                accept=links.url(accept),
                decline=links.url(replace(accept, action="decline")),
                expires=datetime.fromtimestamp(expires, UTC),
            )
        return referral_email(
            letter,
            summary,
            sender=sender,
            recipient=recipient,
            links=action_links,
            zone=zone,
            message_id=f"<{message.id}@{_domain(sender)}>",
            now=datetime.now(UTC),
        )

    async def deliver(message: OutboxMessage) -> DeliveryResult:
        composed = compose(message)
        if isinstance(composed, str):
            log.info("e-mail %s for Task/%s not sent: %s", message.id, _id(message), composed)
            return DeliveryResult("delivered", f"not sent: {composed}")
        attempt = await asyncio.to_thread(send_email, smtp, composed)
        return DeliveryResult(attempt.outcome, attempt.reason, attempt.reply_code)

    return deliver


def _letter(payload: dict[str, Any]) -> Letter | None:
    template, stage = payload.get("template"), payload.get("stage")
    if template == "new":
        return "new"
    if template == "overdue" and stage in ("respond", "close"):
        return "respond-overdue" if stage == "respond" else "close-overdue"
    return None


def _domain(sender: str) -> str:
    return parseaddr(sender)[1].rpartition("@")[2] or "loopgate.invalid"


def _id(message: OutboxMessage) -> str:
    return str(message.payload.get("referral_id"))
