"""``OutboxWorker``: an asyncio task that claims due outbox messages and hands each to the
handler registered for its kind, a few at a time, until every one is delivered or dead.

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
from gateway.outbox.claims import anything_due, claim_due, next_due_after, record_result, release
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
    """Deliveries in flight at once in this process."""
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
        self._in_flight: dict[asyncio.Task[None], OutboxMessage] = {}

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
                delivery.cancel()
            if unfinished:
                await asyncio.wait(unfinished)
                cut_short = [in_flight[delivery] for delivery in unfinished]
                try:
                    release(
                        self.engine,
                        cut_short,
                        worker=self.name,
                        now=now_us(),
                        reason="worker stopped",
                    )
                except Exception as error:  # their leases run out instead
                    log.warning("outbox: releasing claims failed (%s)", type(error).__name__)
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
        )
        for message in messages:
            delivery = asyncio.create_task(self._deliver(message), name=f"outbox-{message.id}")
            self._in_flight[delivery] = message
            delivery.add_done_callback(self._delivery_done)
        # a full batch with slots left over: more may be due, so look again at once
        return len(messages) == limit < free

    def _idle_timeout(self) -> float:
        poll = self.options.poll_interval_s
        if not self.handlers:
            return poll
        now = now_us()
        due = next_due_after(self.engine, kinds=tuple(self.handlers), now=now)
        if due is None:
            return poll
        return max(min(poll, (due - now) / MICROS), 0.001)

    async def _deliver(self, message: OutboxMessage) -> None:
        started = time.monotonic()
        try:
            async with asyncio.timeout(self.options.lease_s * HANDLER_SHARE_OF_LEASE):
                result = await self.handlers[message.kind](message)
        except TimeoutError:
            result = DeliveryResult.retry("timeout")
        except Exception as error:  # a handler bug must not stop delivery of the rest
            log.warning(
                "outbox: %s handler raised %s for %s",
                message.kind,
                type(error).__name__,
                message.id,
            )
            result = DeliveryResult.retry(f"handler error: {type(error).__name__}")
        duration_ms = int((time.monotonic() - started) * 1000)
        try:
            outcome = record_result(
                self.engine,
                message,
                result,
                worker=self.name,
                policy=self.options.retry,
                now=now_us(),
                duration_ms=duration_ms,
            )
        except Exception as error:  # the lease runs out and the message is tried again
            log.warning(
                "outbox: recording attempt %d of %s failed (%s)",
                message.attempt,
                message.id,
                type(error).__name__,
            )
            return
        _log_outcome(message, outcome, result, duration_ms)

    def _delivery_done(self, delivery: asyncio.Task[None]) -> None:
        self._in_flight.pop(delivery, None)
        # the next message of the same key may now go, and there is a free slot
        if not self._stopping:
            self.wake()


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
