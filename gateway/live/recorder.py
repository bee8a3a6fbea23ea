"""The ``FhirService`` task listener that records each Task write's referral events for the
organizations at both ends of the referral (owner and requester), in the write's transaction."""

from collections.abc import Callable, Sequence
from typing import Any

from gateway.fhir.write_context import TaskWrite, WriteContext
from gateway.live.feed import append_events
from gateway.referrals.events import MESSAGE_CREATED, REFERRAL_CREATED, referral_events

Changed = Callable[[Sequence[str]], None]
"""Told, after the commit, which organizations have new events (to wake their streams)."""


def events_by_organization(write: TaskWrite) -> dict[str, list[str]]:
    """What one Task version means for each organization involved: the owner as its webhook
    sees it, the requester as the side that follows its own referral."""
    found: dict[str, list[str]] = {}
    owner, requester = write.parties.owner, write.parties.requester
    if owner is not None:
        found[owner] = referral_events(write)
    if requester is not None and requester != owner:
        found[requester] = referral_events(write, for_owner=False)
    return {organization: events for organization, events in found.items() if events}


class ReferralEventRecorder:
    def __init__(self, *, changed: Changed | None = None) -> None:
        self.changed = changed

    def __call__(self, ctx: WriteContext, writes: Sequence[TaskWrite]) -> None:
        pending: dict[str, list[dict[str, Any]]] = {}
        for write in writes:
            for organization, events in events_by_organization(write).items():
                pending.setdefault(organization, []).extend(_rows(events, write, ctx))
        if not pending:
            return
        organizations = sorted(pending)
        append_events(ctx.other_tables, pending)
        changed = self.changed
        if changed is not None:
            ctx.after_commit.append(lambda: changed(organizations))


def _rows(events: list[str], write: TaskWrite, ctx: WriteContext) -> list[dict[str, Any]]:
    """PHI-free rows: ids, statuses, who changed it, and which message was added."""
    previous = write.previous
    message_number = len((previous or {}).get("note") or [])
    rows = []
    for event in events:
        row: dict[str, Any] = {
            "type": event,
            "referral_id": write.stored.id,
            "version": write.stored.version_id,
            "status": str(write.current.get("status")),
            "previous_status": None,
            "changed_by": ctx.actor.organization,
            "message_number": None,
            "created_at": write.stored.last_updated,
        }
        if previous is not None and event != REFERRAL_CREATED:
            row["previous_status"] = previous.get("status")
        if event == MESSAGE_CREATED:
            message_number += 1
            row["message_number"] = message_number
        rows.append(row)
    return rows
