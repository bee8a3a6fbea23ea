"""Topic-based Subscriptions (R4 Backport IG 1.1), end to end: an EHR subscribes to the Gravity
Task topic, a real receiver on a loopback port gets the handshake, heartbeats and one
notification per CBO action, misses nothing while it is down, and can replay with $events."""

import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text

from conformance.access import AccessContext
from gateway.app import create_app
from gateway.fhir.write_context import now_us
from gateway.outbox import enqueue
from gateway.settings import Settings
from gateway.store.engine import make_engine, write_transaction
from gateway.store.tables import outbox_table
from gateway.subscriptions import StatusMoves, records
from gateway.subscriptions.tables import subscription_event_table
from tests import builders
from tests.adapters.smtp_server import running_mail_server
from tests.adapters.webhook_receiver import WebhookReceiver, free_port, running_receiver
from tests.builders import CBO, HOSPITAL, OTHER_CBO, as_org, service_request, task
from tests.conftest import BASE_URL, FHIR_BASE, store_signing_key
from tests.partners import API, key_headers, provision_partners
from tests.tokens import mint

TASK_TOPIC = "http://hl7.org/fhir/us/sdoh-clinicalcare/SubscriptionTopic/Task"
SR_TOPIC = "http://hl7.org/fhir/us/sdoh-clinicalcare/SubscriptionTopic/Servicerequest"
BACKPORT = "http://hl7.org/fhir/uv/subscriptions-backport/StructureDefinition/"
UNSIGNED = "unused"  # the receiver checks webhook signatures; notifications carry none


@pytest.fixture
def client(settings: Settings, engine: Engine, signing_key: dict[str, Any]) -> Iterator[TestClient]:
    """The app with an outbox that retries within a fraction of a second; heartbeats are
    scanned by the tests themselves (``app.state.heartbeats.scan``)."""
    fast = settings.model_copy(
        update={
            "outbox_poll_interval_s": 0.05,
            "outbox_retry_base_s": 0.05,
            "outbox_retry_cap_s": 0.3,
            "subscription_heartbeat_scan_s": 0,
        }
    )
    store_signing_key(engine, signing_key)
    with TestClient(create_app(fast, engine=engine), base_url=BASE_URL) as test_client:
        for organization in (HOSPITAL, CBO, OTHER_CBO):
            builders.TOKENS[organization] = mint(engine, organization=organization)
        provision_partners(test_client)
        yield test_client
    builders.TOKENS.clear()


def subscription(
    endpoint: str,
    *,
    topic: str = TASK_TOPIC,
    filters: tuple[str, ...] = (f"Task?requester={HOSPITAL}",),
    content: str = "id-only",
    channel: str = "rest-hook",
    heartbeat_s: int | None = None,
    headers: tuple[str, ...] = (),
    status: str = "requested",
) -> dict[str, Any]:
    channel_element: dict[str, Any] = {
        "type": channel,
        "endpoint": endpoint,
        "payload": "application/fhir+json",
        "_payload": {
            "extension": [{"url": f"{BACKPORT}backport-payload-content", "valueCode": content}]
        },
    }
    if heartbeat_s is not None:
        channel_element["extension"] = [
            {"url": f"{BACKPORT}backport-heartbeat-period", "valueUnsignedInt": heartbeat_s}
        ]
    if headers:
        channel_element["header"] = list(headers)
    resource: dict[str, Any] = {
        "resourceType": "Subscription",
        "meta": {"profile": [f"{BACKPORT}backport-subscription"]},
        "status": status,
        "reason": "Referral status changes for Mercy Hospital",
        "criteria": topic,
        "channel": channel_element,
    }
    if filters:
        resource["_criteria"] = {
            "extension": [
                {"url": f"{BACKPORT}backport-filter-criteria", "valueString": f} for f in filters
            ]
        }
    return resource


def subscribe(client: TestClient, resource: dict[str, Any], org: str = HOSPITAL) -> str:
    response = client.post("/fhir/Subscription", json=resource, headers=as_org(org))
    assert response.status_code == 201, response.text
    assert response.json()["status"] == "requested"
    return str(response.json()["id"])


def refer(client: TestClient, task_id: str = "task-1", **overrides: Any) -> None:
    response = client.put(
        "/fhir/ServiceRequest/sr-food-2001", json=service_request(), headers=as_org(HOSPITAL)
    )
    assert response.status_code in (200, 201), response.text
    # requested by a clinician's PractitionerRole, as Gravity referrals usually are: a
    # subscriber's requester=Organization/… still matches (the role's organization)
    body = task(task_id, **overrides)
    response = client.put(f"/fhir/Task/{task_id}", json=body, headers=as_org(HOSPITAL))
    assert response.status_code == 201, response.text


def cbo(client: TestClient, action: str, body: dict[str, Any] | None = None) -> None:
    response = client.post(f"{API}/referrals/task-1/{action}", json=body, headers=key_headers())
    assert response.status_code == 200, response.text


def wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def notifications(receiver: WebhookReceiver) -> list[dict[str, Any]]:
    return [orjson.loads(delivery.body) for delivery in receiver.accepted()]


