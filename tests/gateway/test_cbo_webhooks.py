"""Webhooks to community organizations, end to end: Task changes on the FHIR side become
signed events on the CBO's endpoint, at least once and in order per referral, with a delivery
log and redelivery through the API; and auto-decline while at capacity."""

import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine

from adapters.webhooks import WebhookVerificationError, new_webhook_secret, verify_webhook
from gateway.app import create_app
from gateway.settings import Settings
from tests import builders
from tests.adapters.webhook_receiver import WebhookReceiver, running_receiver
from tests.builders import CBO, HOSPITAL, as_org, service_request, task
from tests.conftest import BASE_URL, store_signing_key
from tests.partners import API, CBO_KEY, OTHER_CBO_KEY, key_headers, provision_partners
from tests.tokens import mint

SECRET = new_webhook_secret()


@pytest.fixture
def client(settings: Settings, engine: Engine, signing_key: dict[str, Any]) -> Iterator[TestClient]:
    """The app with an outbox that retries within a fraction of a second."""
    fast = settings.model_copy(
        update={
            "outbox_poll_interval_s": 0.05,
            "outbox_retry_base_s": 0.05,
            "outbox_retry_cap_s": 0.3,
        }
    )
    store_signing_key(engine, signing_key)
    with TestClient(create_app(fast, engine=engine), base_url=BASE_URL) as test_client:
        builders.TOKENS[HOSPITAL] = mint(engine, organization=HOSPITAL)
        provision_partners(test_client)
        yield test_client
    builders.TOKENS.clear()


def refer(client: TestClient, task_id: str) -> None:
    client.put(
        "/fhir/ServiceRequest/sr-food-2001", json=service_request(), headers=as_org(HOSPITAL)
    )
    response = client.put(f"/fhir/Task/{task_id}", json=task(task_id), headers=as_org(HOSPITAL))
    assert response.status_code == 201, response.text


def hospital_moves(client: TestClient, task_id: str, **changes: Any) -> None:
    current = client.get(f"/fhir/Task/{task_id}", headers=as_org(HOSPITAL)).json()
    response = client.put(
        f"/fhir/Task/{task_id}", json={**current, **changes}, headers=as_org(HOSPITAL)
    )
    assert response.status_code == 200, response.text


def set_webhook(client: TestClient, url: str, key: str = CBO_KEY) -> dict[str, Any]:
    response = client.put(
        f"{API}/webhook", json={"url": url, "secret": SECRET}, headers=key_headers(key)
    )
    assert response.status_code == 200, response.text
    return dict(response.json())


