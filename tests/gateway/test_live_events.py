"""Live updates: each organization's referral events as Server-Sent Events at /api/v1/events,
read from a real uvicorn server as they come, on SQLite or PostgreSQL.

No assertion waits on a clock: a reader takes lines until the events it expects have come
(keep-alive comments arrive every fraction of a second, so a generous deadline is only a
safety net against a hang).
"""

import asyncio
import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select

from gateway.app import create_app
from gateway.fhir.write_context import now_us
from gateway.live.hub import LiveHub
from gateway.live.tables import event_table
from gateway.live.tickets import TICKET_TTL_S, issue_ticket
from gateway.settings import Settings
from gateway.store.engine import make_engine, read_transaction, write_transaction
from tests.builders import CBO, HOSPITAL, OTHER_CBO, service_request, task
from tests.conftest import BASE_URL, store_signing_key
from tests.gateway.live_server import serving
from tests.partners import API, CBO_KEY, OTHER_CBO_KEY, key_headers, provision_partners
from tests.tokens import mint

PROBLEM = "application/problem+json"
SAFETY_DEADLINE_S = 30.0
PHI = ("Rivera", "Denise", "pat-1001", "MRN-0048213", "1986-03-14", "She needs")


def fast(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "outbox_worker": False,
            "events_poll_interval_s": 0.05,
            "events_keepalive_s": 0.2,
        }
    )


class Live:
    """A running Loopgate with both CBOs provisioned, and ways to act on it."""

    def __init__(self, base: str, app: FastAPI, engine: Engine) -> None:
        self.base = base
        self.app = app
        self.engine = engine
        self.http = httpx.Client(base_url=base, timeout=SAFETY_DEADLINE_S)
        self.hospital_fhir = {"Authorization": f"Bearer {mint(engine, organization=HOSPITAL)}"}
        api_token = mint(engine, organization=HOSPITAL, audience=f"{BASE_URL}{API}")
        self.hospital_api = {"Authorization": f"Bearer {api_token}"}

    def refer(self, task_id: str, owner: str = CBO) -> None:
        made = self.http.put(
            "/fhir/ServiceRequest/sr-food-2001", json=service_request(), headers=self.hospital_fhir
        )
        assert made.status_code in (200, 201), made.text
        made = self.http.put(
            f"/fhir/Task/{task_id}",
            json=task(task_id, owner={"reference": owner}),
            headers=self.hospital_fhir,
        )
        assert made.status_code == 201, made.text

    def hospital_moves(self, task_id: str, **changes: Any) -> None:
        current = self.http.get(f"/fhir/Task/{task_id}", headers=self.hospital_fhir).json()
        moved = self.http.put(
            f"/fhir/Task/{task_id}", json={**current, **changes}, headers=self.hospital_fhir
        )
        assert moved.status_code == 200, moved.text

    def cbo(self, path: str, body: Any = None, key: str = CBO_KEY) -> None:
        done = self.http.post(f"{API}{path}", json=body, headers=key_headers(key))
        assert done.is_success, done.text

    @contextmanager
    def stream(
        self, path: str = f"{API}/events", headers: dict[str, str] | None = None, **params: Any
    ) -> Iterator["EventReader"]:
        with self.http.stream(
            "GET", path, headers=key_headers() if headers is None else headers, params=params
        ) as response:
            assert response.status_code == 200, response.read()
            assert response.headers["content-type"].startswith("text/event-stream")
            yield EventReader(response)


