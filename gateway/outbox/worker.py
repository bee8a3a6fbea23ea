"""``OutboxWorker``: an asyncio task that claims due outbox messages and hands each to the
handler registered for its kind, a few at a time, until every one is delivered or dead.

A claim takes, after each due message of an ordering key, the next ones of that key that are
due too (a run, up to ``run_length``): they go one after another, as the key's order demands
anyway, and their outcomes are stored in one transaction at the end of the run. A run stops at
the first attempt to be retried (the rest are handed back unattempted) and before any attempt
that could outlast the lease.

It wakes at once when ``wake()`` is called after a commit in this process, and otherwise polls
(other processes' messages, retries falling due, leases left by a process that died). Database
calls are short and run inline on the event loop, like the rest of Loopgate; no transaction
is ever held across an ``await``.
"""

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Self

from sqlalchemy import Engine

from gateway.fhir.write_context import now_us
from gateway.outbox.claims import anything_due, claim_due, next_due_after, record_results
from gateway.outbox.messages import DeliveryResult, Handler, OutboxMessage
from gateway.outbox.retry_policy import MICROS, RetryPolicy
from gateway.settings import Settings

log = logging.getLogger("loopgate.outbox")

HANDLER_SHARE_OF_LEASE = 0.8
"""A handler gets this share of the lease, so a slow one times out before its lease runs out
and another worker could start the same message."""


@dataclass(frozen=True)
class OutboxOptions:
    poll_interval_s: float = 1.0
    """The longest the worker sleeps without being woken."""
    batch_size: int = 16
    """Messages claimed per transaction."""
    concurrency: int = 16
    """Deliveries in flight at once in this process (a run counts once)."""
    run_length: int = 16
    """Messages of one ordering key claimed together and sent one after another."""
    lease_s: float = 60.0
    """How long a claim lasts; a message whose worker died is claimable again after this."""
    shutdown_grace_s: float = 5.0
    """On stop, how long deliveries in flight may finish before they are cut short."""
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    @classmethod
    def from_settings(cls, settings: Settings) -> Self:
        return cls(
            poll_interval_s=settings.outbox_poll_interval_s,
            batch_size=settings.outbox_batch_size,
            concurrency=settings.outbox_concurrency,
            lease_s=settings.outbox_lease_s,
            retry=RetryPolicy(
                base_s=settings.outbox_retry_base_s,
                cap_s=settings.outbox_retry_cap_s,
                give_up_s=settings.outbox_give_up_hours * 3600,
            ),
        )


def default_worker_name() -> str:
    """host:pid:random, unique per worker, shown in the attempt log (no PHI)."""
    return f"{socket.gethostname()[:40]}:{os.getpid()}:{secrets.token_hex(3)}"


