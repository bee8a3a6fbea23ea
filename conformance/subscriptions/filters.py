"""Does a stored version raise an event for a subscription? The topic's own criteria, then the
subscriber's filters, evaluated in memory exactly as a search would (``conformance.matching``).
"""

from collections.abc import Sequence
from typing import Any

from conformance.matching import matches_all
from conformance.search_request import Criterion, parse_search
from conformance.subscriptions.topics import Topic


def filter_criteria(
    topic: Topic, filters: Sequence[tuple[str, str]], *, local_base: str
) -> tuple[Criterion, ...]:
    """A valid subscription's filter pairs as search criteria (absolute local URLs resolved)."""
    if not filters:
        return ()
    request = parse_search(topic.resource_type, filters, local_base=local_base)
    return tuple(request.criteria)


def raises_event(
    topic: Topic,
    criteria: Sequence[Criterion],
    resource: dict[str, Any],
    *,
    method: str,
    local_base: str,
) -> bool:
    """``method`` (create | update | delete) of ``resource`` (for a delete: the version it
    removed) is an event of ``topic`` that passes every filter."""
    return (
        method in topic.methods
        and resource.get("resourceType") == topic.resource_type
        and topic.current(resource)
        and matches_all(resource, criteria, local_base=local_base)
    )
