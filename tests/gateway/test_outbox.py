"""The outbox in one process: enqueue in the caller's transaction, the worker's claims, order
per key, retries with backoff, give-up, leases, and the operator's CLI.

Only the outside world is faked: CBO endpoints are real HTTP servers on loopback ports
(tests/adapters/webhook_receiver.py); the database is the real test database.
"""

import argparse
import asyncio
import io
import itertools
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import httpx
import orjson
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, update

from adapters.webhooks import new_webhook_secret
from gateway.app import create_app
from gateway.fhir.write_context import now_us
from gateway.outbox import (
    DeliveryResult,
    Handler,
    OutboxMessage,
    OutboxOptions,
    OutboxWorker,
    RetryPolicy,
    enqueue,
    get_message,
    message_attempts,
    webhook_handler,
)
from gateway.outbox.admin import retry_message
from gateway.outbox.claims import claim_due, record_results
from gateway.outbox.commands import add_outbox_commands, run_outbox_command
from gateway.settings import Settings
from gateway.store.engine import make_engine, read_transaction, write_transaction
from gateway.store.tables import outbox_table
from tests.adapters.webhook_receiver import WebhookReceiver, running_receiver
from tests.conftest import BASE_URL, store_signing_key

SECRET = new_webhook_secret()
PHI_PAYLOAD = {"type": "referral.created", "data": {"patient": "Denise Rivera", "dob": "1961"}}
FAST = OutboxOptions(
    poll_interval_s=0.05,
    batch_size=8,
    concurrency=8,
    lease_s=5.0,
    shutdown_grace_s=1.0,
    retry=RetryPolicy(base_s=0.1, cap_s=0.8, give_up_s=60.0),
)


def _enqueue(
    engine: Engine, destination: str, key: str | None, count: int = 1, **data
) -> list[str]:
    with write_transaction(engine) as connection:
        return [
            enqueue(
                connection,
                kind="webhook",
                destination=destination,
                ordering_key=key,
                payload={"type": "referral.updated", "data": {"n": n, **data}},
            )
            for n in range(count)
        ]


def _message(engine: Engine, message_id: str):
    with read_transaction(engine) as connection:
        found = get_message(connection, message_id, now=now_us())
    assert found is not None
    return found


def _attempts(engine: Engine, message_id: str):
    with read_transaction(engine) as connection:
        return message_attempts(connection, message_id)


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


def _webhooks(http: httpx.AsyncClient, targets: dict[str, WebhookReceiver]) -> dict[str, Handler]:
    def target(destination: str) -> tuple[str, str] | None:
        receiver = targets.get(destination)
        return None if receiver is None else (receiver.url(), SECRET)

    return {"webhook": webhook_handler(http, webhook_target=target)}


def _run(scenario: Callable[[httpx.AsyncClient], Any]) -> None:
    async def go() -> None:
        async with httpx.AsyncClient() as http:
            await scenario(http)

    asyncio.run(go())


def _enqueue_then_fail(engine: Engine, ids: list[str]) -> None:
    with write_transaction(engine) as connection:
        ids.append(
            enqueue(
                connection,
                kind="webhook",
                destination="cbo-1",
                ordering_key="task-1",
                payload=PHI_PAYLOAD,
            )
        )
        raise RuntimeError("the change that caused it failed")


@pytest.fixture
def receiver() -> Iterator[WebhookReceiver]:
    with running_receiver(SECRET) as started:
        yield started


# --- enqueue and the worker in the app -------------------------------------------------------


