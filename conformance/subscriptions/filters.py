"""Does a stored version raise an event for a subscription? The topic's own criteria, then the
subscriber's filters, evaluated in memory as a search would (``conformance.matching``), except
that ``requester`` and ``owner`` naming an Organization also match a Task whose reference names
a PractitionerRole of that organization (the Gravity rule of ``conformance.task_rules``).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from conformance.matching import matches_criterion
from conformance.search_index import IndexEntries, extract_index
from conformance.search_request import Criterion, ReferenceQuery, TokenQuery, parse_search
from conformance.subscriptions.topics import Topic
from conformance.task_rules import TaskParties

_PARTY_FILTERS = ("requester", "owner")
_ORGANIZATION = "Organization/"

FilterKey = tuple[str, str]
"""(search parameter, reference target id or token code): a value a filter needs to see."""


@dataclass(frozen=True)
class EventFocus:
    """A stored version as every subscription's filters see it: its body, its index values
    (extracted once, however many subscriptions look) and, for a Task, the organizations
    behind its requester and owner."""

    resource: dict[str, Any]
    entries: IndexEntries
    parties: TaskParties | None = None


def event_focus(
    resource: dict[str, Any], *, local_base: str, parties: TaskParties | None = None
) -> EventFocus:
    return EventFocus(resource, extract_index(resource, local_base=local_base), parties)


def filter_criteria(
    topic: Topic, filters: Sequence[tuple[str, str]], *, local_base: str
) -> tuple[Criterion, ...]:
    """A valid subscription's filter pairs as search criteria (absolute local URLs resolved)."""
    if not filters:
        return ()
    request = parse_search(topic.resource_type, filters, local_base=local_base)
    return tuple(request.criteria)


def filter_keys(criteria: Sequence[Criterion]) -> frozenset[FilterKey] | None:
    """Keys of which a resource must show one to pass ``criteria``, or None when no single
    filter narrows it down that way. A plain reference filter (``owner=Organization/x``) needs
    a reference to id x under its parameter, or, by the PractitionerRole rule, the organization
    x behind it; a plain token filter (``status=requested``) needs that code. Of several, the
    one with fewest values is kept. ``event_keys`` gives a focus' keys, so a subscription whose
    keys share none with them cannot raise an event and need not be evaluated."""
    best: frozenset[FilterKey] | None = None
    for criterion in criteria:
        if criterion.modifier is not None:
            continue  # :not, :missing, :exact, a type or chain: no single value to look for
        kind, code = criterion.parameter.type, criterion.parameter.code
        keys: set[FilterKey] = set()
        for value in criterion.values:
            if kind == "reference" and isinstance(value, ReferenceQuery):
                keys.add((code, value.target_id))
            elif kind == "token" and isinstance(value, TokenQuery) and value.code is not None:
                keys.add((code, value.code))
            else:
                break
        else:
            if keys and (best is None or len(keys) < len(best)):
                best = frozenset(keys)
    return best


def event_keys(focus: EventFocus) -> frozenset[FilterKey]:
    """Every key (see ``filter_keys``) ``focus`` shows."""
    keys: set[FilterKey] = {(r.param, r.target_id) for r in focus.entries.references}
    keys.update((t.param, t.code) for t in focus.entries.tokens)
    parties = focus.parties
    if parties is not None:
        for code, organization in (("requester", parties.requester), ("owner", parties.owner)):
            if organization is not None and organization.startswith(_ORGANIZATION):
                keys.add((code, organization.removeprefix(_ORGANIZATION)))
    return frozenset(keys)


def raises_event(
    topic: Topic, criteria: Sequence[Criterion], focus: EventFocus, *, method: str
) -> bool:
    """``method`` (create | update | delete) of ``focus`` (for a delete: the version it
    removed) is an event of ``topic`` that passes every filter."""
    resource = focus.resource
    return (
        method in topic.methods
        and resource.get("resourceType") == topic.resource_type
        and topic.current(resource)
        and all(_passes(focus, criterion) for criterion in criteria)
    )


def _passes(focus: EventFocus, criterion: Criterion) -> bool:
    exact = matches_criterion(focus.resource, focus.entries, criterion)
    code = criterion.parameter.code
    if exact or focus.parties is None or code not in _PARTY_FILTERS:
        return exact
    return criterion.modifier in (None, "Organization") and _names_party(
        focus.parties, code, criterion
    )


def _names_party(parties: TaskParties, code: str, criterion: Criterion) -> bool:
    """``requester=Organization/x`` (or ``owner=``) also holds when the Task's requester
    (owner) is a PractitionerRole of organization x: subscribers think in organizations, as
    the workflow's edit rights do.
    http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition-SDOHCC-TaskForReferralManagement.html"""
    organization = parties.requester if code == "requester" else parties.owner
    return organization is not None and any(
        isinstance(value, ReferenceQuery)
        and value.target_type in (None, "Organization")
        and not value.target_base
        and f"Organization/{value.target_id}" == organization
        for value in criterion.values
    )