def status_of(bundle: dict[str, Any]) -> dict[str, Any]:
    """The SubscriptionStatus Parameters (the first entry) as name → value(s)."""
    first = bundle["entry"][0]["resource"]
    assert first["resourceType"] == "Parameters"
    found: dict[str, Any] = {"events": []}
    for parameter in first["parameter"]:
        name = parameter["name"]
        if name == "notification-event":
            parts = {p["name"]: p for p in parameter["part"]}
            found["events"].append(
                (
                    int(parts["event-number"]["valueString"]),
                    parts.get("focus", {}).get("valueReference", {}).get("reference"),
                )
            )
        else:
            value = next(v for k, v in parameter.items() if k.startswith("value"))
            found[name] = (
                value.get("reference", value.get("text")) if isinstance(value, dict) else value
            )
    return found


def of_type(receiver: WebhookReceiver, kind: str) -> list[dict[str, Any]]:
    return [b for b in notifications(receiver) if status_of(b)["type"] == kind]


def event_numbers(receiver: WebhookReceiver) -> list[int]:
    """Event numbers in arrival order, first arrival of each (delivery is at least once)."""
    seen: list[int] = []
    for bundle in of_type(receiver, "event-notification"):
        for number, _ in status_of(bundle)["events"]:
            if number not in seen:
                seen.append(number)
    return seen


def subscription_status(client: TestClient, subscription_id: str, org: str = HOSPITAL) -> str:
    response = client.get(f"/fhir/Subscription/{subscription_id}/$status", headers=as_org(org))
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert bundle["type"] == "searchset"
    return str(status_of(bundle)["status"])


def test_done_when__the_ehr_gets_handshake_heartbeat_every_event_and_can_replay_them(
    client: TestClient,
) -> None:
    receiver = WebhookReceiver(UNSIGNED).start()
    try:
        endpoint = receiver.url("/fhir-notifications")
        sub_id = subscribe(
            client,
            subscription(endpoint, heartbeat_s=1, headers=("Authorization: Bearer ehr-secret",)),
        )

        # handshake: requested → active
        wait_for(lambda: len(of_type(receiver, "handshake")) == 1)
        wait_for(lambda: subscription_status(client, sub_id) == "active")
        handshake = status_of(of_type(receiver, "handshake")[0])
        assert handshake["status"] == "requested"
        assert handshake["subscription"] == f"{FHIR_BASE}/Subscription/{sub_id}"
        assert handshake["events-since-subscription-start"] == "0"
        first = receiver.accepted()[0]
        assert first.path == "/fhir-notifications"
        assert first.headers["authorization"] == "Bearer ehr-secret"
        assert first.headers["content-type"] == "application/fhir+json"
        assert (
            client.get(f"/fhir/Subscription/{sub_id}", headers=as_org(HOSPITAL)).json()["status"]
            == "active"
        )

        # heartbeat at heartbeatPeriod (the scan is driven here: no clock in the test)
        app: Any = client.app
        assert app.state.heartbeats.scan(now=now_us() + 2_000_000) == 1
        wait_for(lambda: len(of_type(receiver, "heartbeat")) == 1)
        assert status_of(of_type(receiver, "heartbeat")[0])["status"] == "active"

        # the referral and each CBO action through /api/v1
        refer(client)
        cbo(client, "accept")
        cbo(client, "start")
        wait_for(lambda: event_numbers(receiver) == [1, 2, 3])

        # the receiver goes down; the CBO keeps working
        receiver.stop()
        cbo(client, "hold", {"reason": "waitlisted", "text": "Next slot Monday"})
        cbo(client, "resume")
        cbo(
            client,
            "complete",
            {"outcome": "service-provided", "performed": "2025-03-14", "note": "Meals delivered"},
        )
        wait_for(lambda: subscription_status(client, sub_id) == "error")
        errored = client.get(f"/fhir/Subscription/{sub_id}", headers=as_org(HOSPITAL)).json()
        assert errored["status"] == "error"
        assert errored["error"] == "connection refused"

        # it comes back on the same port: every missed event, in order, no gap
        receiver = WebhookReceiver(UNSIGNED, port=receiver.port).start()
        wait_for(lambda: event_numbers(receiver) == [4, 5, 6])
        wait_for(lambda: subscription_status(client, sub_id) == "active")
    finally:
        receiver.stop()

    for bundle in of_type(receiver, "event-notification"):
        assert bundle["resourceType"] == "Bundle"
        assert bundle["type"] == "history"
        status = status_of(bundle)
        [(number, focus)] = status["events"]
        assert status["events-since-subscription-start"] == str(number)
        assert status["topic"] == TASK_TOPIC
        assert focus == f"{FHIR_BASE}/Task/task-1"
        [focus_entry] = bundle["entry"][1:]
        assert focus_entry["fullUrl"] == f"{FHIR_BASE}/Task/task-1"
        assert "resource" not in focus_entry  # id-only
    every_body = b"".join(d.body for d in receiver.deliveries)
    assert b"Rivera" not in every_body

    # $events replays any range, numbers and statuses as recorded
    def replay(query: str) -> list[int]:
        response = client.get(
            f"/fhir/Subscription/{sub_id}/$events?{query}", headers=as_org(HOSPITAL)
        )
        assert response.status_code == 200, response.text
        bundle = response.json()
        assert bundle["type"] == "history"
        status = status_of(bundle)
        assert status["type"] == "query-event"
        assert status["events-since-subscription-start"] == "6"
        return [number for number, _ in status["events"]]

    assert replay("") == [1, 2, 3, 4, 5, 6]
    assert replay("eventsSinceNumber=2&eventsUntilNumber=4") == [2, 3, 4]
    assert replay("eventsSinceNumber=5") == [5, 6]
    full = client.get(
        f"/fhir/Subscription/{sub_id}/$events?eventsSinceNumber=6&content=full-resource",
        headers=as_org(HOSPITAL),
    ).json()
    assert full["entry"][1]["resource"]["status"] == "completed"
    assert full["entry"][1]["resource"]["meta"]["versionId"] == "6"


