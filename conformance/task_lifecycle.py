"""The referral Task state machine and who may set each status (pure).

Source: the SDOHCC TaskForReferralManagement state diagram and "set by" table
(http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition-SDOHCC-TaskForReferralManagement.html;
reference/gravity.md §3.2–3.3). ``received`` and ``ready`` are not referral statuses.
"""

from enum import StrEnum


class Role(StrEnum):
    REQUESTER = "requester"
    OWNER = "owner"


REFERRAL_TASK_STATUSES = frozenset(
    {
        "draft",
        "requested",
        "accepted",
        "rejected",
        "cancelled",
        "in-progress",
        "on-hold",
        "failed",
        "completed",
        "entered-in-error",
    }
)

INITIAL_STATUSES = frozenset({"draft", "requested"})
TERMINAL_STATUSES = frozenset({"rejected", "cancelled", "completed", "failed", "entered-in-error"})
REASON_REQUIRED_STATUSES = frozenset({"rejected", "cancelled", "on-hold", "failed"})

TRANSITIONS: dict[str, frozenset[str]] = {
    "draft": frozenset({"requested", "entered-in-error"}),
    "requested": frozenset({"accepted", "rejected", "cancelled", "entered-in-error"}),
    "accepted": frozenset(
        {"in-progress", "on-hold", "completed", "failed", "cancelled", "entered-in-error"}
    ),
    "in-progress": frozenset({"on-hold", "completed", "failed", "cancelled", "entered-in-error"}),
    "on-hold": frozenset({"in-progress", "completed", "failed", "cancelled", "entered-in-error"}),
    "rejected": frozenset({"entered-in-error"}),
    "cancelled": frozenset({"entered-in-error"}),
    "completed": frozenset({"entered-in-error"}),
    "failed": frozenset({"entered-in-error"}),
    "entered-in-error": frozenset(),
}
"""Allowed moves; any status may be marked entered-in-error, nothing leaves that."""

SET_BY: dict[str, frozenset[Role]] = {
    "draft": frozenset({Role.REQUESTER}),
    "requested": frozenset({Role.REQUESTER}),
    "accepted": frozenset({Role.OWNER}),
    "rejected": frozenset({Role.OWNER}),
    "in-progress": frozenset({Role.OWNER}),
    "on-hold": frozenset({Role.OWNER}),
    "completed": frozenset({Role.OWNER}),
    "failed": frozenset({Role.OWNER}),
    "cancelled": frozenset({Role.REQUESTER, Role.OWNER}),
    "entered-in-error": frozenset({Role.REQUESTER}),
}


def is_allowed_transition(current: str, target: str) -> bool:
    return target in TRANSITIONS.get(current, frozenset())


def may_set(roles: frozenset[Role], status: str) -> bool:
    return bool(roles & SET_BY.get(status, frozenset()))


def allowed_next_statuses(current: str, roles: frozenset[Role]) -> list[str]:
    """The moves ``roles`` can make from ``current``, sorted, for error messages and UIs."""
    return sorted(s for s in TRANSITIONS.get(current, frozenset()) if may_set(roles, s))
