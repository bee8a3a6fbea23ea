"""A Task search by owner organization, narrowed to one range of ``task_party``'s inbox index.

``task_party`` holds each Task's resolved owner organization, status and lastUpdated under
``(owner_org, status, last_updated)``. When a search names a local ``Organization`` owner,
those columns give a superset of the matches (an owner reference to ``Organization/x`` always
resolves to ``Organization/x``), so the search starts from that range and checks the exact
criteria only on what it holds: a CBO's inbox poll no longer meets every requested Task.
"""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import ColumnElement, or_, select

from conformance.search_request import Criterion, DateQuery, ReferenceQuery, TokenQuery
from gateway.access.visibility import task_party_visible
from gateway.store.date_match import date_match
from gateway.store.tables import task_party_table

TP = task_party_table.c


def inbox_candidates(
    resource_type: str,
    criteria: Sequence[Criterion],
    resource_id: Any,
    *,
    visible_to: str | None = None,
) -> ColumnElement[bool] | None:
    """``resource_id IN (the task_party range)`` when the criteria allow it, else None.

    With ``visible_to``, the range keeps only the Tasks that organization sees: checked on
    the rows the range reads anyway, where a probe of its own let PostgreSQL turn it into a
    scan of every Task the organization sees.
    """
    if resource_type != "Task":
        return None
    owners = next(filter(None, (_owner_organizations(c) for c in criteria)), None)
    if owners is None:
        return None
    narrowed = [TP.owner_org.in_(owners)]
    if visible_to is not None:
        narrowed.append(task_party_visible(visible_to))
    for criterion in criteria:
        statuses = _statuses(criterion)
        if statuses is not None:
            narrowed.append(TP.status.in_(statuses))
        if criterion.parameter.type == "last-updated" and criterion.modifier is None:
            narrowed.append(
                or_(
                    *(
                        date_match(TP.last_updated, TP.last_updated, value)
                        for value in criterion.values
                        if isinstance(value, DateQuery)
                    )
                )
            )
    return resource_id.in_(select(TP.task_id).where(*narrowed))  # type: ignore[no-any-return]


def _owner_organizations(criterion: Criterion) -> list[str] | None:
    """``Organization/id`` for each value of a plain ``owner`` criterion naming only local
    Organizations; None for any other criterion."""
    if criterion.parameter.code != "owner" or criterion.modifier is not None:
        return None
    owners = []
    for value in criterion.values:
        if not isinstance(value, ReferenceQuery):
            return None
        if value.target_type != "Organization" or value.target_base != "":
            return None
        owners.append(f"Organization/{value.target_id}")
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