def test_enqueue__a_rolled_back_message_is_never_sent_a_committed_one_once(
    settings: Settings, engine: Engine, signing_key: dict, receiver: WebhookReceiver
) -> None:
    store_signing_key(engine, signing_key)
    http = httpx.AsyncClient()
    app = create_app(
        # polling alone would take an hour: a delivery proves the wake-up worked
        settings.model_copy(update={"outbox_poll_interval_s": 3600.0}),
        engine=engine,
        outbox_handlers=_webhooks(http, {"cbo-1": receiver}),
    )
    with TestClient(app, base_url=BASE_URL):
        assert app.state.outbox.running
        rolled_back: list[str] = []
        with pytest.raises(RuntimeError):
            _enqueue_then_fail(engine, rolled_back)
        with write_transaction(engine) as connection:
            committed = enqueue(
                connection,
                kind="webhook",
                destination="cbo-1",
                ordering_key="task-1",
                payload=PHI_PAYLOAD,
            )
        app.state.outbox.wake()  # from this thread, as a sync endpoint would
        assert receiver.wait_until(lambda r: len(r.deliveries) == 1, timeout=30)
        time.sleep(0.3)
    asyncio.run(http.aclose())

    assert receiver.arrivals == [committed]
    delivery = receiver.deliveries[0]
    assert delivery.verified
    assert delivery.headers["webhook-id"] == committed
    assert delivery.body == orjson.dumps(PHI_PAYLOAD)
    message = _message(engine, committed)
    assert (message.status, message.attempts, message.last_error) == ("delivered", 1, None)
    [attempt] = _attempts(engine, committed)
    assert (attempt.outcome, attempt.status_code, attempt.error) == ("delivered", 200, None)
    with read_transaction(engine) as connection:
        assert get_message(connection, rolled_back[0], now=now_us()) is None


def test_app__runs_no_worker_when_switched_off(
    settings: Settings, engine: Engine, signing_key: dict
) -> None:
    store_signing_key(engine, signing_key)

    async def never(_: OutboxMessage) -> DeliveryResult:
        raise AssertionError("no worker should run")

    off = settings.model_copy(update={"outbox_worker": False})
    app = create_app(off, engine=engine, outbox_handlers={"webhook": never})
    with TestClient(app, base_url=BASE_URL):
        _enqueue(engine, "cbo-1", "task-1")
        app.state.outbox.wake()  # harmless
        time.sleep(0.1)
        assert not app.state.outbox.running


def test_worker__without_handlers_claims_nothing(engine: Engine) -> None:
    [message_id] = _enqueue(engine, "cbo-1", "task-1")

    async def scenario(_: httpx.AsyncClient) -> None:
        async with OutboxWorker(engine, {}, options=FAST) as worker:
            worker.wake()
            await asyncio.sleep(0.1)

    _run(scenario)
    assert _message(engine, message_id).attempts == 0


# --- order, retries, give-up -----------------------------------------------------------------


def test_worker__a_down_cbo_holds_only_its_own_key_then_gets_everything_in_order(
    engine: Engine, receiver: WebhookReceiver
) -> None:
    down = WebhookReceiver(SECRET)  # not listening yet: connection refused
    held = _enqueue(engine, "cbo-down", "task-a", count=3)
    other = _enqueue(engine, "cbo-up", "task-b", count=2)

    async def scenario(http: httpx.AsyncClient) -> None:
        handlers = _webhooks(http, {"cbo-down": down, "cbo-up": receiver})
        # a long lease: a delivery that outlasted its share of a short one on a loaded
        # machine would time out after the receiver took it, and be sent again
        async with OutboxWorker(engine, handlers, options=replace(FAST, lease_s=60.0)):
            await _until(lambda: len(receiver.accepted()) == 2)
            await _until(lambda: _message(engine, held[0]).attempts >= 4)
            assert [_message(engine, i).attempts for i in held[1:]] == [0, 0]
            down.start()
            await _until(lambda: len(down.accepted()) == 3)

    try:
        _run(scenario)
    finally:
        down.stop()
    assert [d.id for d in receiver.accepted()] == other
    attempts = _attempts(engine, held[0])
    outcomes = [(a.outcome, a.error) for a in attempts]
    assert [d.id for d in down.accepted()] == held, outcomes
    assert down.arrivals == held, outcomes  # nothing of task-a went early, nothing twice
    assert [a.outcome for a in attempts[:-1]] == ["retry"] * (len(attempts) - 1)
    assert {a.error for a in attempts[:-1]} == {"connection refused"}
    assert attempts[-1].outcome == "delivered"
    gaps = [b.finished_at - a.finished_at for a, b in itertools.pairwise(attempts)]
    assert gaps[0] < gaps[1] < gaps[2], gaps  # exponential backoff (with jitter)
    assert [_message(engine, i).attempts for i in held[1:]] == [1, 1]