def deliveries(client: TestClient, key: str = CBO_KEY) -> list[dict[str, Any]]:
    response = client.get(f"{API}/webhook/deliveries", headers=key_headers(key))
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def wait_for(condition: Callable[[], bool], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting")
        time.sleep(0.05)


def events(receiver: WebhookReceiver) -> list[dict[str, Any]]:
    """The first accepted delivery of each event, in the order they were answered."""
    seen: dict[str, dict[str, Any]] = {}
    for delivery in receiver.accepted():
        seen.setdefault(delivery.id, orjson.loads(delivery.body))
    return list(seen.values())


def test_done_when__a_receiver_down_for_a_while_gets_every_event_in_order_each_signed(
    client: TestClient,
) -> None:
    receiver = WebhookReceiver(SECRET)  # built, not started: connections are refused
    set_webhook(client, receiver.url())
    refer(client, "task-1")
    refer(client, "task-2")
    assert client.post(f"{API}/referrals/task-1/accept", headers=key_headers()).status_code == 200
    client.post(f"{API}/referrals/task-1/messages", json={"text": "Hi"}, headers=key_headers())
    hospital_moves(
        client, "task-2", status="cancelled", statusReason={"text": "Patient moved away"}
    )

    wait_for(lambda: any(d["attempts"] >= 2 for d in deliveries(client)))
    down = deliveries(client)
    assert {d["status"] for d in down} == {"pending"}
    assert any(d.get("last_error") == "connection refused" for d in down)

    receiver.start()
    try:
        wait_for(lambda: {d["status"] for d in deliveries(client)} == {"delivered"})
    finally:
        receiver.stop()

    assert all(delivery.verified for delivery in receiver.deliveries)
    received = events(receiver)
    assert len(received) == 5
    by_referral: dict[str, list[str]] = {}
    for event in received:
        by_referral.setdefault(event["data"]["referral_id"], []).append(event["type"])
    assert by_referral == {
        "task-1": ["referral.created", "referral.updated", "message.created"],
        "task-2": ["referral.created", "referral.cancelled"],
    }
    accepted = next(e for e in received if e["type"] == "referral.updated")
    assert accepted["data"]["status"] == "accepted"
    assert accepted["data"]["previous_status"] == "requested"
    assert accepted["data"]["changed_by"] == CBO
    assert accepted["data"]["url"] == f"{BASE_URL}/api/v1/referrals/task-1"
    every_body = b"".join(d.body for d in receiver.deliveries)
    assert b"Rivera" not in every_body
    assert b"1986" not in every_body


def test_done_when__forged_and_replayed_signatures_fail_the_documented_check(
    client: TestClient,
) -> None:
    with running_receiver(SECRET) as receiver:
        set_webhook(client, receiver.url())
        refer(client, "task-1")
        wait_for(lambda: len(receiver.accepted()) == 1)
    [delivery] = receiver.accepted()
    headers, body = delivery.headers, delivery.body
    verify_webhook(SECRET, headers, body)  # what a receiver does

    forgeries: list[tuple[str, dict[str, str], bytes, float | None]] = [
        (new_webhook_secret(), headers, body, None),  # someone else's secret
        (SECRET, headers, body.replace(b"task-1", b"task-9"), None),  # altered body
        (SECRET, {**headers, "webhook-id": "another-id"}, body, None),  # id swapped
        (SECRET, headers, body, int(headers["webhook-timestamp"]) + 600.0),  # replayed later
    ]
    for secret, forged_headers, forged_body, now in forgeries:
        with pytest.raises(WebhookVerificationError):
            verify_webhook(secret, forged_headers, forged_body, now=now)


def test_delivery_log__shows_attempts_and_redelivers_with_the_same_id(
    client: TestClient,
) -> None:
    with running_receiver(SECRET) as receiver:
        receiver.answers.extend([503, 503])
        set_webhook(client, receiver.url())
        refer(client, "task-1")
        wait_for(lambda: deliveries(client)[0]["status"] == "delivered")
        [delivery] = deliveries(client)
        assert (delivery["event"], delivery["referral_id"], delivery["attempts"]) == (
            "referral.created",
            "task-1",
            3,
        )
        detail = client.get(f"{API}/webhook/deliveries/{delivery['id']}", headers=key_headers())
        assert [(a["outcome"], a.get("status_code")) for a in detail.json()["attempts_log"]] == [
            ("retry", 503),
            ("retry", 503),
            ("delivered", 200),
        ]

        again = client.post(
            f"{API}/webhook/deliveries/{delivery['id']}/redeliver", headers=key_headers()
        )
        assert again.status_code == 202
        wait_for(lambda: len(receiver.accepted()) == 2)
    first, second = receiver.accepted()
    assert first.id == second.id == delivery["id"]
    assert first.body == second.body

    other = client.get(
        f"{API}/webhook/deliveries/{delivery['id']}", headers=key_headers(OTHER_CBO_KEY)
    )
    assert other.status_code == 404
    assert deliveries(client, OTHER_CBO_KEY) == []


def test_webhook_settings__secret_shown_once_bad_urls_refused_delete_stops_events(
    client: TestClient,
) -> None:
    made = client.put(
        f"{API}/webhook", json={"url": "https://cbo.example/hooks"}, headers=key_headers()
    )
    assert made.status_code == 200
    assert made.json()["secret"].startswith("whsec_")
    shown = client.get(f"{API}/webhook", headers=key_headers()).json()
    assert shown["url"] == "https://cbo.example/hooks"
    assert shown.get("secret") is None
    assert "referral.created" in shown["events"]

    for body in (
        {"url": "http://cbo.example/hooks"},
        {"url": "ftp://cbo.example"},
        {"url": "https://cbo.example/hooks", "secret": "not-a-standard-secret"},
    ):
        refused = client.put(f"{API}/webhook", json=body, headers=key_headers())
        assert refused.status_code == 400, body
        assert "not-a-standard-secret" not in refused.text

    assert client.delete(f"{API}/webhook", headers=key_headers()).status_code == 204
    refer(client, "task-1")
    assert deliveries(client) == []


def test_events__go_only_to_the_organization_the_referral_is_for(client: TestClient) -> None:
    set_webhook(client, "https://housing.example/hooks", key=OTHER_CBO_KEY)
    refer(client, "task-1")  # owned by the food bank, not the housing CBO
    client.post(f"{API}/referrals/task-1/accept", headers=key_headers())
    # events are enqueued with the change that causes them, so none means none will come
    assert deliveries(client, OTHER_CBO_KEY) == []


def test_auto_decline__while_at_no_capacity_the_referral_is_declined_as_the_cbo(
    client: TestClient,
) -> None:
    provision_partners(
        client,
        {
            "organization": CBO,
            "api_keys": [CBO_KEY],
            "policy": {"auto_decline_at_capacity": True},
        },
    )
    response = client.put(f"{API}/capacity", json={"status": "waitlist"}, headers=key_headers())
    assert response.status_code == 200
    refer(client, "task-1")
    client.put(f"{API}/capacity", json={"status": "no-capacity"}, headers=key_headers())
    refer(client, "task-2")

    def status(task_id: str) -> str:
        return str(client.get(f"/fhir/Task/{task_id}", headers=as_org(HOSPITAL)).json()["status"])

    wait_for(lambda: status("task-2") == "rejected")
    declined = client.get("/fhir/Task/task-2", headers=as_org(HOSPITAL)).json()
    assert declined["statusReason"]["coding"][0]["code"] == "no-capacity"
    provenance = client.get(
        "/fhir/Provenance?target=Task/task-2&_sort=-_lastUpdated", headers=as_org(HOSPITAL)
    ).json()
    assert provenance["entry"][0]["resource"]["agent"][0]["who"]["reference"] == CBO
    assert status("task-1") == "requested"  # a waitlist still takes referrals
