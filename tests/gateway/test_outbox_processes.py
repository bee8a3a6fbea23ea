"""The outbox across real processes: ``kill -9`` mid-delivery loses nothing, and two
processes on one database share the work without delivering anything twice at once.

Each worker process is Loopgate's app (``create_app`` with its lifespan, as ``loopgate serve``
runs it) with the webhook handler pointed at this test's receiver: run this module as
``python -m tests.gateway.test_outbox_processes`` with ``LOOPGATE_*`` and ``OUTBOX_TEST_*`` set.
"""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select

from adapters.webhooks import new_webhook_secret
from gateway.fhir.write_context import now_us
from gateway.outbox import enqueue, get_message, message_attempts
from gateway.store.engine import read_transaction, write_transaction
from gateway.store.tables import outbox_attempt_table, outbox_table
from tests.adapters.webhook_receiver import WebhookReceiver, free_port, running_receiver
from tests.conftest import store_signing_key

SECRET = new_webhook_secret()
PHI = {"patient": "Denise Rivera", "dob": "1961-03-02"}

pytestmark = pytest.mark.slow


@dataclass
class WorkerProcess:
    process: subprocess.Popen[bytes]
    url: str
    log_path: Path

    def stop(self) -> str:
        """SIGTERM (a graceful stop); returns everything it logged."""
        if self.process.poll() is None:
            self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.kill()
        return self.log_path.read_text()

    def kill(self) -> None:
        self.process.kill()  # SIGKILL: no lifespan, no cleanup
        self.process.wait(timeout=20)


def _start(
    database_url: str, receiver: WebhookReceiver, logs: Path, **settings: str
) -> WorkerProcess:
    port = free_port()
    environment = {
        **{k: v for k, v in os.environ.items() if not k.startswith("LOOPGATE_")},
        "LOOPGATE_DATABASE_URL": database_url,
        "LOOPGATE_PORT": str(port),
        "LOOPGATE_LOG_LEVEL": "debug",
        "LOOPGATE_OUTBOX_POLL_INTERVAL_S": "0.05",
        "OUTBOX_TEST_WEBHOOK_URL": receiver.url(),
        "OUTBOX_TEST_WEBHOOK_SECRET": SECRET,
        **{f"LOOPGATE_{name.upper()}": value for name, value in settings.items()},
    }
    # a file, not a pipe: nobody reads a pipe while the test runs, and a full one blocks
    log_path = logs / f"worker-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.gateway.test_outbox_processes"],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"worker process exited: {log_path.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return WorkerProcess(process, url, log_path)
        except httpx.TransportError:
            time.sleep(0.1)
    process.kill()
    process.wait()
    raise AssertionError("worker process did not come up")


def _enqueue_referrals(engine: Engine, keys: list[str], per_key: int) -> dict[str, list[str]]:
    """Each key's events in their own transaction, as a referral's changes would be."""
    ids: dict[str, list[str]] = {}
    for key in keys:
        with write_transaction(engine) as connection:
            ids[key] = [
                enqueue(
                    connection,
                    kind="webhook",
                    destination="cbo-1",
                    ordering_key=key,
                    payload={"type": "referral.updated", "data": {"n": n, **PHI}},
                )
                for n in range(per_key)
            ]
    return ids


def _statuses(engine: Engine) -> dict[str, str]:
    with read_transaction(engine) as connection:
        rows = connection.execute(select(outbox_table.c.id, outbox_table.c.status))
        return {row.id: row.status for row in rows}