def loopback(path: str = "/hook") -> str:
    return f"http://127.0.0.1:9{path}"


@pytest.mark.parametrize(
    ("change", "expression"),
    [
        ({"channel_type": "websocket"}, "Subscription.channel.type"),
        ({"channel_type": "message"}, "Subscription.channel.type"),
        ({"channel_type": "email"}, "Subscription.channel.type"),  # no SMTP configured here
        ({"content": "full-text"}, "Subscription.channel.payload.extension"),
        ({"payload": "application/fhir+xml"}, "Subscription.channel.payload"),
        ({"filters": ("Task?patient=Patient/pat-1001",)}, "Subscription.criteria.extension"),
        ({"filters": ("ServiceRequest?_id=sr-1",)}, "Subscription.criteria.extension"),
        ({"topic": "http://example.org/SubscriptionTopic/encounter"}, "Subscription.criteria"),
        ({"endpoint": "http://ehr.example.org/notify"}, "Subscription.channel.endpoint"),
        ({"endpoint": "not a url"}, "Subscription.channel.endpoint"),
        ({"headers": ("Host: evil.example.org",)}, "Subscription.channel.header[0]"),
        ({"heartbeat": -1}, "Subscription.channel.extension"),
        ({"status": "active"}, "Subscription.status"),
    ],
)
def test_refuses_what_it_cannot_honour_with_422(
    client: TestClient, change: dict[str, Any], expression: str
) -> None:
    resource = subscription(
        change.get("endpoint", loopback()),
        topic=change.get("topic", TASK_TOPIC),
        filters=change.get("filters", (f"Task?requester={HOSPITAL}",)),
        content=change.get("content", "id-only"),
        headers=change.get("headers", ()),
        status=change.get("status", "requested"),
    )
    if "channel_type" in change:
        resource["channel"]["type"] = change["channel_type"]
        if change["channel_type"] == "email":
            resource["channel"]["endpoint"] = "mailto:referrals@mercy.example.org"
    if "payload" in change:
        resource["channel"]["payload"] = change["payload"]
    if "heartbeat" in change:
        resource["channel"]["extension"] = [
            {"url": f"{BACKPORT}backport-heartbeat-period", "valueInteger": change["heartbeat"]}
        ]
    response = client.post("/fhir/Subscription", json=resource, headers=as_org(HOSPITAL))
    assert response.status_code == 422, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    expressions = [e for issue in outcome["issue"] for e in issue.get("expression", [])]
    assert any(e.startswith(expression) for e in expressions), expressions
    assert client.get("/fhir/Subscription", headers=as_org(HOSPITAL)).json().get("total") == 0


def test_a_410_from_the_endpoint_turns_the_subscription_off(client: TestClient) -> None:
    with running_receiver(UNSIGNED) as receiver:
        receiver.answers = [410]
        sub_id = subscribe(client, subscription(receiver.url()))
        wait_for(lambda: subscription_status(client, sub_id) == "off")
        refer(client)
    assert len(receiver.deliveries) == 1
    stored = client.get(f"/fhir/Subscription/{sub_id}", headers=as_org(HOSPITAL)).json()
    assert stored["status"] == "off"
    assert stored["error"] == "endpoint answered 410 Gone"
    replay = client.get(f"/fhir/Subscription/{sub_id}/$events", headers=as_org(HOSPITAL))
    assert status_of(replay.json())["events"] == []  # off: the referral raised no event


