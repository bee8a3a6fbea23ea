"""Which stored resources an organization may see, as SQL over the store (issue 3 decisions).

- A Task: to its requester and owner organizations, and unowned ``requested`` Tasks to every
  organization (Gravity's open-task pattern).
- A referral's other resources (its ServiceRequest, Patient, Consent, reasons, outputs): to
  those who see one of its Tasks, reached through the Task's references and, one step further,
  its ServiceRequest's.
- Anything an organization created; Provenance of a Task it sees; directory records and
  terminology (CodeSystem, ValueSet, …) to all.
"""

from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, or_, select, true

from conformance.compartment import SHARED_TYPES
from conformance.task_rules import TaskParties
from gateway.store.tables import reference_table, resource_table, task_party_table

R, TP, REF = resource_table.c, task_party_table.c, reference_table.c

Organization = str | ColumnElement[str]
"""An organization reference, or a bound parameter standing for one in a prebuilt query."""


def task_party_visible(organization: Organization) -> ColumnElement[bool]:
    """A condition on a ``task_party`` row: its Task is seen by ``organization``."""
    return or_(
        TP.requester_org == organization,
        TP.owner_org == organization,
        and_(TP.has_owner.is_(False), TP.status == "requested"),
    )


def task_parties_visible(parties: TaskParties, status: str, organization: str) -> bool:
    """``task_party_visible`` for a Task in hand, its parties as the write resolved them."""
    return organization in (parties.requester, parties.owner) or (
        not parties.has_owner and status == "requested"
    )


def task_visible(task_id: Any, organization: Organization) -> ColumnElement[bool]:
    """The Task whose id is ``task_id`` is seen by ``organization`` (one primary-key probe)."""
    return exists(select(1).where(TP.task_id == task_id, task_party_visible(organization)))


def _reached_from(source_type: str, target_type: str, target_id: Any, source_visible: Any) -> Any:
    """Some ``source_type`` resource passing ``source_visible(its id)`` references the
    ``target_type`` resource ``target_id`` (any element: a resource's reference rows,
    ``ANY_REFERENCE`` included, name every local resource it points at)."""
    ref = reference_table.alias()
    return exists(
        select(1).where(
            ref.c.target_type == target_type,
            ref.c.target_id == target_id,
            ref.c.target_base == "",
            ref.c.resource_type == source_type,
            source_visible(ref.c.resource_id),
        )
    )


def visibility_condition(resource_type: str, organization: Organization) -> ColumnElement[bool]:
    """A condition on the ``resource`` table row: visible to ``organization``.

    Every part is a correlated probe of the row at hand, so a search driven by a selective
    index (``_lastUpdated``, ``_id``) checks only its candidates.
    """
    if resource_type in SHARED_TYPES:
        return true()
    if resource_type == "Task":
        return task_visible(R.id, organization)
    if resource_type == "AuditEvent":
        return false()

    def visible_task(task_id: Any) -> ColumnElement[bool]:
        return task_visible(task_id, organization)

    if resource_type == "Provenance":
        ref = reference_table.alias()
        return exists(
            select(1).where(
                ref.c.resource_type == "Provenance",
                ref.c.resource_id == R.id,
                ref.c.target_type == "Task",
                ref.c.target_base == "",
                visible_task(ref.c.target_id),
            )
        )

    def visible_request(request_id: Any) -> Any:
        return _reached_from("Task", "ServiceRequest", request_id, visible_task)

    return or_(
        R.created_by == organization,
        _reached_from("Task", resource_type, R.id, visible_task),
        _reached_from("ServiceRequest", resource_type, R.id, visible_request),
    )
