"""The pure side of Subscriptions: reading a backport Subscription, matching writes against a
topic and its filters, and the shape of notification Bundles."""

from typing import Any

import pytest

from conformance.errors import ProfileViolation
from conformance.subscriptions import (
    TOPICS,
    NotificationEvent,
    SubscriptionState,
    event_focus,
    event_keys,
    filter_criteria,
    filter_keys,
    notification_bundle,
    raises_event,
    read_subscription,
    status_parameters,
)
from conformance.task_rules import TaskParties

BASE = "https://loopgate.example.org/fhir"
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
TASK_TOPIC = TOPICS["http://hl7.org/fhir/us/sdoh-clinicalcare/SubscriptionTopic/Task"]
SR_TOPIC = TOPICS["http://hl7.org/fhir/us/sdoh-clinicalcare/SubscriptionTopic/Servicerequest"]


def backport(*filters: str, **channel: Any) -> dict[str, Any]:
    return {
        "resourceType": "Subscription",
        "status": "requested",
        "criteria": TASK_TOPIC.canonical,
        "_criteria": {
            "extension": [
                {"url": f"{BACKPORT}backport-filter-criteria", "valueString": f} for f in filters
            ]
        },
        "channel": {"type": "rest-hook", "endpoint": "https://ehr.example.org/hook", **channel},
    }


def task(**changes: Any) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "id": "t1",
        "status": "accepted",
        "intent": "order",
        "requester": {"reference": "Organization/mercy"},
        "owner": {"reference": "Organization/food-bank"},
        **changes,
    }


def test_defaults__id_only_no_heartbeat_and_every_filter_kept() -> None:
    spec = read_subscription(backport("Task?requester=Organization/mercy", "status=accepted"))
    assert spec.content == "id-only"
    assert spec.heartbeat_s == 0
    assert spec.filters == (("requester", "Organization/mercy"), ("status", "accepted"))


def test_every_problem_is_reported_with_its_path() -> None:
    resource = backport("Task?patient=Patient/1", endpoint="http://ehr.example.org/hook")
    resource["channel"]["type"] = "sms"
    with pytest.raises(ProfileViolation) as caught:
        read_subscription(resource)
    paths = {e for issue in caught.value.issues for e in issue.expression}
    assert "Subscription.channel.type" in paths
    assert any(p.startswith("Subscription.criteria.extension") for p in paths)


@pytest.mark.parametrize(
    ("filters", "resource", "expected"),
    [
        (("requester=Organization/mercy",), task(), True),
        ((f"requester={BASE}/Organization/mercy",), task(), True),  # absolute local URL
        (("requester=Organization/other",), task(), False),
        (("status=accepted,in-progress", "owner=Organization/food-bank"), task(), True),
        (("status:not=accepted",), task(), False),
        ((), task(status="draft"), False),  # the topic's own criteria: not a draft
        ((), task(intent="plan"), False),
    ],
)
def test_task_topic_matches_like_a_search(
    filters: tuple[str, ...], resource: dict[str, Any], expected: bool
) -> None:
    pairs = [tuple(f.split("=", 1)) for f in filters]
    criteria = filter_criteria(TASK_TOPIC, pairs, local_base=BASE)  # type: ignore[arg-type]
    focus = event_focus(resource, local_base=BASE)
    assert raises_event(TASK_TOPIC, criteria, focus, method="update") is expected
    assert_keys_never_rule_out_a_match(criteria, focus, expected=expected)


def assert_keys_never_rule_out_a_match(criteria: Any, focus: Any, *, expected: bool) -> None:
    """A subscription is skipped when its filter keys share none with the write's; that
    must never skip one that raises an event."""
    keys = filter_keys(criteria)
    if expected:
        assert keys is None or keys & event_keys(focus)