def test_full_resource_payloads_show_only_what_the_subscriber_may_read(
    client: TestClient, engine: Engine
) -> None:
    # the receiving CBO may read its Task; the other CBO may not even learn it exists
    with running_receiver(UNSIGNED) as owner, running_receiver(UNSIGNED) as other:
        owner_sub = subscribe(
            client,
            subscription(owner.url(), filters=(f"Task?owner={CBO}",), content="full-resource"),
            org=CBO,
        )
        other_sub = subscribe(
            client, subscription(other.url(), filters=(), content="full-resource"), org=OTHER_CBO
        )
        wait_for(lambda: len(owner.accepted()) == 1 and len(other.accepted()) == 1)
        refer(client)
        cbo(client, "accept")
        wait_for(lambda: event_numbers(owner) == [1, 2])
        assert subscription_status(client, other_sub, org=OTHER_CBO) == "active"
    [created, accepted] = of_type(owner, "event-notification")
    assert created["entry"][1]["resource"]["status"] == "requested"
    assert accepted["entry"][1]["resource"]["status"] == "accepted"
    assert accepted["entry"][1]["resource"]["id"] == "task-1"
    assert of_type(other, "event-notification") == []
    other_replay = client.get(f"/fhir/Subscription/{other_sub}/$events", headers=as_org(OTHER_CBO))
    assert status_of(other_replay.json())["events-since-subscription-start"] == "0"

    # a Subscription is its creator's: others neither read it nor ask for its status
    for path in (f"Subscription/{owner_sub}", f"Subscription/{owner_sub}/$status"):
        assert client.get(f"/fhir/{path}", headers=as_org(OTHER_CBO)).status_code == 404
    listed = client.get(f"/fhir/Subscription/$status?id={owner_sub}", headers=as_org(OTHER_CBO))
    assert listed.json()["entry"] == []

    # a token that may search Tasks but not read them is told of no Task at all
    limited = mint(engine, organization=HOSPITAL, scope="system/Subscription.cruds system/Task.s")
    response = client.post(
        "/fhir/Subscription",
        json=subscription(loopback(), content="full-resource"),
        headers=builders.bearer(limited),
    )
    assert response.status_code == 201, response.text
    limited_sub = response.json()["id"]
    cbo(client, "start")  # events are numbered in the write's own transaction
    replay = client.get(f"/fhir/Subscription/{owner_sub}/$events", headers=as_org(CBO)).json()
    assert status_of(replay)["events-since-subscription-start"] == "3"
    limited_replay = client.get(
        f"/fhir/Subscription/{limited_sub}/$events", headers=builders.bearer(limited)
    ).json()
    assert status_of(limited_replay)["events-since-subscription-start"] == "0"


def test_open_referrals_reach_every_cbos_subscription_until_one_claims_them(
    client: TestClient, engine: Engine
) -> None:
    """What a subscriber may read decides its events, open (unowned, requested) Tasks
    included, and a grant's own criteria too."""
    watching = {
        org: subscribe(client, subscription(loopback(), filters=()), org=org)
        for org in (CBO, OTHER_CBO)
    }
    # may read Tasks, but only those owned by OTHER_CBO
    narrow = mint(
        engine,
        organization=CBO,
        scope=f"system/Subscription.cruds system/Task.rs?owner={OTHER_CBO}",
    )
    response = client.post(
        "/fhir/Subscription",
        json=subscription(loopback(), filters=()),
        headers=builders.bearer(narrow),
    )
    assert response.status_code == 201, response.text
    narrow_sub = response.json()["id"]
    response = client.put(
        "/fhir/ServiceRequest/sr-food-2001", json=service_request(), headers=as_org(HOSPITAL)
    )
    assert response.status_code in (200, 201), response.text
    open_task = task()
    del open_task["owner"]
    response = client.put("/fhir/Task/task-1", json=open_task, headers=as_org(HOSPITAL))
    assert response.status_code == 201, response.text
    claimed = client.get("/fhir/Task/task-1", headers=as_org(CBO)).json()
    response = client.put(
        "/fhir/Task/task-1",
        json={**claimed, "status": "accepted", "owner": {"reference": CBO}},
        headers=as_org(CBO),
    )
    assert response.status_code == 200, response.text

    def replayed(subscription_id: str, headers: dict[str, str]) -> list[tuple[int, Any]]:
        response = client.get(f"/fhir/Subscription/{subscription_id}/$events", headers=headers)
        assert response.status_code == 200, response.text
        return list(status_of(response.json())["events"])

    task_url = f"{FHIR_BASE}/Task/task-1"
    assert replayed(watching[CBO], as_org(CBO)) == [(1, task_url), (2, task_url)]
    assert replayed(watching[OTHER_CBO], as_org(OTHER_CBO)) == [(1, task_url)]  # then claimed
    assert replayed(narrow_sub, builders.bearer(narrow)) == []


def test_type_level_status_lists_the_callers_subscriptions(client: TestClient) -> None:
    first = subscribe(client, subscription(loopback("/a")))
    second = subscribe(client, subscription(loopback("/b"), topic=SR_TOPIC, filters=()))
    subscribe(client, subscription(loopback("/c")), org=CBO)
    by_get = client.get("/fhir/Subscription/$status", headers=as_org(HOSPITAL)).json()
    assert by_get["type"] == "searchset"
    listed = {status_of({"entry": [e]})["subscription"] for e in by_get["entry"]}
    assert listed == {f"{FHIR_BASE}/Subscription/{first}", f"{FHIR_BASE}/Subscription/{second}"}
    by_post = client.post(
        "/fhir/Subscription/$status",
        json={"resourceType": "Parameters", "parameter": [{"name": "id", "valueId": second}]},
        headers=as_org(HOSPITAL),
    ).json()
    [entry] = by_post["entry"]
    assert status_of({"entry": [entry]})["subscription"].endswith(second)
    assert status_of({"entry": [entry]})["type"] == "query-status"


