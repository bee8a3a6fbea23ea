"""A Task search by owner, answered from one range of ``task_party``'s inbox index.

``task_party`` holds each current Task's owner reference as written, status and lastUpdated
under ``(owner_ref, status, last_updated)``. A plain ``owner`` criterion naming local
resources, plain ``status`` codes and ``_lastUpdated`` are exactly conditions on those
columns, so a CBO's inbox poll is one index range joined to its Tasks: no owner or status
index rows are read.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, or_

from conformance.search_request import Criterion, DateQuery, ReferenceQuery, TokenQuery
from gateway.access.visibility import task_party_visible
from gateway.store.date_match import date_match
from gateway.store.tables import task_party_table

TP = task_party_table.c


@dataclass(frozen=True)
class InboxRange:
    """A Task search's range of the inbox index, and the criteria the range leaves open."""

    conditions: list[ColumnElement[bool]]
    """On the Task's ``task_party`` row: met by exactly the Tasks the decided criteria match."""
    remaining: list[Criterion]


def inbox_range(
    resource_type: str, criteria: Sequence[Criterion], *, visible_to: str | None = None
) -> InboxRange | None:
    """The range for a Task search with a plain local ``owner`` criterion, else None.

    With ``visible_to``, the range keeps only the Tasks that organization sees: checked on
    the rows the range reads anyway, where a probe of its own let PostgreSQL turn it into a
    scan of every Task the organization sees.
    """
    if resource_type != "Task" or not any(_owners(c) is not None for c in criteria):
        return None
    conditions: list[ColumnElement[bool]] = []
    remaining = []
    for criterion in criteria:
        condition = _decided(criterion)
        if condition is None:
            remaining.append(criterion)
        else:
            conditions.append(condition)
    if visible_to is not None:
        conditions.append(task_party_visible(visible_to))
    return InboxRange(conditions, remaining)


def _decided(criterion: Criterion) -> ColumnElement[bool] | None:
    """``criterion`` as a condition on task_party's row, when its columns decide it exactly."""
    owners = _owners(criterion)
    if owners is not None:
        return TP.owner_ref.in_(owners)  # type: ignore[no-any-return]
    statuses = _statuses(criterion)
    if statuses is not None:
        return TP.status.in_(statuses)  # type: ignore[no-any-return]
    if criterion.parameter.type == "last-updated" and criterion.modifier is None:
        instants = [value for value in criterion.values if isinstance(value, DateQuery)]
        if len(instants) == len(criterion.values):
            # the same test as on resource.last_updated, which task_party's column copies
            return or_(*(date_match(TP.last_updated, TP.last_updated, v) for v in instants))
    return None


def _owners(criterion: Criterion) -> list[str] | None:
    """``Type/id`` for each value of a plain ``owner`` criterion naming only local resources
    by type and id (what task_party.owner_ref holds); None for any other criterion."""
    if criterion.parameter.code != "owner" or criterion.modifier is not None:
        return None
    owners = []
    for value in criterion.values:
        if not isinstance(value, ReferenceQuery):
            return None
        if not value.target_type or value.target_base != "":
            return None
        owners.append(f"{value.target_type}/{value.target_id}")
    return owners


def _statuses(criterion: Criterion) -> list[str] | None:
    """The codes of a plain ``status`` criterion (Task.status is indexed without a system)."""
    if criterion.parameter.code != "status" or criterion.modifier is not None:
        return None
    codes = []
    for value in criterion.values:
        if not isinstance(value, TokenQuery) or value.code is None:
            return None
        if value.system not in (None, ""):
            return None
        codes.append(value.code)
    return codes
