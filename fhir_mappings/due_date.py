"""When the next step on a referral is due, from the partner's SLA or the Task's own deadline.

Gravity leaves deadlines open; ``Task.restriction.period.end`` is read as a "complete by" date
(reference/gravity.md §3.4) and wins over the partner SLA whenever the referral is open.
"""

from collections.abc import Sequence
from datetime import timedelta

from conformance.task_lifecycle import TERMINAL_STATUSES
from fhir_mappings._fhir_json import Resource, obj, parse_datetime, text
from fhir_mappings.referral_record import DisclosurePolicy, TaskChange
from fhir_mappings.timeline import accepted_at, created_at

_WORKING = frozenset({"accepted", "in-progress", "on-hold"})


def due_from_fhir(
    task: Resource, versions: Sequence[TaskChange], *, policy: DisclosurePolicy
) -> str | None:
    """Respond-by while requested, close-by once accepted; None when closed or unknown."""
    status = task.get("status")
    if status in TERMINAL_STATUSES or status == "draft":
        return None
    deadline = text(obj(obj(task.get("restriction")).get("period")).get("end"))
    if deadline:
        return deadline
    if status == "requested" and policy.respond_within_hours is not None:
        return _after(created_at(task, versions), timedelta(hours=policy.respond_within_hours))
    if status in _WORKING and policy.close_within_days is not None:
        return _after(accepted_at(versions), timedelta(days=policy.close_within_days))
    return None


def _after(start: str | None, delay: timedelta) -> str | None:
    moment = parse_datetime(start)
    return (moment + delay).isoformat() if moment else None
