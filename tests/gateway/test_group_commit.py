"""Group commit on SQLite (gateway/store/write_batches.py): writes that arrive together, by
the FHIR door or the CBOs' JSON API, are committed in one transaction, each still succeeds or
fails on its own, and no client hears "done" before its write is committed."""

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, event, select

from conformance.access import AccessContext
from gateway.fhir.service import FhirService, WriteResult
from gateway.settings import Settings
from gateway.store.engine import (
    is_sqlite,
    make_engine,
    read_transaction,
    when_committed,
    write_transaction,
)
from gateway.store.tables import ResourceRow
from gateway.store.write_batches import WriteBatcher
from tests.builders import HOSPITAL, as_org, service_request, task
from tests.conftest import FHIR_BASE
from tests.partners import API, key_headers, provision_partners


@pytest.fixture(autouse=True)
def _sqlite_only(engine: Engine) -> None:
    if not is_sqlite(engine):
        pytest.skip("group commit is SQLite's; PostgreSQL writes commit one by one")


@pytest.fixture
def observer(settings: Settings) -> Iterator[Engine]:
    """A second engine on the same file: what another server process would see."""
    other = make_engine(settings.database_url)
    yield other
    other.dispose()


def _patient(identifier: str) -> dict[str, Any]:
    return {
        "resourceType": "Patient",
        "identifier": [{"system": "urn:mrn", "value": identifier}],
    }


def _stored_ids(engine: Engine, resource_type: str = "Patient") -> set[str]:
    with read_transaction(engine) as connection:
        rows = connection.execute(
            select(ResourceRow.id).where(ResourceRow.resource_type == resource_type)
        )
        return {row[0] for row in rows}


def _seen_at_each_commit(engine: Engine, count_query: str) -> list[int]:
    """``count_query`` as the committing transaction sees it, recorded at each commit."""
    seen: list[int] = []

    def on_commit(connection: Any) -> None:
        cursor = connection.connection.dbapi_connection.cursor()
        cursor.execute(count_query)
        seen.append(cursor.fetchone()[0])
        cursor.close()

    event.listen(engine, "commit", on_commit)
    return seen


def _in_threads(calls: list[Callable[[], Any]]) -> tuple[list[threading.Thread], list[Any]]:
    """Start each call in its own thread; the threads, and the list their results fill."""
    results: list[Any] = [None] * len(calls)

    def run(index: int) -> None:
        results[index] = calls[index]()

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    return threads, results


