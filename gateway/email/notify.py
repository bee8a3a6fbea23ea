"""What puts referral e-mails on the outbox: a new referral for a partner that lists e-mail
addresses (a ``ReferralNotifier`` sink, in the Task write's own transaction), and the
overdue scan's reminders (``enqueue_referral_emails``).

One outbox message per recipient: each has its own delivery, retries and dead letter (a
mistyped address never holds up the others), recipients never see each other's addresses,
and each e-mail carries its own links, so Provenance tells which e-mail's link acted.
"""

from collections.abc import Callable
from typing import Literal

from sqlalchemy import Connection

from gateway.fhir.write_context import TaskWrite, WriteContext
from gateway.outbox import enqueue
from gateway.partners.policy import Partner
from gateway.referrals.capacity import organization_at_capacity
from gateway.referrals.events import REFERRAL_CREATED, PartnerSink

EMAIL_KIND = "email"
Template = Literal["new", "overdue"]
Stage = Literal["respond", "close"]


def enqueue_referral_emails(
    connection: Connection,
    partner: Partner,
    *,
    referral_id: str,
    template: Template,
    stage: Stage | None = None,
) -> int:
    """One e-mail message per distinct address of the partner; returns how many."""
    recipients = list(dict.fromkeys(address.strip() for address in partner.emails))
    for recipient in recipients:
        payload: dict[str, str] = {
            "template": template,
            "referral_id": referral_id,
            "recipient": recipient,
        }
        if stage is not None:
            payload["stage"] = stage
        enqueue(
            connection,
            kind=EMAIL_KIND,
            destination=partner.organization,
            # a reminder goes after the first e-mail to the same address, never before it
            ordering_key=f"{referral_id}|{recipient}"[:255],
            payload=payload,
        )
    return len(recipients)


def new_referral_sink(*, wake_outbox: Callable[[], None]) -> PartnerSink:
    """E-mail the partner's staff when a referral reaches it, waiting for an answer."""

    def sink(ctx: WriteContext, partner: Partner, write: TaskWrite, events: list[str]) -> None:
        if REFERRAL_CREATED not in events or not partner.emails:
            return
        if write.current.get("status") != "requested":
            return
        if partner.auto_decline_at_capacity and organization_at_capacity(
            ctx.connection, partner.organization
        ):
            return  # declined for them at once (events.ReferralNotifier): nothing to answer
        if enqueue_referral_emails(
            ctx.connection, partner, referral_id=write.stored.id, template="new"
        ):
            ctx.after_commit.append(wake_outbox)

    return sink