@pytest.mark.parametrize(
    ("filters", "keys"),
    [
        (("requester=Organization/mercy",), {("requester", "mercy")}),
        ((f"requester={BASE}/Organization/mercy",), {("requester", "mercy")}),
        (
            ("status=accepted,in-progress", "owner=Organization/food-bank"),
            {("owner", "food-bank")},  # the filter with fewest values
        ),
        (("status:not=accepted",), None),  # a modifier: nothing a match must show
        (("requester:missing=true",), None),
        (("_lastUpdated=gt2026-01-01",), None),
        ((), None),
    ],
)
def test_filter_keys_name_what_a_write_must_show_to_match(
    filters: tuple[str, ...], keys: set[tuple[str, str]] | None
) -> None:
    pairs = [tuple(f.split("=", 1)) for f in filters]
    criteria = filter_criteria(TASK_TOPIC, pairs, local_base=BASE)  # type: ignore[arg-type]
    assert filter_keys(criteria) == (None if keys is None else frozenset(keys))


def test_event_keys_include_the_organizations_behind_practitioner_roles() -> None:
    resource = task(requester={"reference": "PractitionerRole/mercy-nurse"})
    parties = TaskParties(requester="Organization/mercy", owner=None)
    keys = event_keys(event_focus(resource, local_base=BASE, parties=parties))
    assert {("requester", "mercy-nurse"), ("requester", "mercy")} <= keys
    assert ("owner", "food-bank") in keys
    assert ("status", "accepted") in keys
    assert ("requester", "mercy") not in event_keys(event_focus(resource, local_base=BASE))


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        (("requester=Organization/mercy",), True),
        (("requester=mercy",), True),
        (("requester:Organization=mercy",), True),
        (("requester=Organization/other",), False),
        (("owner=Organization/food-bank",), True),
        (("requester:missing=true",), False),
    ],
)
def test_requester_and_owner_filters_name_organizations_behind_practitioner_roles(
    filters: tuple[str, ...], expected: bool
) -> None:
    """Gravity's requester is usually a PractitionerRole; a subscriber filters on its
    organization, as the workflow rules decide who the requester is."""
    resource = task(requester={"reference": "PractitionerRole/mercy-nurse"})
    pairs = [tuple(f.split("=", 1)) for f in filters]
    criteria = filter_criteria(TASK_TOPIC, pairs, local_base=BASE)  # type: ignore[arg-type]
    parties = TaskParties(
        requester="Organization/mercy", owner="Organization/food-bank", has_owner=True
    )
    focus = event_focus(resource, local_base=BASE, parties=parties)
    assert raises_event(TASK_TOPIC, criteria, focus, method="update") is expected
    assert_keys_never_rule_out_a_match(criteria, focus, expected=expected)
    assert not raises_event(
        TASK_TOPIC,
        filter_criteria(TASK_TOPIC, [("requester", "Organization/mercy")], local_base=BASE),
        event_focus(resource, local_base=BASE),  # without the resolved parties: exact only
        method="update",
    )


def test_service_request_topic_ignores_creates() -> None:
    request = {"resourceType": "ServiceRequest", "id": "sr1", "status": "active"}
    criteria = filter_criteria(SR_TOPIC, [("_id", "sr1")], local_base=BASE)
    focus = event_focus(request, local_base=BASE)
    assert not raises_event(SR_TOPIC, criteria, focus, method="create")
    assert raises_event(SR_TOPIC, criteria, focus, method="update")


def test_empty_content_carries_the_status_alone() -> None:
    state = SubscriptionState("s1", TASK_TOPIC.canonical, "active", 7)
    events = [NotificationEvent(7, "2026-01-01T00:00:00.000000Z", "Task/t1", "PUT")]
    status = status_parameters(
        state, kind="event-notification", events=events, content="empty", fhir_base=BASE
    )
    bundle = notification_bundle(
        status,
        bundle_id="b1",
        timestamp="2026-01-01T00:00:00Z",
        subscription_id="s1",
        events=events,
        content="empty",
        fhir_base=BASE,
    )
    assert bundle["type"] == "history"
    assert len(bundle["entry"]) == 1
    names = [p["name"] for p in bundle["entry"][0]["resource"]["parameter"]]
    assert "topic" not in names
    [event] = [
        p for p in bundle["entry"][0]["resource"]["parameter"] if p["name"] == "notification-event"
    ]
    assert [p["name"] for p in event["part"]] == ["event-number", "timestamp"]