def _wait_all_delivered(engine: Engine, count: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        statuses = _statuses(engine)
        if len(statuses) == count and set(statuses.values()) == {"delivered"}:
            return
        time.sleep(0.05)
    with read_transaction(engine) as connection:
        stuck = connection.execute(
            select(
                outbox_table.c.ordering_key,
                outbox_table.c.status,
                outbox_table.c.attempts,
                outbox_table.c.claimed_by,
                outbox_table.c.last_error,
            ).where(outbox_table.c.status != "delivered")
        ).all()
    raise AssertionError(f"not all delivered: {stuck}")


def _first_arrivals(receiver: WebhookReceiver) -> list[str]:
    seen: dict[str, None] = {}
    for message_id in receiver.arrivals:
        seen.setdefault(message_id)
    return list(seen)


@pytest.fixture
def receiver(engine: Engine, signing_key: dict[str, Any]) -> Iterator[WebhookReceiver]:
    store_signing_key(engine, signing_key)  # so no process has to make one
    with running_receiver(SECRET) as started:
        yield started


def test_sigkill_mid_delivery__the_message_is_delivered_after_restart(
    database_url: str, engine: Engine, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    ids = _enqueue_referrals(engine, ["task-a", "task-b"], per_key=3)
    everything = [message_id for key in ids.values() for message_id in key]
    receiver.stall(1)
    first = _start(database_url, receiver, tmp_path, outbox_lease_s="3")
    assert receiver.wait_until(lambda r: len(r.arrivals) >= 1, timeout=20)
    first.kill()
    stalled = receiver.arrivals[0]
    with read_transaction(engine) as connection:
        killed_with = get_message(connection, stalled, now=now_us())
    assert killed_with is not None
    assert (killed_with.status, killed_with.in_flight) == ("pending", True)
    receiver.release()  # its answer goes to a dead socket

    second = _start(database_url, receiver, tmp_path, outbox_lease_s="3")
    try:
        _wait_all_delivered(engine, len(everything), timeout=30)
    finally:
        log = second.stop()

    assert receiver.arrivals.count(stalled) == 2  # at least once: the killed try, then again
    assert set(receiver.arrivals) == set(everything)
    assert all(d.verified for d in receiver.deliveries)
    arrived = _first_arrivals(receiver)
    for key_ids in ids.values():
        assert [i for i in arrived if i in key_ids] == key_ids  # order per key
    with read_transaction(engine) as connection:
        attempts = message_attempts(connection, stalled)
    assert [(a.attempt, a.outcome, a.error) for a in attempts] == [
        (1, "abandoned", "lease expired"),
        (2, "delivered", None),
    ]
    assert attempts[0].worker != attempts[1].worker
    assert "Rivera" not in log


def test_two_processes__share_the_outbox_and_never_deliver_one_message_twice_at_once(
    database_url: str, engine: Engine, receiver: WebhookReceiver, tmp_path: Path
) -> None:
    receiver.delay_s = 0.01
    small = {"outbox_batch_size": "3", "outbox_concurrency": "4"}
    workers = [_start(database_url, receiver, tmp_path, **small) for _ in range(2)]
    try:
        ids = _enqueue_referrals(engine, [f"task-{n}" for n in range(30)], per_key=3)
        everything = [message_id for key in ids.values() for message_id in key]
        _wait_all_delivered(engine, len(everything), timeout=30)
    finally:
        logs = [worker.stop() for worker in workers]

    assert receiver.overlapping_deliveries() == 0
    assert sorted(receiver.arrivals) == sorted(everything)  # each exactly once
    for key_ids in ids.values():
        assert [i for i in receiver.arrivals if i in key_ids] == key_ids
    with read_transaction(engine) as connection:
        workers_seen = set(connection.execute(select(outbox_attempt_table.c.worker)).scalars())
    assert len(workers_seen) == 2  # both did some of the work
    assert not any("Rivera" in log for log in logs)


def _serve_from_environment() -> None:
    """The worker process: Loopgate's app from ``LOOPGATE_*`` plus a webhook handler that
    sends every destination's messages to ``OUTBOX_TEST_WEBHOOK_URL``."""
    import uvicorn

    from gateway.app import create_app
    from gateway.logs import configure_logging
    from gateway.outbox import webhook_handler
    from gateway.settings import Settings

    settings = Settings()
    configure_logging(settings.log_level)
    target = (os.environ["OUTBOX_TEST_WEBHOOK_URL"], os.environ["OUTBOX_TEST_WEBHOOK_SECRET"])
    http = httpx.AsyncClient()
    app = create_app(
        settings,
        outbox_handlers={"webhook": webhook_handler(http, webhook_target=lambda _: target)},
    )
    uvicorn.run(app, host="127.0.0.1", port=settings.port, log_level="warning")


if __name__ == "__main__":
    _serve_from_environment()