def test_a_heartbeat_is_queued_once_however_often_the_scan_runs(client: TestClient) -> None:
    with running_receiver(UNSIGNED) as receiver:
        sub_id = subscribe(client, subscription(receiver.url(), heartbeat_s=60))
        wait_for(lambda: subscription_status(client, sub_id) == "active")
        app: Any = client.app
        later = now_us() + 61_000_000
        assert app.state.heartbeats.scan(now=later) == 1
        assert app.state.heartbeats.scan(now=later) == 0
        assert app.state.heartbeats.scan(now=later + 60_000_000) == 1
        wait_for(lambda: len(of_type(receiver, "heartbeat")) == 2)


def test_the_service_request_topic_follows_the_ids_it_is_told(client: TestClient) -> None:
    with running_receiver(UNSIGNED) as receiver:
        sub_id = subscribe(
            client,
            subscription(
                receiver.url(), topic=SR_TOPIC, filters=("ServiceRequest?_id=sr-food-2001",)
            ),
            org=CBO,
        )
        refer(client)  # a create: the topic triggers on update and delete only
        revoked = service_request(status="revoked")
        response = client.put(
            "/fhir/ServiceRequest/sr-food-2001", json=revoked, headers=as_org(HOSPITAL)
        )
        assert response.status_code == 200, response.text
        wait_for(lambda: event_numbers(receiver) == [1])
    [bundle] = of_type(receiver, "event-notification")
    assert status_of(bundle)["events"] == [(1, f"{FHIR_BASE}/ServiceRequest/sr-food-2001")]
    assert sub_id


def test_the_capability_statement_advertises_subscriptions(client: TestClient) -> None:
    statement = client.get("/fhir/metadata").json()
    [resource] = [r for r in statement["rest"][0]["resource"] if r["type"] == "Subscription"]
    topics = {e["valueCanonical"] for e in resource["extension"]}
    assert topics == {TASK_TOPIC, SR_TOPIC}
    assert {o["name"] for o in resource["operation"]} == {"status", "events"}
    assert f"{BACKPORT}backport-subscription" in resource["supportedProfile"]


def test_a_client_turns_a_subscription_off_and_on_again(client: TestClient) -> None:
    with running_receiver(UNSIGNED) as receiver:
        sub_id = subscribe(client, subscription(receiver.url()))
        wait_for(lambda: subscription_status(client, sub_id) == "active")
        current = client.get(f"/fhir/Subscription/{sub_id}", headers=as_org(HOSPITAL)).json()
        off = client.put(
            f"/fhir/Subscription/{sub_id}",
            json={**current, "status": "off"},
            headers=as_org(HOSPITAL),
        )
        assert off.status_code == 200, off.text
        refer(client)
        again = client.put(
            f"/fhir/Subscription/{sub_id}",
            json={**off.json(), "status": "requested"},
            headers=as_org(HOSPITAL),
        )
        assert again.status_code == 200, again.text
        wait_for(lambda: len(of_type(receiver, "handshake")) == 2)
        wait_for(lambda: subscription_status(client, sub_id) == "active")
        cbo(client, "accept")
        wait_for(lambda: event_numbers(receiver) == [1])
        refused = client.put(
            f"/fhir/Subscription/{sub_id}",
            json={**off.json(), "status": "error"},
            headers=as_org(HOSPITAL),
        )
        assert refused.status_code == 422


def test_the_email_channel_sends_a_note_without_client_details(
    settings: Settings, engine: Engine, signing_key: dict[str, Any]
) -> None:
    with running_mail_server() as mail:
        emailing = Settings.model_validate(
            {
                **settings.model_dump(),
                "smtp_host": "127.0.0.1",
                "smtp_port": mail.port,
                "smtp_security": "none",
                "smtp_from": "Loopgate <referrals@loopgate.example.org>",
                "outbox_poll_interval_s": 0.05,
                "email_overdue_scan_s": 0,
                "subscription_heartbeat_scan_s": 0,
            }
        )
        store_signing_key(engine, signing_key)
        with TestClient(create_app(emailing, engine=engine), base_url=BASE_URL) as client:
            builders.TOKENS[HOSPITAL] = mint(engine, organization=HOSPITAL)
            builders.TOKENS[CBO] = mint(engine, organization=CBO)
            provision_partners(client)
            resource = subscription("mailto:care-team@mercy.example.org")
            resource["channel"]["type"] = "email"
            full = client.post(
                "/fhir/Subscription",
                json={
                    **resource,
                    "channel": {
                        **resource["channel"],
                        "_payload": {
                            "extension": [
                                {
                                    "url": f"{BACKPORT}backport-payload-content",
                                    "valueCode": "full-resource",
                                }
                            ]
                        },
                    },
                },
                headers=as_org(HOSPITAL),
            )
            assert full.status_code == 422  # e-mail never carries resource content
            sub_id = subscribe(client, resource)
            wait_for(lambda: subscription_status(client, sub_id) == "active")
            refer(client)
            wait_for(lambda: len(mail.received()) == 2)
        builders.TOKENS.clear()
    handshake, event = mail.received()
    assert handshake["To"] == "care-team@mercy.example.org"
    assert "event 1" in event["Subject"]
    text = event.get_content()
    assert f"{FHIR_BASE}/Subscription/{sub_id}/$events?eventsSinceNumber=1" in text
    for detail in ("Rivera", "Denise", "pat-1001", "task-1"):
        assert detail not in text