class EventReader:
    """Parses an SSE response line by line (https://html.spec.whatwg.org/#event-stream-interpretation)."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.iter_lines()
        self.retry: int | None = None
        self.keep_alives = 0

    def take(self, count: int) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = []
        fields: dict[str, str] = {}
        deadline = time.monotonic() + SAFETY_DEADLINE_S
        while len(events) < count:
            assert time.monotonic() < deadline, f"only {events} came"
            line = next(self.lines)
            if line.startswith(":"):
                self.keep_alives += 1
            elif line:
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")
            elif "retry" in fields:
                self.retry = int(fields.pop("retry"))
            elif fields:
                events.append(
                    {"id": int(fields["id"]), "event": fields["event"], "raw": fields["data"]}
                    | {"data": json.loads(fields["data"])}
                )
                fields = {}
        return events

    def quiet_until_keep_alive(self) -> None:
        """Read until the next keep-alive comment, refusing any event before it."""
        before = self.keep_alives
        deadline = time.monotonic() + SAFETY_DEADLINE_S
        while self.keep_alives == before:
            assert time.monotonic() < deadline
            line = next(self.lines)
            assert not line.startswith(("id:", "event:", "data:")), line
            if line.startswith(":"):
                self.keep_alives += 1


@pytest.fixture
def live(settings: Settings, engine: Engine, signing_key: dict[str, Any]) -> Iterator[Live]:
    store_signing_key(engine, signing_key)
    app = create_app(fast(settings), engine=engine)
    with serving(app) as base:
        provision_partners(TestClient(app))
        running = Live(base, app, engine)
        yield running
        running.http.close()


def kinds(events: list[dict[str, Any]]) -> list[tuple[str, str]]:
    return [(e["event"], e["data"]["data"]["referral_id"]) for e in events]


# --- what a stream carries --------------------------------------------------------------------


def test_events__both_ends_of_a_referral_see_each_change_in_order_and_nothing_else(
    live: Live,
) -> None:
    with (
        live.stream() as cbo,
        live.stream(headers=live.hospital_api) as hospital,
        live.stream(headers=key_headers(OTHER_CBO_KEY)) as other,
    ):
        live.refer("task-1")
        live.cbo("/referrals/task-1/accept")
        live.cbo("/referrals/task-1/messages", {"text": "She needs a Tuesday slot."})
        live.hospital_moves(
            "task-1", status="cancelled", statusReason={"text": "Patient moved away"}
        )
        seen = cbo.take(4)
        assert [e["event"] for e in seen] == [
            "referral.created",
            "referral.updated",
            "message.created",
            "referral.cancelled",
        ]
        assert [e["id"] for e in seen] == sorted(e["id"] for e in seen)
        created, accepted, message, cancelled = (e["data"] for e in seen)
        assert created["type"] == "referral.created"
        assert created["data"] == {
            "referral_id": "task-1",
            "version": 1,
            "status": "requested",
            "changed_by": HOSPITAL,
            "url": f"{BASE_URL}{API}/referrals/task-1",
        }
        assert accepted["data"] == {
            "referral_id": "task-1",
            "version": 2,
            "status": "accepted",
            "previous_status": "requested",
            "changed_by": CBO,
            "url": f"{BASE_URL}{API}/referrals/task-1",
        }
        assert message["data"]["message_number"] == 1
        assert message["data"]["url"].endswith("/referrals/task-1/messages")
        assert cancelled["data"]["status"] == "cancelled"
        assert cancelled["data"]["previous_status"] == "accepted"
        for event in seen:
            assert not any(phi in event["raw"] for phi in PHI), event["raw"]

        # the hospital follows the referral it made, with the same events
        assert [e["event"] for e in hospital.take(4)] == [e["event"] for e in seen]

        # the other food bank's stream had nothing of it: its first event is its own referral
        live.refer("task-2", owner=OTHER_CBO)
        assert kinds(other.take(1)) == [("referral.created", "task-2")]
        assert cbo.retry is not None
        assert cbo.retry > 0


def test_events__a_hand_over_is_new_for_the_new_owner_and_an_update_for_the_requester(
    live: Live,
) -> None:
    live.refer("task-1")
    with (
        live.stream() as cbo,
        live.stream(headers=live.hospital_api) as hospital,
        live.stream(headers=key_headers(OTHER_CBO_KEY)) as other,
    ):
        live.hospital_moves("task-1", owner={"reference": OTHER_CBO})
        assert kinds(other.take(1)) == [("referral.created", "task-1")]
        assert kinds(hospital.take(1)) == [("referral.updated", "task-1")]
        # the food bank, no longer the owner, is not told (its stream stays quiet)
        cbo.quiet_until_keep_alive()


def test_events__a_stream_starts_now_unless_asked_to_resume(live: Live) -> None:
    live.refer("task-1")
    with live.stream() as cbo:
        live.cbo("/referrals/task-1/accept")
        assert [e["event"] for e in cbo.take(1)] == ["referral.updated"]
    with live.stream(since=0) as cbo:
        assert [e["event"] for e in cbo.take(2)] == ["referral.created", "referral.updated"]


# --- resume -----------------------------------------------------------------------------------


def test_events__last_event_id_resumes_without_loss_or_repeat(live: Live) -> None:
    live.refer("task-1")
    live.refer("task-2")
    live.refer("task-3")
    with live.stream(since=0) as cbo:
        first = cbo.take(2)
    assert kinds(first) == [("referral.created", "task-1"), ("referral.created", "task-2")]

    # what committed while the client was away comes first, then what commits afterwards
    live.cbo("/referrals/task-1/accept")
    resumed_headers = key_headers(**{"Last-Event-ID": str(first[-1]["id"])})
    with live.stream(headers=resumed_headers, since=0) as cbo:  # the header wins over since
        live.cbo("/referrals/task-2/accept")
        rest = cbo.take(3)
    assert kinds(rest) == [
        ("referral.created", "task-3"),
        ("referral.updated", "task-1"),
        ("referral.updated", "task-2"),
    ]
    ids = [e["id"] for e in first + rest]
    assert ids == list(range(ids[0], ids[0] + 5))

    with live.stream(since=rest[0]["id"]) as cbo:
        assert [e["id"] for e in cbo.take(2)] == ids[3:]


def test_events__a_bad_last_event_id_is_a_400_problem(live: Live) -> None:
    for value in ("abc", "-1", "1.5"):
        response = live.http.get(f"{API}/events", headers=key_headers(**{"Last-Event-ID": value}))
        assert response.status_code == 400, value
        assert response.headers["content-type"] == PROBLEM


# --- several processes ------------------------------------------------------------------------


def test_events__a_commit_through_another_app_instance_reaches_the_stream(
    live: Live, settings: Settings, database_url: str
) -> None:
    """Two Loopgates on one database: a change the second commits reaches a stream the first
    serves (the first learns of it by polling; nothing in its process announced it)."""
    second = create_app(fast(settings), engine=make_engine(database_url))
    with TestClient(second, base_url=BASE_URL) as other_process, live.stream() as cbo:
        put = other_process.put(
            "/fhir/ServiceRequest/sr-food-2001", json=service_request(), headers=live.hospital_fhir
        )
        assert put.status_code in (200, 201), put.text
        put = other_process.put(
            "/fhir/Task/task-9", json=task("task-9"), headers=live.hospital_fhir
        )
        assert put.status_code == 201, put.text
        accepted = other_process.post(f"{API}/referrals/task-9/accept", headers=key_headers())
        assert accepted.status_code == 200, accepted.text
        assert kinds(cbo.take(2)) == [
            ("referral.created", "task-9"),
            ("referral.updated", "task-9"),
        ]


# --- credentials ------------------------------------------------------------------------------


def test_events__missing_or_bad_credentials_are_401_problems(live: Live, engine: Engine) -> None:
    fhir_audience = mint(engine, organization=CBO)
    for headers in (
        {},
        key_headers("lgk_not-a-key-we-ever-issued-0123456789abcdef"),
        {"Authorization": f"Bearer {fhir_audience}"},
    ):
        for method, path in (("GET", f"{API}/events"), ("POST", f"{API}/events/tickets")):
            response = live.http.request(method, path, headers=headers)
            assert response.status_code == 401, (method, path, headers)
            assert response.headers["content-type"] == PROBLEM
            assert response.json()["status"] == 401


def test_events__a_credential_of_no_organization_is_refused(live: Live, engine: Engine) -> None:
    nobody = mint(engine, organization=None, audience=f"{BASE_URL}{API}")
    response = live.http.get(f"{API}/events", headers={"Authorization": f"Bearer {nobody}"})
    assert response.status_code == 403
    assert response.headers["content-type"] == PROBLEM


# --- tickets for browsers ---------------------------------------------------------------------


def ticket_url(live: Live, key: str = CBO_KEY) -> str:
    response = live.http.post(f"{API}/events/tickets", headers=key_headers(key))
    assert response.status_code == 201, response.text
    answer = response.json()
    assert answer["expires_in"] == TICKET_TTL_S
    assert answer["url"].startswith(f"{BASE_URL}{API}/events/stream/")
    return str(answer["url"]).removeprefix(BASE_URL)


def test_tickets__open_the_stream_once_without_a_header_and_stay_out_of_the_log(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="loopgate.access")
    path = ticket_url(live)
    ticket = path.rsplit("/", 1)[1]
    with live.stream(path, headers={}) as browser:
        live.refer("task-1")
        assert kinds(browser.take(1)) == [("referral.created", "task-1")]
        again = live.http.get(path)
        assert again.status_code == 401
        assert again.headers["content-type"] == PROBLEM
        assert ticket not in again.text
        assert again.json()["instance"] == f"{API}/events/stream/{{ticket}}"
    assert ticket not in caplog.text
    assert "/events/stream/{ticket}" in caplog.text


def test_tickets__expired_or_unknown_ones_are_401(live: Live) -> None:
    with write_transaction(live.engine) as connection:
        expired = issue_ticket(
            connection,
            organization=CBO,
            client_id=None,
            now=now_us() - (TICKET_TTL_S + 1) * 1_000_000,
        )
    for ticket in (expired, "x" * 43, "not-even-the-shape"):
        response = live.http.get(f"{API}/events/stream/{ticket}")
        assert response.status_code == 401, ticket
        assert response.headers["content-type"] == PROBLEM


def test_tickets__stream_the_organization_that_asked_for_them(live: Live) -> None:
    with live.stream(ticket_url(live, OTHER_CBO_KEY), headers={}) as browser:
        live.refer("task-1")  # the food bank's
        live.refer("task-2", owner=OTHER_CBO)
        assert kinds(browser.take(1)) == [("referral.created", "task-2")]


# --- shutdown and retention -------------------------------------------------------------------


def test_events__streams_end_when_the_app_shuts_down(live: Live) -> None:
    hub: LiveHub = live.app.state.live
    with live.stream() as cbo:
        live.refer("task-1")
        cbo.take(1)
        loop = hub._loop
        assert loop is not None
        asyncio.run_coroutine_threadsafe(hub.stop(), loop).result(timeout=SAFETY_DEADLINE_S)
        rest = list(cbo.lines)  # the response ends: the iterator runs out
        assert not any(line.startswith("data:") for line in rest)


def test_events__purged_after_retention_with_numbering_kept(live: Live) -> None:
    live.refer("task-1")
    with live.stream(since=0) as cbo:
        [created] = cbo.take(1)
    purged, _ = LiveHub(live.engine, poll_interval_s=1, retention_s=0).purge_now()
    assert purged >= 1
    with read_transaction(live.engine) as connection:
        assert connection.execute(select(func.count()).select_from(event_table)).scalar() == 0
    with live.stream(since=0) as cbo:
        live.cbo("/referrals/task-1/accept")
        [accepted] = cbo.take(1)
    assert accepted["id"] == created["id"] + 1