def _wait_until(condition: Callable[[], bool], timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def _while_writer_busy(
    engine: Engine, client: TestClient, calls: list[Callable[[], Any]]
) -> list[Any]:
    """Run ``calls`` in threads while another writer holds SQLite's write turn, so that all
    of them queue; then let them through together. Their results."""
    batches: WriteBatcher = client.app.state.fhir.batches  # type: ignore[attr-defined]
    with write_transaction(engine):
        threads, results = _in_threads(calls)
        _wait_until(lambda: batches.waiting == len(calls))
    for thread in threads:
        thread.join(timeout=60)
    return results


def test_writes_that_arrive_together__commit_once_and_are_visible_when_answered(
    client: TestClient, engine: Engine, observer: Engine
) -> None:
    seen = _seen_at_each_commit(
        engine, "SELECT count(*) FROM resource WHERE resource_type = 'Patient'"
    )

    def create(index: int) -> Callable[[], tuple[int, bool]]:
        def call() -> tuple[int, bool]:
            response = client.post(
                "/fhir/Patient", json=_patient(f"mrn-{index}"), headers=as_org(HOSPITAL)
            )
            # another process reads it the moment the client is answered
            visible = response.json()["id"] in _stored_ids(observer)
            return response.status_code, visible

        return call

    results = _while_writer_busy(engine, client, [create(i) for i in range(8)])

    assert results == [(201, True)] * 8
    assert len(_stored_ids(engine)) == 8
    # one commit took all eight: no transaction ever committed only some of them
    assert 8 in seen
    assert [count for count in seen if 0 < count < 8] == []


def test_a_failing_write__rolls_back_alone_and_the_rest_of_its_batch_commits(
    client: TestClient, engine: Engine
) -> None:
    existing = client.put(
        "/fhir/Patient/existing",
        json={"resourceType": "Patient", "id": "existing"},
        headers=as_org(HOSPITAL),
    )
    assert existing.status_code == 201
    doomed = {
        "resourceType": "Bundle",
        "type": "transaction",
        "entry": [
            {
                "fullUrl": "urn:uuid:0d9c5a0e-1b1e-4a0b-9a53-5f8c3f1f0001",
                "resource": _patient("doomed"),
                "request": {"method": "POST", "url": "Patient"},
            },
            {  # a stale version: found only in the database, after the Bundle queued
                "resource": {"resourceType": "Patient", "id": "existing", "active": True},
                "request": {"method": "PUT", "url": "Patient/existing", "ifMatch": 'W/"7"'},
            },
        ],
    }

    def post(path: str, body: dict[str, Any]) -> Callable[[], Any]:
        return lambda: client.post(path, json=body, headers=as_org(HOSPITAL))

    calls = [post("/fhir/Patient", _patient(f"kept-{i}")) for i in range(3)]
    calls.insert(1, post("/fhir", doomed))
    responses = _while_writer_busy(engine, client, calls)

    assert [r.status_code for r in responses] == [201, 412, 201, 201]
    assert responses[1].json()["resourceType"] == "OperationOutcome"
    identifiers = {
        patient["resource"]["identifier"][0]["value"]
        for patient in client.get(
            "/fhir/Patient?identifier=urn:mrn|", headers=as_org(HOSPITAL)
        ).json()["entry"]
    }
    assert identifiers == {"kept-0", "kept-1", "kept-2"}
    stale = client.get("/fhir/Patient/existing", headers=as_org(HOSPITAL)).json()
    assert stale["meta"]["versionId"] == "1"


def test_cbo_actions_that_arrive_together__commit_together_each_with_its_own_answer(
    client: TestClient, engine: Engine
) -> None:
    provision_partners(client)
    client.put(
        "/fhir/ServiceRequest/sr-food-2001", json=service_request(), headers=as_org(HOSPITAL)
    )
    for task_id in ("t-1", "t-2", "t-3"):
        created = client.put(f"/fhir/Task/{task_id}", json=task(task_id), headers=as_org(HOSPITAL))
        assert created.status_code == 201, created.text
    # the key's first use records it (a write of its own, once a minute at most): done here
    assert client.get(f"{API}/referrals", headers=key_headers()).status_code == 200
    seen = _seen_at_each_commit(engine, "SELECT count(*) FROM task_party WHERE status = 'accepted'")

    def accept(task_id: str) -> Callable[[], Any]:
        return lambda: client.post(f"{API}/referrals/{task_id}/accept", headers=key_headers())

    responses = _while_writer_busy(
        engine, client, [accept("t-1"), accept("t-2"), accept("t-missing"), accept("t-3")]
    )

    assert [r.status_code for r in responses] == [200, 200, 404, 200]
    assert responses[2].headers["content-type"].startswith("application/problem+json")
    for task_id in ("t-1", "t-2", "t-3"):
        stored = client.get(f"/fhir/Task/{task_id}", headers=as_org(HOSPITAL)).json()
        assert stored["status"] == "accepted"
    assert 3 in seen
    assert [count for count in seen if 0 < count < 3] == []


def _service(engine: Engine) -> FhirService:
    return FhirService(engine, fhir_base=FHIR_BASE)


HOSPITAL_ACTOR = AccessContext(organization=HOSPITAL, client_id="test-client")


def test_a_transaction_sqlite_rolled_back_itself__fails_every_write_of_the_batch(
    engine: Engine,
) -> None:
    service = _service(engine)
    batches = WriteBatcher(engine)

    def ends_the_transaction() -> None:
        with write_transaction(engine) as connection:
            connection.exec_driver_sql("ROLLBACK")  # as SQLite does on a full disk
            raise OSError("disk full")

    async def main() -> tuple[Any, ...]:
        return await asyncio.gather(
            batches.run(service.prepare_create(HOSPITAL_ACTOR, _patient("first"))),
            batches.run(ends_the_transaction),
            batches.run(service.prepare_create(HOSPITAL_ACTOR, _patient("third"))),
            return_exceptions=True,
        )

    results = asyncio.run(main())

    assert [type(result) for result in results] == [OSError] * 3
    assert _stored_ids(engine) == set()
    # the connection went back to the pool clean: the next batch commits
    after = asyncio.run(batches.run(service.prepare_create(HOSPITAL_ACTOR, _patient("after"))))
    assert _stored_ids(engine) == {after.stored.id}


def test_commit_callbacks__run_after_the_commit_and_only_for_writes_kept(
    engine: Engine, observer: Engine
) -> None:
    service = _service(engine)
    batches = WriteBatcher(engine)
    seen_by_callbacks: list[set[str]] = []

    def write(identifier: str, *, fail: bool) -> Callable[[], None]:
        create = service.prepare_create(HOSPITAL_ACTOR, _patient(identifier))

        def run() -> None:
            create()
            when_committed(engine, [lambda: seen_by_callbacks.append(_stored_ids(observer))])
            if fail:
                raise ValueError("refused after writing")

        return run

    async def main() -> tuple[Any, ...]:
        return await asyncio.gather(
            batches.run(write("kept", fail=False)),
            batches.run(write("refused", fail=True)),
            return_exceptions=True,
        )

    results = asyncio.run(main())

    assert results[0] is None
    assert isinstance(results[1], ValueError)
    stored = _stored_ids(engine)
    assert len(stored) == 1
    # one callback, the kept write's, and it ran once its write was visible to others
    assert seen_by_callbacks == [stored]


def test_a_failing_commit_callback__leaves_the_committed_writes_answered_as_done(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    service = _service(engine)
    batches = WriteBatcher(engine)

    def refuse() -> None:
        raise RuntimeError("Denise Rivera")  # text that must not reach the log

    def write(identifier: str) -> Callable[[], WriteResult]:
        create = service.prepare_create(HOSPITAL_ACTOR, _patient(identifier))

        def run() -> WriteResult:
            result = create()
            when_committed(engine, [refuse])
            return result

        return run

    async def main() -> tuple[Any, ...]:
        return await asyncio.gather(
            batches.run(write("first")), batches.run(write("second")), return_exceptions=True
        )

    results = asyncio.run(main())

    assert [type(result) for result in results] == [WriteResult, WriteResult]
    assert _stored_ids(engine) == {result.stored.id for result in results}
    assert "RuntimeError" in caplog.text
    assert "Denise" not in caplog.text


def _sqlite_temp_files() -> list[str]:
    """Files this process holds open that SQLite made for itself (its ``etilqs_`` temp files,
    unlinked as soon as they are opened)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # a descriptor closed while we looked
            if "etilqs_" in os.readlink(f"/proc/self/fd/{fd}"):
                found.append(fd)
    return found


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs Linux's /proc")
def test_a_batched_writes_savepoint_journal__stays_in_memory(engine: Engine) -> None:
    # Each write of a batch runs in a savepoint, and SQLite journals the pages it changes
    # there; on disk, past 64 KiB, that doubled the CPU of a referral's inserts.
    service = _service(engine)
    for n in range(300):
        service.create(HOSPITAL_ACTOR, _patient(f"mrn-{n}"))
    bodies_before = _bodies(engine)
    seen: list[list[str]] = []

    def rewrite_every_body() -> None:
        with write_transaction(engine) as connection:
            connection.exec_driver_sql("UPDATE resource_version SET body = body || ' '")
            seen.append(_sqlite_temp_files())
            raise RuntimeError("undo it")

    async def main() -> tuple[Any, ...]:
        return await asyncio.gather(
            WriteBatcher(engine).run(rewrite_every_body), return_exceptions=True
        )

    results = asyncio.run(main())

    assert [type(result) for result in results] == [RuntimeError]
    assert seen == [[]]
    assert _bodies(engine) == bodies_before  # rolled back from the journal in memory


def _bodies(engine: Engine) -> list[str]:
    with read_transaction(engine) as connection:
        rows = connection.exec_driver_sql("SELECT body FROM resource_version ORDER BY id")
        return [row[0] for row in rows]
