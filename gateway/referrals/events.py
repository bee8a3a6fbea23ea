"""Referral events for community organizations: each Task write becomes ``referral.*`` and
``message.created`` events on the outbox, for the owner organization's webhook, in the write's
own transaction (so an event is never sent for a change that rolled back, nor lost for one
that committed).

Payloads follow the Standard Webhooks shape (``type``, ``timestamp``, ``data``) and carry no
PHI: ids, statuses and where to read the referral; the receiver reads details with its key.
"""

from collections.abc import Callable, Sequence
from typing import Any

from conformance.fhir_time import format_instant
from gateway.fhir.write_context import TaskWrite, WriteContext
from gateway.outbox import enqueue
from gateway.partners.policy import Partner, get_partner
from gateway.referrals.capacity import organization_at_capacity

WEBHOOK_KIND = "webhook"
AUTO_DECLINE_KIND = "auto-decline"

REFERRAL_CREATED = "referral.created"
REFERRAL_UPDATED = "referral.updated"
REFERRAL_CANCELLED = "referral.cancelled"
MESSAGE_CREATED = "message.created"
EVENT_TYPES = (REFERRAL_CREATED, REFERRAL_UPDATED, REFERRAL_CANCELLED, MESSAGE_CREATED)

_NOT_A_CHANGE = ("meta", "note", "lastModified")
"""Fields that change with every version, or whose change is a message of its own."""

PartnerSink = Callable[[WriteContext, Partner, TaskWrite, list[str]], None]
"""Also told of a write's events for a partner (e-mail to its staff, for instance)."""


def referral_events(write: TaskWrite, *, for_owner: bool = True) -> list[str]:
    """The events one Task version means for its owner (or, ``for_owner=False``, its
    requester), in the order they happened.

    A referral is *created* for an owner when it first reaches it past ``draft`` (new, out of
    draft, or handed to another owner); afterwards a move to ``cancelled`` is *cancelled*, any
    other change *updated*, and each note added a *message*. For the requester, a hand-over to
    another owner is an update of a referral it already has.
    """
    previous, current = write.previous, write.current
    if current.get("status") == "draft":
        return []
    if (
        previous is None
        or previous.get("status") == "draft"
        or (for_owner and previous.get("owner") != current.get("owner"))
    ):
        return [REFERRAL_CREATED]
    events: list[str] = []
    if current.get("status") == "cancelled" and previous.get("status") != "cancelled":
        events.append(REFERRAL_CANCELLED)
    elif _content(previous) != _content(current):
        events.append(REFERRAL_UPDATED)
    added = len(current.get("note") or []) - len(previous.get("note") or [])
    events += [MESSAGE_CREATED] * max(added, 0)
    return events


class ReferralNotifier:
    """The ``FhirService`` task listener that turns Task writes into partner events."""

    def __init__(
        self,
        *,
        api_base: str,
        after_commit: Callable[[], None] | None = None,
        sinks: Sequence[PartnerSink] = (),
    ) -> None:
        self.api_base = api_base
        self.after_commit = after_commit
        self.sinks = list(sinks)

    def __call__(self, ctx: WriteContext, writes: Sequence[TaskWrite]) -> None:
        enqueued = False
        for write in writes:
            owner = write.parties.owner
            events = referral_events(write) if owner else []
            if owner is None or not events:
                continue
            partner = get_partner(ctx.other_tables, owner)
            if partner.webhook_url:
                for payload in self.payloads(events, write, ctx):
                    enqueue(
                        ctx.other_tables,
                        kind=WEBHOOK_KIND,
                        destination=owner,
                        ordering_key=write.stored.id,
                        payload=payload,
                    )
                enqueued = True
            if REFERRAL_CREATED in events and self._auto_declines(ctx, partner, write):
                enqueue(
                    ctx.connection,
                    kind=AUTO_DECLINE_KIND,
                    destination=owner,
                    ordering_key=write.stored.id,
                    payload={"referral_id": write.stored.id, "version": write.stored.version_id},
                )
                enqueued = True
            for sink in self.sinks:
                sink(ctx, partner, write, events)
        if enqueued and self.after_commit is not None:
            ctx.after_commit.append(self.after_commit)

    def payloads(
        self, events: list[str], write: TaskWrite, ctx: WriteContext
    ) -> list[dict[str, Any]]:
        """One Standard Webhooks payload per event: ids, statuses and links, no PHI."""
        referral_id = write.stored.id
        common: dict[str, Any] = {
            "referral_id": referral_id,
            "version": write.stored.version_id,
            "status": write.current.get("status"),
        }
        if ctx.actor.organization:
            common["changed_by"] = ctx.actor.organization
        message_number = len((write.previous or {}).get("note") or [])
        payloads = []
        for event in events:
            data = {**common, "url": f"{self.api_base}/referrals/{referral_id}"}
            if write.previous is not None and event != REFERRAL_CREATED:
                data["previous_status"] = write.previous.get("status")
            if event == MESSAGE_CREATED:
                message_number += 1
                data["message_number"] = message_number
                data["url"] += "/messages"
            timestamp = format_instant(write.stored.last_updated)
            payloads.append({"type": event, "timestamp": timestamp, "data": data})
        return payloads

    def _auto_declines(self, ctx: WriteContext, partner: Partner, write: TaskWrite) -> bool:
        return (
            partner.auto_decline_at_capacity
            and write.current.get("status") == "requested"
            and organization_at_capacity(ctx.connection, partner.organization)
        )


def _content(task: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in task.items() if k not in _NOT_A_CHANGE}
