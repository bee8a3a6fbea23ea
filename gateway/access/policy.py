"""Apply an ``AccessContext`` to FHIR interactions: 403 for a missing scope, filters for reads.

SMART scopes say which interactions a token allows on which types (no grant: 403);
``patient/`` grants confine it to the context patient's compartment, v2 ``?param=value``
constraints to matching resources, and the organization to what it may see
(``gateway.access.visibility``). Reads outside all that answer 404, searches leave it out.
http://hl7.org/fhir/smart-app-launch/scopes-and-launch-context.html
"""

from dataclasses import dataclass
from typing import Any

from conformance.access import AccessContext, Grant, Letter
from conformance.compartment import PATIENT_COMPARTMENT, SHARED_TYPES
from conformance.errors import Forbidden, GatewayError
from conformance.matching import matches_all
from conformance.search_parameters import parameters_for
from conformance.search_request import Criterion, ReferenceQuery, parse_search

_VERBS = {"c": "create", "r": "read", "u": "update", "d": "delete", "s": "search"}


@dataclass(frozen=True)
class AccessFilter:
    """What a caller may see of one resource type, for the store to turn into SQL.

    ``groups`` is None when no grant constrains the type; otherwise a resource must match all
    criteria of at least one group. ``organization`` limits to what that organization sees.
    """

    resource_type: str
    groups: tuple[tuple[Criterion, ...], ...] | None
    organization: str | None

    @property
    def unrestricted(self) -> bool:
        return self.groups is None and self.organization is None

    def admits(self, resource: dict[str, Any], *, local_base: str) -> bool:
        """The grant part, in memory (visibility needs the database)."""
        if self.groups is None:
            return True
        return any(matches_all(resource, group, local_base=local_base) for group in self.groups)


def require(actor: AccessContext, resource_type: str, letter: Letter) -> tuple[Grant, ...]:
    """The grants allowing ``letter`` on ``resource_type``, or 403."""
    grants = actor.grants_for(resource_type, letter)
    if not grants:
        raise Forbidden(
            f"The access token does not allow {_VERBS[letter]} on {resource_type}; ask for a "
            f"scope such as system/{resource_type}.{letter} or user/{resource_type}.{letter}"
        )
    return grants


def access_filter(
    actor: AccessContext, resource_type: str, letter: Letter, *, local_base: str
) -> AccessFilter:
    """403 unless some grant allows ``letter``; else the filter those grants imply."""
    grants = require(actor, resource_type, letter)
    groups: list[tuple[Criterion, ...]] | None = []
    for grant in grants:
        group = _grant_criteria(actor, grant, resource_type, local_base)
        if group is None:
            continue  # this grant cannot reach this type (a patient scope, no compartment)
        if not group:
            groups = None  # one unconstrained grant: nothing to filter on
            break
        assert groups is not None
        groups.append(group)
    if groups is not None and not groups:
        groups = [(_NOTHING,)]
    organization = None if actor.is_admin else actor.organization
    return AccessFilter(resource_type, tuple(groups) if groups is not None else None, organization)


def _grant_criteria(
    actor: AccessContext, grant: Grant, resource_type: str, local_base: str
) -> tuple[Criterion, ...] | None:
    criteria: list[Criterion] = []
    if grant.constraints:
        try:
            request = parse_search(resource_type, grant.constraints, local_base=local_base)
        except GatewayError:
            return None  # a constraint this type cannot evaluate grants nothing here
        criteria.extend(request.criteria)
    if grant.level == "patient":
        compartment = _compartment(actor, resource_type)
        if compartment is None:
            return None
        criteria.extend(compartment)
    return tuple(criteria)


def _compartment(actor: AccessContext, resource_type: str) -> list[Criterion] | None:
    patient_id = (actor.patient or "").removeprefix("Patient/")
    if resource_type in SHARED_TYPES:
        return []
    params = parameters_for(resource_type)
    if resource_type == "Patient":
        return [Criterion(params["_id"], None, (patient_id,))]
    code = PATIENT_COMPARTMENT.get(resource_type)
    if code is None:
        return None
    return [Criterion(params[code], None, (ReferenceQuery("Patient", patient_id, ""),))]


_NOTHING = Criterion(parameters_for("Patient")["_id"], None, ())
"""A criterion no resource matches, for grants that reach nothing of a type."""