def test_worker__503s_are_retried_and_the_key_resumes_in_order(
    engine: Engine, receiver: WebhookReceiver
) -> None:
    receiver.answers = [503, 503, 503]
    ids = _enqueue(engine, "cbo-1", "task-1", count=4)

    async def scenario(http: httpx.AsyncClient) -> None:
        async with OutboxWorker(engine, _webhooks(http, {"cbo-1": receiver}), options=FAST):
            await _until(lambda: len(receiver.accepted()) == 4)

    _run(scenario)
    assert receiver.arrivals == [ids[0]] * 4 + ids[1:]
    assert [a.error for a in _attempts(engine, ids[0])] == ["HTTP 503"] * 3 + [None]
    assert [a.status_code for a in _attempts(engine, ids[0])] == [503, 503, 503, 200]
    assert all(d.verified for d in receiver.deliveries)


def test_worker__unordered_messages_never_wait_for_each_other(
    engine: Engine, receiver: WebhookReceiver
) -> None:
    receiver.stall(1)  # the first one hangs
    ids = _enqueue(engine, "cbo-1", None, count=3)

    async def scenario(http: httpx.AsyncClient) -> None:
        async with OutboxWorker(engine, _webhooks(http, {"cbo-1": receiver}), options=FAST):
            await _until(lambda: len(receiver.accepted()) == 2)
            receiver.release()
            await _until(lambda: len(receiver.accepted()) == 3)

    _run(scenario)
    assert sorted(d.id for d in receiver.accepted()) == sorted(ids)


def test_worker__gives_up_at_the_give_up_age_and_outbox_retry_brings_it_back(
    engine: Engine, database_url: str, receiver: WebhookReceiver
) -> None:
    receiver.answers = [503] * 1000
    ids = _enqueue(engine, "cbo-1", "task-1", count=2)
    options = OutboxOptions(
        poll_interval_s=0.05,
        lease_s=5.0,
        retry=RetryPolicy(base_s=0.1, cap_s=0.2, give_up_s=0.6),
    )

    async def scenario(http: httpx.AsyncClient) -> None:
        async with OutboxWorker(engine, _webhooks(http, {"cbo-1": receiver}), options=options):
            await _until(lambda: _message(engine, ids[1]).status == "dead")

    _run(scenario)
    first = _message(engine, ids[0])
    assert (first.status, first.last_error) == ("dead", "gave up: HTTP 503")
    assert first.attempts >= 3
    assert first.dead_at is not None
    assert first.dead_at - first.created_at >= 0.6 * 1_000_000
    assert _attempts(engine, ids[0])[-1].outcome == "dead"
    assert receiver.arrivals.index(ids[1]) > receiver.arrivals.index(ids[0])

    revived = _loopgate(database_url, "retry", ids[0])  # the real command, in its own process
    assert revived.returncode == 0, revived.stderr
    assert f"{ids[0]} is due again" in revived.stdout
    receiver.answers = []

    async def after_retry(http: httpx.AsyncClient) -> None:
        async with OutboxWorker(engine, _webhooks(http, {"cbo-1": receiver}), options=options):
            await _until(lambda: _message(engine, ids[0]).status == "delivered")

    _run(after_retry)
    assert _message(engine, ids[1]).status == "dead"  # only what was asked for
    assert receiver.accepted()[-1].id == ids[0]


def test_worker__no_webhook_configured_is_dead_at_once(engine: Engine) -> None:
    [message_id] = _enqueue(engine, "cbo-without-webhook", "task-1")

    async def scenario(http: httpx.AsyncClient) -> None:
        async with OutboxWorker(engine, _webhooks(http, {}), options=FAST):
            await _until(lambda: _message(engine, message_id).status == "dead")

    _run(scenario)
    message = _message(engine, message_id)
    assert (message.attempts, message.last_error) == (1, "no webhook configured")


