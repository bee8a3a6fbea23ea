"""Who may create, change and delete a referral Task, and what each party may change (pure).

Gravity: "only authors of a Task have authority to update all aspects of the Task ... Assigned
task owners may change the status, statusReason and outputs. Users who are neither the author
or owner of a Task cannot make changes to it." (reference/gravity.md §1.3, §3.3, P-13.)
Our reading, which every door (FHIR, JSON API, e-mail links) goes through:

- the requester organization (``Task.requester``, or the organization of the PractitionerRole it
  names) may change everything except set the owner's statuses;
- the owner organization may change ``status``, ``statusReason``, ``businessStatus``, ``output``,
  ``executionPeriod``, ``lastModified`` and append to ``note``; an unowned ``requested`` Task
  may be claimed by setting ``owner`` to one's own organization;
- nobody else may change anything (403); terminal Tasks only move to entered-in-error.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from conformance.access import AccessContext
from conformance.errors import (
    BusinessRuleViolation,
    Forbidden,
    Issue,
    TransitionNotAllowed,
    raise_if_issues,
)
from conformance.task_lifecycle import (
    INITIAL_STATUSES,
    SET_BY,
    TERMINAL_STATUSES,
    Role,
    allowed_next_statuses,
    is_allowed_transition,
    may_set,
)
from conformance.terminology import RESULTING_ACTIVITY, SDOHCC_TEMPORARY_CODES

OWNER_EDITABLE = frozenset(
    {
        "status",
        "statusReason",
        "businessStatus",
        "output",
        "note",
        "executionPeriod",
        "lastModified",
    }
)
SERVER_MANAGED = frozenset({"id", "meta"})


@dataclass(frozen=True)
class TaskParties:
    """The organizations behind a Task's requester and owner, resolved by the caller."""

    requester: str | None
    owner: str | None
    has_owner: bool = False
    """True when ``Task.owner`` is set, even if it does not resolve to an organization."""

    def row(self, status: str) -> dict[str, object]:
        """As stored for visibility queries, with the Task's current status."""
        return {
            "requester_org": self.requester,
            "owner_org": self.owner,
            "has_owner": self.has_owner,
            "status": status,
        }


@dataclass(frozen=True)
class ProcedureFacts:
    """What the completion rule needs to know about a Procedure a Task output names."""

    exists: bool
    based_on: frozenset[str] = frozenset()


def organization_of(resource: Mapping[str, Any]) -> str | None:
    """The organization reference a requester/owner resource stands for.

    An Organization is itself; a PractitionerRole acts for its ``organization``; a
    HealthcareService for its ``providedBy``; a Location for its ``managingOrganization``.
    """
    resource_type = resource.get("resourceType")
    if resource_type == "Organization":
        return f"Organization/{resource.get('id')}"
    field = {
        "PractitionerRole": "organization",
        "HealthcareService": "providedBy",
        "Location": "managingOrganization",
    }.get(str(resource_type))
    reference = resource.get(field) if field else None
    if isinstance(reference, dict) and isinstance(reference.get("reference"), str):
        return str(reference["reference"])
    return None


def roles_of(actor: AccessContext, parties: TaskParties) -> frozenset[Role]:
    roles = set()
    if actor.organization and actor.organization == parties.requester:
        roles.add(Role.REQUESTER)
    if actor.organization and actor.organization == parties.owner:
        roles.add(Role.OWNER)
    return frozenset(roles)


def check_task_create(
    task: Mapping[str, Any],
    *,
    actor: AccessContext,
    parties: TaskParties,
    procedures: Mapping[str, ProcedureFacts],
    focus_key: str | None,
) -> None:
    _check_parties_resolve(parties)
    if Role.REQUESTER not in roles_of(actor, parties):
        raise Forbidden(
            "Only the requester organization may create a referral Task: Task.requester must "
            "be your organization or one of its PractitionerRoles",
            expression=("Task.requester",),
        )
    status = task.get("status")
    if status not in INITIAL_STATUSES:
        raise TransitionNotAllowed(
            "A referral Task is created as draft or requested", expression=("Task.status",)
        )
    _check_outputs(task, procedures, focus_key)


def check_task_update(
    old: Mapping[str, Any],
    new: Mapping[str, Any],
    *,
    actor: AccessContext,
    old_parties: TaskParties,
    new_parties: TaskParties,
    procedures: Mapping[str, ProcedureFacts],
    focus_key: str | None,
) -> None:
    roles = roles_of(actor, old_parties)
    claiming = _is_claim(old, actor, old_parties, new_parties, roles)
    if claiming:
        roles = frozenset({Role.OWNER})
    if not roles:
        raise Forbidden(
            "Only the Task's requester or owner organization may change it",
            expression=("Task",),
        )
    _check_parties_resolve(new_parties)
    old_status, new_status = str(old.get("status")), str(new.get("status"))
    changed = changed_elements(old, new)
    marking_error = new_status == "entered-in-error" != old_status
    if old_status in TERMINAL_STATUSES and changed and not marking_error:
        raise TransitionNotAllowed(
            f"The Task is {old_status} and can no longer change; refer again with a new "
            "Task (only the requester may still mark it entered-in-error)",
            expression=("Task.status",),
        )
    if new_status != old_status:
        _check_transition(old_status, new_status, roles)
    if Role.REQUESTER not in roles:
        _check_owner_edits(old, new, changed, claiming)
    _check_outputs(new, procedures, focus_key)