def test_concurrent_writers_draw_event_numbers_without_gaps_or_repeats(
    client: TestClient, engine: Engine
) -> None:
    """Every write counts an event on each of three subscriptions; however the writers
    interleave, each subscription's numbers have no gap or repeat."""
    sub_ids = [subscribe(client, subscription(loopback())) for _ in range(3)]
    refer(client, "task-0")
    app: Any = client.app
    hospital = AccessContext(organization=HOSPITAL, client_id="test-client")

    def create(n: int) -> None:
        body = task(f"task-c{n}", requester={"reference": HOSPITAL})
        app.state.fhir.update(hospital, "Task", f"task-c{n}", body)

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(create, range(40)))
    with engine.connect() as connection:
        for sub_id in sub_ids:
            rows = connection.execute(
                select(
                    subscription_event_table.c.event_number, subscription_event_table.c.focus_id
                ).where(subscription_event_table.c.subscription_id == sub_id)
            ).all()
            assert sorted(row.event_number for row in rows) == list(range(1, 42))
            assert len({row.focus_id for row in rows}) == 41


RECEIVER_EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "notification_receiver.py"


@contextmanager
def example_receiver(*arguments: str) -> Iterator[list[str]]:
    """``examples/notification_receiver.py`` as a user runs it; yields its output lines."""
    port = free_port()
    lines: list[str] = []
    with subprocess.Popen(
        [sys.executable, str(RECEIVER_EXAMPLE), "--port", str(port), *arguments],
        stdout=subprocess.PIPE,
        text=True,
    ) as process:
        output = process.stdout
        assert output is not None
        reader = threading.Thread(target=lambda: lines.extend(output), daemon=True)
        reader.start()
        try:
            wait_for(lambda: any(line.startswith("listening on") for line in lines))
            yield lines
        finally:
            process.terminate()
            process.wait(timeout=10)
            reader.join(timeout=10)


def test_the_example_receiver_prints_each_notification_the_demo_subscription_sends(
    client: TestClient,
) -> None:
    with example_receiver("--header", "X-Receiver-Token: t0ken") as lines:
        endpoint = lines[0].removeprefix("listening on ").strip() + "notifications"
        sub_id = subscribe(client, subscription(endpoint, headers=("X-Receiver-Token: t0ken",)))
        wait_for(lambda: subscription_status(client, sub_id) == "active")
        refer(client)
        cbo(client, "accept")
        wait_for(lambda: "event 2" in "".join(lines))
    text = "".join(lines)
    assert f"{FHIR_BASE}/Subscription/{sub_id} handshake (events since start: 0)" in text
    assert f"event 1: {FHIR_BASE}/Task/task-1\n" in text
    assert f"event 2: {FHIR_BASE}/Task/task-1\n" in text
    assert "expected event" not in text


def test_the_example_receiver_points_out_a_gap_and_refuses_strangers() -> None:
    def bundle(number: int) -> bytes:
        event = {
            "name": "notification-event",
            "part": [
                {"name": "event-number", "valueString": str(number)},
                {"name": "focus", "valueReference": {"reference": "Task/t1"}},
            ],
        }
        status = {
            "resourceType": "Parameters",
            "parameter": [
                {"name": "subscription", "valueReference": {"reference": "Subscription/s1"}},
                {"name": "type", "valueCode": "event-notification"},
                {"name": "events-since-subscription-start", "valueString": str(number)},
                event,
            ],
        }
        return orjson.dumps({"resourceType": "Bundle", "entry": [{"resource": status}]})

    with example_receiver("--header", "X-Receiver-Token: t0ken") as lines:
        url = lines[0].removeprefix("listening on ").strip()
        token = {"X-Receiver-Token": "t0ken", "Content-Type": "application/fhir+json"}
        assert httpx.post(url, content=bundle(1), headers=token).status_code == 200
        assert httpx.post(url, content=bundle(3), headers=token).status_code == 200
        assert httpx.post(url, content=bundle(4)).status_code == 401
        wait_for(lambda: "event 3" in "".join(lines))
    text = "".join(lines)
    assert "event 3: Task/t1  <- expected event 2: ask $events" in text
    assert "event 4" not in text


def events_of(engine: Engine, sub_id: str) -> list[str]:
    """The focus of each event counted on ``sub_id``, in event-number order."""
    with engine.connect() as connection:
        rows = connection.execute(
            select(subscription_event_table.c.focus_id)
            .where(subscription_event_table.c.subscription_id == sub_id)
            .order_by(subscription_event_table.c.event_number)
        ).all()
    return [row.focus_id for row in rows]