class OutboxWorker:
    """Delivers outbox messages of the kinds in ``handlers``; other kinds are left for the
    processes that handle them. Use ``start()``/``await stop()`` inside a running event loop
    (the app's lifespan does), or ``async with OutboxWorker(...)``."""

    def __init__(
        self,
        engine: Engine,
        handlers: Mapping[str, Handler],
        *,
        options: OutboxOptions | None = None,
        name: str | None = None,
    ) -> None:
        self.engine = engine
        self.handlers: dict[str, Handler] = dict(handlers)
        self.options = options or OutboxOptions()
        self.name = name or default_worker_name()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._woken: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self._in_flight: dict[asyncio.Task[None], list[OutboxMessage]] = {}

    @property
    def running(self) -> bool:
        return self._task is not None

    def register(self, kind: str, handler: Handler) -> None:
        if self.running:
            raise RuntimeError("register outbox handlers before the worker starts")
        self.handlers[kind] = handler

    def start(self) -> None:
        if self.running:
            raise RuntimeError("the outbox worker is already running")
        self._loop = asyncio.get_running_loop()
        self._woken = asyncio.Event()
        self._stopping = False
        self._task = self._loop.create_task(self._run(), name="loopgate-outbox")

    def wake(self) -> None:
        """Look for due messages now. Call after a transaction that enqueued commits; safe from
        any thread, and a no-op while the worker is not running."""
        loop, woken = self._loop, self._woken
        if loop is None or woken is None or loop.is_closed():
            return
        try:
            current: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            current = None
        if current is loop:
            woken.set()
        else:
            try:
                loop.call_soon_threadsafe(woken.set)
            except RuntimeError:  # the loop closed in between
                return

    async def stop(self) -> None:
        """Stop claiming, let deliveries in flight finish for ``shutdown_grace_s``, cut the
        rest short and hand their messages back (due again at once)."""
        task = self._task
        if task is None:
            return
        self._stopping = True
        self.wake()
        await task
        in_flight = dict(self._in_flight)
        if in_flight:
            _, unfinished = await asyncio.wait(in_flight, timeout=self.options.shutdown_grace_s)
            for delivery in unfinished:
                delivery.cancel()  # the run hands back what it has not finished (_deliver_run)
            if unfinished:
                await asyncio.wait(unfinished)
        self._task = None
        self._loop = None
        self._woken = None

    async def __aenter__(self) -> Self:
        self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def _run(self) -> None:
        woken = self._woken
        assert woken is not None
        while not self._stopping:
            woken.clear()
            try:
                timeout = 0.0 if self._claim_round() else self._idle_timeout()
            except Exception as error:  # the database is away: keep trying, never die
                log.warning("outbox: claiming failed (%s); retrying", type(error).__name__)
                timeout = self.options.poll_interval_s
            if timeout > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(woken.wait(), timeout)
            else:
                await asyncio.sleep(0)

    def _claim_round(self) -> bool:
        """Claim what is due and start delivering it; True if more may be due right now."""
        free = self.options.concurrency - len(self._in_flight)
        if free <= 0 or not self.handlers:
            return False
        kinds = tuple(self.handlers)
        now = now_us()
        if not anything_due(self.engine, kinds=kinds, now=now):
            return False
        limit = min(self.options.batch_size, free)
        messages = claim_due(
            self.engine,
            kinds=kinds,
            worker=self.name,
            limit=limit,
            lease_us=int(self.options.lease_s * MICROS),
            now=now,
            run_length=self.options.run_length,
        )
        runs = _runs(messages)
        for run in runs:
            delivery = asyncio.create_task(self._deliver_run(run), name=f"outbox-{run[0].id}")
            self._in_flight[delivery] = run
            delivery.add_done_callback(self._delivery_done)
        # a full batch with slots left over: more may be due, so look again at once
        return len(runs) == limit < free

    def _idle_timeout(self) -> float:
        poll = self.options.poll_interval_s
        if not self.handlers:
            return poll
        now = now_us()
        due = next_due_after(self.engine, kinds=tuple(self.handlers), now=now)
        if due is None:
            return poll
        return max(min(poll, (due - now) / MICROS), 0.001)

    async def _deliver_run(self, run: list[OutboxMessage]) -> None:
        """Send ``run`` in order, then store every outcome in one transaction."""
        claimed_at = time.monotonic()
        deadline_s = self.options.lease_s * HANDLER_SHARE_OF_LEASE
        finished: list[tuple[OutboxMessage, DeliveryResult, int]] = []
        cut_short: list[OutboxMessage] = []
        try:
            for message in run:
                if finished and time.monotonic() - claimed_at + deadline_s >= self.options.lease_s:
                    break  # this attempt could outlast the lease: hand it back instead
                started = time.monotonic()
                try:
                    result = await self._attempt(message, deadline_s)
                except asyncio.CancelledError:
                    cut_short.append(message)
                    raise
                finished.append((message, result, int((time.monotonic() - started) * 1000)))
                if result.outcome == "retry":
                    break  # the rest of its key waits for it
        finally:
            self._record(run, finished, cut_short)

    async def _attempt(self, message: OutboxMessage, deadline_s: float) -> DeliveryResult:
        try:
            async with asyncio.timeout(deadline_s):
                return await self.handlers[message.kind](message)
        except TimeoutError:
            return DeliveryResult.retry("timeout")
        except Exception as error:  # a handler bug must not stop delivery of the rest
            log.warning(
                "outbox: %s handler raised %s for %s",
                message.kind,
                type(error).__name__,
                message.id,
            )
            return DeliveryResult.retry(f"handler error: {type(error).__name__}")

    def _record(
        self,
        run: list[OutboxMessage],
        finished: list[tuple[OutboxMessage, DeliveryResult, int]],
        cut_short: list[OutboxMessage],
    ) -> None:
        done = {message.id for message, _, _ in finished} | {m.id for m in cut_short}
        try:
            outcomes = record_results(
                self.engine,
                finished,
                unattempted=[m for m in run if m.id not in done],
                cut_short=cut_short,
                worker=self.name,
                policy=self.options.retry,
                now=now_us(),
            )
        except Exception as error:  # the leases run out and the messages are tried again
            log.warning(
                "outbox: recording %d attempts from %s failed (%s)",
                len(finished),
                run[0].id,
                type(error).__name__,
            )
            return
        for (message, result, duration_ms), outcome in zip(finished, outcomes, strict=True):
            _log_outcome(message, outcome, result, duration_ms)

    def _delivery_done(self, delivery: asyncio.Task[None]) -> None:
        self._in_flight.pop(delivery, None)
        # the next message of the same key may now go, and there is a free slot
        if not self._stopping:
            self.wake()


def _runs(messages: list[OutboxMessage]) -> list[list[OutboxMessage]]:
    """``claim_due``'s list cut into runs: each head with the followers of its key after it."""
    runs: list[list[OutboxMessage]] = []
    for message in messages:
        previous = runs[-1][-1] if runs else None
        if (
            previous is not None
            and message.ordering_key is not None
            and (previous.kind, previous.destination, previous.ordering_key)
            == (message.kind, message.destination, message.ordering_key)
        ):
            runs[-1].append(message)
        else:
            runs.append([message])
    return runs


def _log_outcome(
    message: OutboxMessage, outcome: str | None, result: DeliveryResult, duration_ms: int
) -> None:
    if outcome is None:
        log.warning("outbox: %s attempt %d finished after its lease", message.id, message.attempt)
        return
    level = {"delivered": logging.DEBUG, "retry": logging.INFO}.get(outcome, logging.WARNING)
    log.log(
        level,
        "outbox %s %s to %s attempt %d: %s%s (%d ms)",
        message.kind,
        message.id,
        message.destination,
        message.attempt,
        outcome,
        f" ({result.reason})" if result.reason else "",
        duration_ms,
    )
