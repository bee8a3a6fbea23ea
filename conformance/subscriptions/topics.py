"""The two Gravity subscription topics Loopgate serves (reference/gravity.md §6.1).

Each names the resource type it triggers on, the interactions that trigger it, the criteria a
version must meet to count ("current" query criteria), and the filters a subscriber may set
(``canFilterBy``). Canonicals: http://hl7.org/fhir/us/sdoh-clinicalcare/SubscriptionTopic/…
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

SDOHCC_TOPIC = "http://hl7.org/fhir/us/sdoh-clinicalcare/SubscriptionTopic/"


@dataclass(frozen=True)
class Topic:
    canonical: str
    resource_type: str
    methods: frozenset[str]
    """The interactions that trigger it: create, update, delete."""
    current: Callable[[dict[str, Any]], bool]
    """The topic's "current" query criteria: does this version count?"""
    filters: tuple[str, ...]
    """The search parameters a subscriber may filter on (``canFilterBy``)."""


def _task_is_current(task: dict[str, Any]) -> bool:
    """``status:not=draft&intent=order``."""
    return task.get("status") != "draft" and task.get("intent") == "order"


def _any(_: dict[str, Any]) -> bool:
    return True


TASK_TOPIC = Topic(
    canonical=f"{SDOHCC_TOPIC}Task",
    resource_type="Task",
    methods=frozenset({"create", "update", "delete"}),
    current=_task_is_current,
    filters=("_lastUpdated", "code", "owner", "requester", "status"),
)
SERVICE_REQUEST_TOPIC = Topic(
    canonical=f"{SDOHCC_TOPIC}Servicerequest",
    resource_type="ServiceRequest",
    methods=frozenset({"update", "delete"}),
    current=_any,
    filters=("_id",),
)

TOPICS: dict[str, Topic] = {topic.canonical: topic for topic in (TASK_TOPIC, SERVICE_REQUEST_TOPIC)}
TOPIC_TYPES = frozenset(topic.resource_type for topic in TOPICS.values())
"""The resource types whose writes may raise subscription events."""