def test_a_subscription_changed_by_another_process_counts_from_the_next_write(
    client: TestClient, settings: Settings, engine: Engine
) -> None:
    """Each process keeps the live subscriptions in memory; one created, refiltered or turned
    off through a second app on the same database is honoured by the first app's next write."""
    first: Any = client.app
    hospital = AccessContext(organization=HOSPITAL, client_id="test-client")

    def write(task_id: str) -> None:
        body = task(task_id, requester={"reference": HOSPITAL})
        first.state.fhir.update(hospital, "Task", task_id, body)

    refer(client, "task-0")
    kept = subscribe(client, subscription(loopback()))
    write("task-1")  # the first app now holds the live set, with one subscription
    own_engine = make_engine(settings.database_url)  # as another process would have
    other = create_app(settings.model_copy(update={"outbox_worker": False}), engine=own_engine)
    with TestClient(other, base_url=BASE_URL) as second:
        added = subscribe(second, subscription(loopback("/other")))
        write("task-2")
        assert events_of(engine, added) == ["task-2"]
        current = second.get(f"/fhir/Subscription/{added}", headers=as_org(HOSPITAL)).json()
        narrowed = subscription(loopback("/other"), filters=(f"Task?owner={OTHER_CBO}",))
        response = second.put(
            f"/fhir/Subscription/{added}",
            json={**narrowed, "id": added, "status": current["status"]},
            headers=as_org(HOSPITAL),
        )
        assert response.status_code == 200, response.text
        write("task-3")  # owned by CBO: no longer the added subscription's
        write("task-4")
        first.state.fhir.update(
            hospital, "Task", "task-4", task("task-4", owner={"reference": OTHER_CBO})
        )
        assert events_of(engine, added) == ["task-2", "task-4"]
        current = second.get(f"/fhir/Subscription/{added}", headers=as_org(HOSPITAL)).json()
        off = second.put(
            f"/fhir/Subscription/{added}",
            json={**current, "status": "off"},
            headers=as_org(HOSPITAL),
        )
        assert off.status_code == 200, off.text
        write("task-5")
    assert events_of(engine, added) == ["task-2", "task-4"]
    assert events_of(engine, kept) == ["task-1", "task-2", "task-3", "task-4", "task-4", "task-5"]


def test_a_client_rewriting_its_subscription_while_loopgate_moves_its_status_never_deadlocks(
    settings: Settings, engine: Engine
) -> None:
    """A client's new version of a Subscription and Loopgate's status move after a failed
    delivery lock the resource's row and the subscription's row in one order: the move waits
    for the client's write, then applies on top of it, and neither fails."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite writers take the whole database; row lock order is PostgreSQL's")
    app: Any = create_app(settings.model_copy(update={"outbox_worker": False}), engine=engine)
    service = app.state.fhir
    hospital = AccessContext(organization=HOSPITAL, client_id="test-client")
    service.update(hospital, "Subscription", "sub-1", {**subscription(loopback()), "id": "sub-1"})
    holding, release = threading.Event(), threading.Event()

    def hold_the_client_write(_: object, written: list[Any]) -> None:
        """Pause between writing the Subscription's rows and updating its subscription row."""
        if any(stored.resource_type == "Subscription" for stored in written):
            holding.set()
            release.wait(30)

    service.write_listeners.insert(0, hold_the_client_write)
    narrowed = {**subscription(loopback(), filters=(f"Task?owner={CBO}",)), "id": "sub-1"}
    with ThreadPoolExecutor(2) as pool:
        client_write = pool.submit(service.update, hospital, "Subscription", "sub-1", narrowed)
        assert holding.wait(30)
        server_move = pool.submit(
            StatusMoves(service).move,
            "sub-1",
            "error",
            from_statuses=("requested", "active"),
            error="connection refused",
        )
        wait_for(lambda: _a_session_waits_for_a_lock(engine))
        release.set()
        client_write.result(timeout=60)
        assert server_move.result(timeout=60)
    with engine.connect() as connection:
        record = records.get_subscription(connection, "sub-1")
    assert record is not None
    assert (record.status, record.filters) == ("error", (("owner", CBO),))
    current = service.read(hospital, "Subscription", "sub-1")
    assert current.version_id == 3
    body = orjson.loads(current.body)
    assert (body["status"], body["error"]) == ("error", "connection refused")
    assert body["_criteria"] == narrowed["_criteria"]