def test_worker__a_handler_that_raises_is_retried_and_logged_without_its_text(
    engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    [message_id] = _enqueue(engine, "cbo-1", "task-1", patient="Denise Rivera")
    calls: list[int] = []

    async def flaky(message: OutboxMessage) -> DeliveryResult:
        calls.append(message.attempt)
        if len(calls) == 1:
            raise ValueError(f"could not render {message.payload['data']['patient']}")
        return DeliveryResult.delivered()

    async def scenario(_: httpx.AsyncClient) -> None:
        async with OutboxWorker(engine, {"webhook": flaky}, options=FAST):
            await _until(lambda: _message(engine, message_id).status == "delivered")

    with caplog.at_level(logging.DEBUG, logger="loopgate.outbox"):
        _run(scenario)
    assert calls == [1, 2]
    assert [a.error for a in _attempts(engine, message_id)] == ["handler error: ValueError", None]
    assert "Rivera" not in caplog.text
    assert "ValueError" in caplog.text


def test_worker__a_slow_handler_is_cut_off_before_its_lease_runs_out(engine: Engine) -> None:
    [message_id] = _enqueue(engine, "cbo-1", "task-1")
    started: list[float] = []

    async def hangs_once(message: OutboxMessage) -> DeliveryResult:
        started.append(time.monotonic())
        if message.attempt == 1:
            await asyncio.sleep(60)
        return DeliveryResult.delivered()

    options = OutboxOptions(poll_interval_s=0.05, lease_s=0.5, retry=RetryPolicy(base_s=0.05))

    async def scenario(_: httpx.AsyncClient) -> None:
        async with OutboxWorker(engine, {"webhook": hangs_once}, options=options):
            await _until(lambda: _message(engine, message_id).status == "delivered")

    _run(scenario)
    assert [a.error for a in _attempts(engine, message_id)] == ["timeout", None]
    # cut off at 80 % of the lease (0.4 s), not after the handler's 60 s
    assert 0.35 < started[1] - started[0] < 30


# --- leases and claims -----------------------------------------------------------------------


def test_claim__a_lease_left_by_a_dead_worker_is_claimed_again_after_it_runs_out(
    engine: Engine, receiver: WebhookReceiver
) -> None:
    [message_id] = _enqueue(engine, "cbo-1", "task-1")
    [claimed] = claim_due(
        engine, kinds=["webhook"], worker="ghost:1:dead", limit=5, lease_us=400_000, now=now_us()
    )
    assert claimed.id == message_id
    assert claimed.attempt == 1

    async def scenario(http: httpx.AsyncClient) -> None:
        async with OutboxWorker(engine, _webhooks(http, {"cbo-1": receiver}), options=FAST):
            await asyncio.sleep(0.2)
            assert receiver.arrivals == []  # still leased to the ghost
            await _until(lambda: len(receiver.accepted()) == 1)

    _run(scenario)
    attempts = _attempts(engine, message_id)
    assert [(a.attempt, a.outcome, a.error) for a in attempts] == [
        (1, "abandoned", "lease expired"),
        (2, "delivered", None),
    ]
    assert attempts[0].worker == "ghost:1:dead"


def test_claim__takes_a_run_of_one_key_up_to_the_first_message_not_due(
    engine: Engine,
) -> None:
    ids = _enqueue(engine, "cbo-1", "task-1", count=5)
    with write_transaction(engine) as connection:  # the fourth is scheduled for later
        connection.execute(
            update(outbox_table)
            .where(outbox_table.c.id == ids[3])
            .values(next_attempt_at=now_us() + 60_000_000)
        )
    other = _enqueue(engine, "cbo-2", "task-2", count=2)
    claimed = claim_due(
        engine,
        kinds=["webhook"],
        worker="w",
        limit=5,
        lease_us=60_000_000,
        now=now_us(),
        run_length=4,
    )
    assert [m.id for m in claimed] == [*ids[:3], *other]
    assert all(m.attempt == 1 for m in claimed)


def test_claim__finds_each_keys_first_message_behind_long_queues_oldest_due_first(
    engine: Engine,
) -> None:
    # many keys due: found among the messages due longest
    fanned_out = [_enqueue(engine, f"cbo-{n}", "task-9")[0] for n in range(10, 20)]
    claimed = claim_due(
        engine, kinds=["webhook"], worker="w", limit=4, lease_us=60_000_000, now=now_us()
    )
    assert [m.id for m in claimed] == fanned_out[:4]

    # few keys, each with many waiting behind its first: found key by key
    with write_transaction(engine) as connection:  # another kind's keys sort before and after
        for kind in ("auto-decline", "zz-later"):
            enqueue(connection, kind=kind, destination="cbo-1", ordering_key="task-1", payload={})
    busy = _enqueue(engine, "cbo-1", "task-1", count=40)
    second = _enqueue(engine, "cbo-1", "task-2", count=40)
    [unordered] = _enqueue(engine, "cbo-3", None)
    third = _enqueue(engine, "cbo-2", "task-1", count=40)
    with write_transaction(engine) as connection:  # its first is out with another worker
        connection.execute(
            update(outbox_table)
            .where(outbox_table.c.id == busy[0])
            .values(claimed_by="other", claimed_until=now_us() + 60_000_000, attempts=1)
        )

    claimed = claim_due(
        engine, kinds=["webhook"], worker="w", limit=10, lease_us=60_000_000, now=now_us()
    )
    # one per key, none of a key whose first message is out, oldest due first
    assert [m.id for m in claimed] == [*fanned_out[4:], second[0], unordered, third[0]]


def test_record__a_run_stores_only_the_attempts_whose_lease_it_still_holds(
    engine: Engine,
) -> None:
    ids = _enqueue(engine, "cbo-1", "task-1", count=3)
    start = now_us()
    run = claim_due(
        engine, kinds=["webhook"], worker="slow", limit=1, lease_us=1_000, now=start, run_length=3
    )
    assert [m.id for m in run] == ids
    # the lease ran out mid-run and another worker took the first message again
    [retaken] = claim_due(
        engine, kinds=["webhook"], worker="fast", limit=1, lease_us=60_000_000, now=start + 2_000
    )
    assert retaken.id == ids[0]

    delivered = DeliveryResult.delivered(status_code=204)
    skipped = DeliveryResult("delivered", "not sent: the referral is accepted")
    outcomes = record_results(
        engine,
        [(run[0], delivered, 5), (run[1], delivered, 5), (run[2], skipped, 5)],
        worker="slow",
        policy=RetryPolicy(),
        now=start + 3_000,
    )

    assert outcomes == [None, "delivered", "delivered"]
    first = _message(engine, ids[0])
    assert (first.status, first.in_flight) == ("pending", True)  # still fast's to finish
    assert [(a.worker, a.outcome) for a in _attempts(engine, ids[0])] == [("slow", "abandoned")]
    for message_id in ids[1:]:
        stored = _message(engine, message_id)
        assert (stored.status, stored.in_flight, stored.delivered_at, stored.last_error) == (
            "delivered",
            False,
            start + 3_000,
            None,
        )
    [sent] = _attempts(engine, ids[1])
    assert (sent.attempt, sent.outcome, sent.status_code, sent.duration_ms, sent.error) == (
        1,
        "delivered",
        204,
        5,
        None,
    )
    [not_sent] = _attempts(engine, ids[2])
    assert (not_sent.outcome, not_sent.status_code, not_sent.error) == (
        "delivered",
        None,
        "not sent: the referral is accepted",
    )


def test_worker__a_retry_in_a_run_hands_back_the_rest_unattempted_then_all_go_in_order(
    engine: Engine,
) -> None:
    ids = _enqueue(engine, "cbo-1", "task-1", count=5)
    sent: list[str] = []

    async def flaky(message: OutboxMessage) -> DeliveryResult:
        sent.append(message.id)
        if message.id == ids[2] and sent.count(message.id) == 1:
            return DeliveryResult.retry("HTTP 503", status_code=503)
        return DeliveryResult.delivered(status_code=200)

    async def scenario(_: httpx.AsyncClient) -> None:
        async with OutboxWorker(engine, {"webhook": flaky}, options=FAST):
            await _until(lambda: all(_message(engine, i).status == "delivered" for i in ids))

    _run(scenario)
    assert sent == [ids[0], ids[1], ids[2], ids[2], ids[3], ids[4]]
    assert [_message(engine, i).attempts for i in ids] == [1, 1, 2, 1, 1]
    assert [(a.attempt, a.outcome) for a in _attempts(engine, ids[3])] == [(1, "delivered")]


def test_claim__racing_claimers_never_take_the_same_message(
    engine: Engine, database_url: str
) -> None:
    ids = set(_enqueue(engine, "cbo-1", None, count=120))
    _enqueue(engine, "cbo-1", "one-key", count=5)  # only the first of these is claimable
    taken: list[list[str]] = [[] for _ in range(6)]
    barrier = threading.Barrier(6)

    def claimer(index: int) -> None:
        own = make_engine(database_url)
        try:
            barrier.wait()
            while batch := claim_due(
                own,
                kinds=["webhook"],
                worker=f"claimer-{index}",
                limit=7,
                lease_us=60_000_000,
                now=now_us(),
            ):
                taken[index].extend(m.id for m in batch)
        finally:
            own.dispose()

    threads = [threading.Thread(target=claimer, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    everything = [message_id for batch in taken for message_id in batch]
    assert len(everything) == len(set(everything)) == len(ids) + 1
    assert ids < set(everything)
    assert sum(1 for batch in taken if batch) > 1


def test_worker__stopping_hands_back_a_delivery_in_flight(
    engine: Engine, receiver: WebhookReceiver
) -> None:
    [message_id] = _enqueue(engine, "cbo-1", "task-1")
    receiver.stall(1)
    options = OutboxOptions(poll_interval_s=0.05, lease_s=30.0, shutdown_grace_s=0.2)

    async def stopped_mid_delivery(http: httpx.AsyncClient) -> None:
        async with OutboxWorker(engine, _webhooks(http, {"cbo-1": receiver}), options=options):
            await _until(lambda: receiver.arrivals == [message_id])

    _run(stopped_mid_delivery)
    message = _message(engine, message_id)
    assert (message.status, message.in_flight) == ("pending", False)
    receiver.release()

    async def next_start(http: httpx.AsyncClient) -> None:
        async with OutboxWorker(engine, _webhooks(http, {"cbo-1": receiver}), options=FAST):
            await _until(lambda: _message(engine, message_id).status == "delivered")

    _run(next_start)
    assert [(a.outcome, a.error) for a in _attempts(engine, message_id)] == [
        ("abandoned", "worker stopped"),
        ("delivered", None),
    ]


def test_worker__leaves_kinds_it_has_no_handler_for(engine: Engine) -> None:
    with write_transaction(engine) as connection:
        email = enqueue(
            connection, kind="email", destination="x", ordering_key="k", payload={"a": 1}
        )
    [webhook] = _enqueue(engine, "cbo-1", "k")
    delivered: list[str] = []

    async def record(message: OutboxMessage) -> DeliveryResult:
        delivered.append(message.id)
        return DeliveryResult.delivered()

    async def scenario(_: httpx.AsyncClient) -> None:
        async with OutboxWorker(engine, {"webhook": record}, options=FAST):
            await _until(lambda: delivered == [webhook])
            await asyncio.sleep(0.1)

    _run(scenario)
    assert _message(engine, email).status == "pending"
    assert _message(engine, email).attempts == 0


# --- retry policy ----------------------------------------------------------------------------


def test_retry_policy__grows_with_jitter_honours_retry_after_and_ends_at_the_give_up_age() -> None:
    policy = RetryPolicy(base_s=5, cap_s=1800, give_up_s=72 * 3600)
    for attempt, (low, high) in enumerate([(3.75, 5), (7.5, 10), (15, 20), (30, 40)], start=1):
        assert low <= policy.delay_s(attempt) <= high
    assert 1350 <= policy.delay_s(40) <= 1800
    assert policy.delay_s(1, retry_after_s=120) == 120
    assert policy.delay_s(1, retry_after_s=86_400) == 1800
    start = 1_000_000_000_000
    almost = start + int(72 * 3600 * 1e6) - 1_000_000
    assert policy.next_attempt_at(attempt=30, pending_since=start, now=almost) == start + int(
        72 * 3600 * 1e6
    )
    assert policy.next_attempt_at(attempt=31, pending_since=start, now=almost + 1_000_000) is None


# --- the operator's CLI ----------------------------------------------------------------------


def _loopgate(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("LOOPGATE_")}
    environment["LOOPGATE_DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "-m", "gateway.cli", "outbox", *args],
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _make(engine: Engine, message_id: str, **values: Any) -> None:
    with write_transaction(engine) as connection:
        connection.execute(
            update(outbox_table).where(outbox_table.c.id == message_id).values(**values)
        )


def _outbox(engine: Engine, *args: str) -> tuple[int, str, str]:
    """``loopgate outbox …`` in this process: the real parser and command, on the test engine."""
    parser = argparse.ArgumentParser()
    add_outbox_commands(parser.add_subparsers(dest="command"))
    out, err = io.StringIO(), io.StringIO()
    code = run_outbox_command(engine, parser.parse_args(["outbox", *args]), out=out, err=err)
    return code, out.getvalue(), err.getvalue()


def test_cli__list_retry_and_purge(engine: Engine, database_url: str) -> None:
    with write_transaction(engine) as connection:
        dead, old, recent, pending = (
            enqueue(
                connection,
                kind="webhook",
                destination="cbo-1",
                ordering_key=f"t{n}",
                payload=PHI_PAYLOAD,
            )
            for n in range(4)
        )
    day = 86_400 * 1_000_000
    _make(engine, dead, status="dead", dead_at=now_us() - 40 * day, last_error="gave up: HTTP 503")
    _make(engine, old, status="delivered", delivered_at=now_us() - 40 * day, attempts=1)
    _make(engine, recent, status="delivered", delivered_at=now_us() - day, attempts=1)
    _make(engine, pending, next_attempt_at=now_us() + day, last_error="HTTP 500", attempts=3)

    listed = _loopgate(database_url, "list")  # the real command, in its own process
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "KIND", "DESTINATION"]
    assert [line.split()[0] for line in lines[1:]] == [pending, recent, old, dead]
    assert "gave up: HTTP 503" in listed.stdout
    assert "Rivera" not in listed.stdout + listed.stderr
    code, only_dead, _ = _outbox(engine, "list", "--status", "dead", "--limit", "5")
    assert [line.split()[0] for line in only_dead.splitlines()[1:]] == [dead]

    code, out, _ = _outbox(engine, "retry", "--dead")
    assert (code, out.strip()) == (0, "1 dead messages are due again")
    message = _message(engine, dead)
    assert (message.status, message.dead_at) == ("pending", None)
    assert message.next_attempt_at <= now_us()
    with read_transaction(engine) as connection:
        pending_since = connection.execute(
            select(outbox_table.c.pending_since).where(outbox_table.c.id == dead)
        ).scalar_one()
    assert now_us() - pending_since < 60 * 1_000_000  # a fresh give-up age

    assert _outbox(engine, "retry", pending)[0] == 0
    assert _message(engine, pending).next_attempt_at <= now_us()
    code, _, err = _outbox(engine, "retry", recent)
    assert (code, err.strip()) == (1, f"loopgate: {recent} was delivered; nothing to retry")
    assert _outbox(engine, "retry", "no-such-id")[0] == 1

    _make(engine, dead, status="dead", dead_at=now_us() - 40 * day)
    code, out, _ = _outbox(
        engine, "purge", "--delivered-older-than", "30", "--dead-older-than", "30"
    )
    assert (code, out.strip()) == (0, "purged 2 messages")
    with read_transaction(engine) as connection:
        left = set(connection.execute(select(outbox_table.c.id)).scalars())
    assert left == {recent, pending}
    assert _outbox(engine, "purge")[0] == 2


def test_retry__a_failing_key_held_back_goes_again_at_once(engine: Engine) -> None:
    head, follower = _enqueue(engine, "cbo-1", "task-1", count=2)
    later = now_us() + 3600 * 1_000_000
    _make(engine, head, next_attempt_at=later, last_error="HTTP 503", attempts=5)
    _make(engine, follower, next_attempt_at=later)
    with write_transaction(engine) as connection:
        assert retry_message(connection, head, now=now_us())
    assert _message(engine, head).next_attempt_at <= now_us()
    assert _message(engine, follower).next_attempt_at <= now_us()
