"""Concurrent writers on one database never lose an update (http.html#concurrency).

Each writer is its own Loopgate app with its own connection pool, so the requests really race
in the database (row locks on PostgreSQL, the write lock on SQLite), not in one event loop.
"""

import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select

from gateway.app import create_app
from gateway.live.tables import event_table
from gateway.settings import Settings
from gateway.store.engine import make_engine, read_transaction
from tests.builders import CBO, HOSPITAL, as_org, create_referral, moved, task
from tests.conftest import BASE_URL

WRITERS = 6


@pytest.fixture
def writers(settings: Settings, engine: Engine) -> Iterator[list[TestClient]]:
    """Independent app instances (separate engines) sharing the test database."""
    with ExitStack() as stack:
        clients = []
        for _ in range(WRITERS):
            app = create_app(settings, engine=make_engine(settings.database_url))
            client = stack.enter_context(TestClient(app, base_url=BASE_URL))
            # FastAPI builds its routes on the first request; do that here, one app at a
            # time, so the race below is in the database and not in route construction.
            assert client.get("/fhir/metadata").status_code == 200
            clients.append(client)
        yield clients


def _race(clients: list[TestClient], work: Callable[[int, TestClient], Any]) -> list[Any]:
    barrier = threading.Barrier(len(clients))
    results: list[Any] = [None] * len(clients)

    def run(index: int, client: TestClient) -> None:
        barrier.wait()
        results[index] = work(index, client)

    threads = [threading.Thread(target=run, args=(i, c)) for i, c in enumerate(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_if_match__exactly_one_of_racing_updates_wins(
    client: TestClient, writers: list[TestClient]
) -> None:
    current = create_referral(client)

    def accept(index: int, writer: TestClient) -> int:
        body = moved(current, status="accepted", businessStatus={"text": f"writer {index}"})
        response = writer.put(
            "/fhir/Task/task-1", json=body, headers=as_org(CBO, **{"If-Match": 'W/"1"'})
        )
        return response.status_code

    statuses = _race(writers, accept)
    assert sorted(statuses) == [200] + [412] * (WRITERS - 1)
    history = client.get("/fhir/Task/task-1/_history", headers=as_org(HOSPITAL)).json()
    assert history["total"] == 2


def test_read_modify_write__every_racing_note_is_kept(
    client: TestClient, writers: list[TestClient]
) -> None:
    create_referral(client)

    def add_note(index: int, writer: TestClient) -> int:
        for attempt in range(50):
            latest = writer.get("/fhir/Task/task-1", headers=as_org(CBO))
            task = latest.json()
            notes = [*task.get("note", []), {"text": f"note from writer {index}"}]
            response = writer.put(
                "/fhir/Task/task-1",
                json=moved(task, note=notes),
                headers=as_org(CBO, **{"If-Match": latest.headers["etag"]}),
            )
            if response.status_code == 200:
                return attempt
            assert response.status_code == 412, response.text
        raise AssertionError("writer never got its note in")

    _race(writers, add_note)
    final = client.get("/fhir/Task/task-1", headers=as_org(HOSPITAL)).json()
    assert sorted(n["text"] for n in final["note"]) == sorted(
        f"note from writer {i}" for i in range(WRITERS)
    )
    assert final["meta"]["versionId"] == str(WRITERS + 1)
    provenance = client.get(
        "/fhir/Provenance?target=Task/task-1&_summary=count", headers=as_org(HOSPITAL)
    ).json()
    assert provenance["total"] == WRITERS + 1


def test_blind_updates__each_gets_its_own_version(
    client: TestClient, writers: list[TestClient]
) -> None:
    for index in range(WRITERS):
        client.put(
            f"/fhir/Patient/p{index}",
            json={"resourceType": "Patient", "id": f"p{index}"},
            headers=as_org(HOSPITAL),
        )

    def rename(index: int, writer: TestClient) -> str:
        body = {"resourceType": "Patient", "id": "shared", "name": [{"family": f"F{index}"}]}
        response = writer.put("/fhir/Patient/shared", json=body, headers=as_org(HOSPITAL))
        assert response.status_code in (200, 201), response.text
        return str(response.json()["meta"]["versionId"])

    versions = _race(writers, rename)
    assert sorted(versions, key=int) == [str(v) for v in range(1, WRITERS + 1)]
    history = client.get("/fhir/Patient/shared/_history", headers=as_org(HOSPITAL)).json()
    assert history["total"] == WRITERS
    families = {e["resource"]["name"][0]["family"] for e in history["entry"]}
    assert families == {f"F{i}" for i in range(WRITERS)}


def test_conditional_create__racing_creates_make_one_resource(
    client: TestClient, writers: list[TestClient]
) -> None:
    def create(index: int, writer: TestClient) -> int:
        body = {"resourceType": "Patient", "identifier": [{"system": "urn:mrn", "value": "race"}]}
        response = writer.post(
            "/fhir/Patient",
            json=body,
            headers=as_org(HOSPITAL, **{"If-None-Exist": "identifier=urn:mrn|race"}),
        )
        return response.status_code

    statuses = _race(writers, create)
    assert sorted(statuses) == [200] * (WRITERS - 1) + [201]
    found = client.get("/fhir/Patient?identifier=urn:mrn|race", headers=as_org(HOSPITAL)).json()
    assert found["total"] == 1


def test_live_events__racing_referrals_are_numbered_one_after_another(
    client: TestClient, writers: list[TestClient], engine: Engine
) -> None:
    """Each organization's event numbers stay gapless and unique when writers race: the
    counter row hands them out in commit order (a stream resuming after one never skips)."""
    create_referral(client)

    def refer(index: int, writer: TestClient) -> int:
        response = writer.put(
            f"/fhir/Task/race-{index}", json=task(f"race-{index}"), headers=as_org(HOSPITAL)
        )
        return response.status_code

    assert _race(writers, refer) == [201] * WRITERS
    with read_transaction(engine) as connection:
        rows = connection.execute(
            select(event_table.c.organization, event_table.c.seq, event_table.c.referral_id)
        ).all()
    for organization in (CBO, HOSPITAL):
        seqs = sorted(row.seq for row in rows if row.organization == organization)
        assert seqs == list(range(1, WRITERS + 2))  # task-1 and the racers