def test_the_heartbeat_scan_passes_over_a_subscription_a_writer_holds(
    settings: Settings, engine: Engine
) -> None:
    """While a write counting an event holds one subscription's row, the scan queues the other
    due heartbeats without waiting for it (waiting while holding them could deadlock with a
    writer counting events on several); the next scan claims the held one if still due."""
    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite writers take the whole database; row locks are PostgreSQL's")
    app: Any = create_app(settings.model_copy(update={"outbox_worker": False}), engine=engine)
    service = app.state.fhir
    hospital = AccessContext(organization=HOSPITAL, client_id="test-client")
    for sub_id in ("sub-1", "sub-2"):
        body = {**subscription(loopback(), heartbeat_s=60), "id": sub_id}
        service.update(hospital, "Subscription", sub_id, body)
        assert StatusMoves(service).move(sub_id, "active", from_statuses=("requested",))
    later = now_us() + 61_000_000
    with ThreadPoolExecutor(1) as pool, write_transaction(engine) as writer:
        assert records.next_event_numbers(writer, ["sub-1"], now=now_us()) == {"sub-1": 1}
        scan = pool.submit(app.state.heartbeats.scan, now=later)
        wait_for(lambda: scan.done() or _a_session_waits_for_a_lock(engine))
        assert scan.done(), "the scan waited for the writer's row"
        assert scan.result() == 1
    assert app.state.heartbeats.scan(now=later) == 1  # sub-1, postponed by 60 s only
    assert app.state.heartbeats.scan(now=later) == 0
    with engine.connect() as connection:
        queued = [
            (row.destination, orjson.loads(row.payload)["type"])
            for row in connection.execute(
                select(outbox_table).where(outbox_table.c.kind == "subscription")
            )
        ]
    assert sorted(queued) == [
        ("sub-1", "handshake"),
        ("sub-1", "heartbeat"),
        ("sub-2", "handshake"),
        ("sub-2", "heartbeat"),
    ]


def _a_session_waits_for_a_lock(engine: Engine) -> bool:
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    with engine.connect() as connection:
        return bool(connection.execute(query).scalar_one())


def test_a_subscription_rolled_back_with_its_write_never_counts_events(
    client: TestClient, engine: Engine
) -> None:
    """A write that creates a subscription and fails leaves nothing behind in any process's
    memory: the next write does not count events on the subscription that never was."""
    app: Any = client.app
    service = app.state.fhir
    hospital = AccessContext(organization=HOSPITAL, client_id="test-client")
    refer(client, "task-0")

    def fail(*_: object) -> None:
        raise RuntimeError("a later step of the write failed")

    def write_both() -> None:
        with service.writing(hospital) as ctx:
            service.create_in(ctx, subscription(loopback()))
            service.update_in(ctx, "task-1", task("task-1", requester={"reference": HOSPITAL}))

    service.write_listeners.append(fail)  # runs after the subscriptions' listener
    try:
        with pytest.raises(RuntimeError):
            write_both()
    finally:
        service.write_listeners.remove(fail)
    kept = subscribe(client, subscription(loopback()))
    service.update(hospital, "Task", "task-1", task("task-1", requester={"reference": HOSPITAL}))
    with engine.connect() as connection:
        counted = connection.execute(select(subscription_event_table.c.subscription_id)).all()
    assert [row.subscription_id for row in counted] == [kept]


def test_an_event_queued_without_its_focus_is_rendered_from_the_event_log(
    client: TestClient, engine: Engine
) -> None:
    """Event payloads carry the focus now; one queued before they did (its number alone)
    still goes out whole, read back from the $events log."""
    with running_receiver(UNSIGNED) as receiver:
        sub_id = subscribe(client, subscription(receiver.url()))
        wait_for(lambda: subscription_status(client, sub_id) == "active")
        refer(client)
        wait_for(lambda: len(of_type(receiver, "event-notification")) == 1)
        with write_transaction(engine) as connection:
            enqueue(
                connection,
                kind="subscription",
                destination=sub_id,
                ordering_key=sub_id,
                payload={"type": "event-notification", "event": 1},
            )
        app: Any = client.app
        app.state.outbox.wake()
        wait_for(lambda: len(of_type(receiver, "event-notification")) == 2)
    first, again = of_type(receiver, "event-notification")
    assert (
        status_of(first)["events"]
        == status_of(again)["events"]
        == [(1, f"{FHIR_BASE}/Task/task-1")]
    )
    assert first["entry"][1:] == again["entry"][1:]


def test_the_background_scan_sends_heartbeats_while_nothing_happens(
    settings: Settings, engine: Engine, signing_key: dict[str, Any]
) -> None:
    """With the scan running on its own (as in production), a quiet subscription hears a
    heartbeat about every heartbeatPeriod, without anyone driving the scan."""
    scanning = settings.model_copy(
        update={"outbox_poll_interval_s": 0.05, "subscription_heartbeat_scan_s": 0.05}
    )
    store_signing_key(engine, signing_key)
    receiver = WebhookReceiver(UNSIGNED).start()
    try:
        with TestClient(create_app(scanning, engine=engine), base_url=BASE_URL) as app_client:
            builders.TOKENS[HOSPITAL] = mint(engine, organization=HOSPITAL)
            subscribe(app_client, subscription(receiver.url("/hook"), heartbeat_s=1))
            wait_for(lambda: len(of_type(receiver, "heartbeat")) >= 2)
    finally:
        receiver.stop()
        builders.TOKENS.clear()
    assert len(of_type(receiver, "handshake")) == 1
    assert {status_of(b)["status"] for b in of_type(receiver, "heartbeat")} == {"active"}