def check_task_delete(
    task: Mapping[str, Any], *, actor: AccessContext, parties: TaskParties
) -> None:
    if Role.REQUESTER not in roles_of(actor, parties):
        raise Forbidden(
            "Only the requester organization may delete a referral Task", expression=("Task",)
        )
    if task.get("status") not in ("draft", "entered-in-error"):
        raise BusinessRuleViolation(
            "Only draft or entered-in-error Tasks can be deleted; cancel the referral instead",
            expression=("Task.status",),
        )


def changed_elements(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """Top-level elements whose value differs, server-managed ones aside."""
    keys = (set(old) | set(new)) - SERVER_MANAGED
    return sorted(k for k in keys if old.get(k) != new.get(k))


def _is_claim(
    old: Mapping[str, Any],
    actor: AccessContext,
    old_parties: TaskParties,
    new_parties: TaskParties,
    roles: frozenset[Role],
) -> bool:
    """An organization taking an unowned ``requested`` Task (Gravity's open-task pattern)."""
    return (
        not roles
        and not old_parties.has_owner
        and old.get("status") == "requested"
        and actor.organization is not None
        and new_parties.owner == actor.organization
    )


def _check_parties_resolve(parties: TaskParties) -> None:
    issues = []
    if parties.requester is None:
        issues.append(
            Issue(
                "Task.requester must be an Organization, or a PractitionerRole with an "
                "organization, known to Loopgate",
                ("Task.requester",),
                "business-rule",
            )
        )
    if parties.has_owner and parties.owner is None:
        issues.append(
            Issue(
                "Task.owner must be an Organization, or a PractitionerRole or HealthcareService "
                "of one, known to Loopgate",
                ("Task.owner",),
                "business-rule",
            )
        )
    raise_if_issues(issues, BusinessRuleViolation)


def _check_transition(old_status: str, new_status: str, roles: frozenset[Role]) -> None:
    if not is_allowed_transition(old_status, new_status):
        allowed = allowed_next_statuses(old_status, roles)
        hint = f"; allowed next: {', '.join(allowed)}" if allowed else ""
        raise TransitionNotAllowed(
            f"A referral Task cannot move from {old_status} to {new_status}{hint}",
            expression=("Task.status",),
        )
    if not may_set(roles, new_status):
        setters = " or ".join(sorted(role.value for role in SET_BY[new_status]))
        raise Forbidden(
            f"Only the {setters} organization may set a Task to {new_status}",
            expression=("Task.status",),
        )


def _check_owner_edits(
    old: Mapping[str, Any], new: Mapping[str, Any], changed: Sequence[str], claiming: bool
) -> None:
    allowed = OWNER_EDITABLE | ({"owner"} if claiming else frozenset())
    forbidden = [key for key in changed if key not in allowed]
    if forbidden:
        raise Forbidden(
            "The owner organization may change only status, statusReason, businessStatus, "
            "output, executionPeriod and lastModified, and add notes",
            expression=tuple(f"Task.{key}" for key in forbidden),
        )
    old_notes, new_notes = old.get("note") or [], new.get("note") or []
    if new_notes[: len(old_notes)] != old_notes:
        raise Forbidden(
            "Notes can be added to a Task but not changed or removed", expression=("Task.note",)
        )


def _check_outputs(
    task: Mapping[str, Any], procedures: Mapping[str, ProcedureFacts], focus_key: str | None
) -> None:
    issues: list[Issue] = []
    resulting = 0
    for index, item in enumerate(task.get("output") or []):
        if not _is_resulting_activity(item):
            continue
        resulting += 1
        reference = (item.get("valueReference") or {}).get("reference")
        if not isinstance(reference, str):
            continue
        facts = procedures.get(reference)
        path = f"Task.output[{index}].valueReference"
        if facts is None or not facts.exists:
            issues.append(
                Issue(
                    "The Procedure this output names is not stored on Loopgate",
                    (path,),
                    "business-rule",
                )
            )
        elif focus_key is None or focus_key not in facts.based_on:
            issues.append(
                Issue(
                    "The Procedure this output names must be basedOn the Task's focus",
                    (path,),
                    "business-rule",
                )
            )
    if task.get("status") == "completed" and resulting == 0:
        issues.append(
            Issue(
                "A completed referral Task must carry at least one output of type "
                "resulting-activity: a Procedure based on the referral, or a procedure code",
                ("Task.output",),
                "business-rule",
            )
        )
    raise_if_issues(issues, BusinessRuleViolation)


def _is_resulting_activity(item: Mapping[str, Any]) -> bool:
    concept = item.get("type") or {}
    return any(
        coding.get("system") == SDOHCC_TEMPORARY_CODES and coding.get("code") == RESULTING_ACTIVITY
        for coding in concept.get("coding") or []
    )
