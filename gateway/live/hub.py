"""Wakes a process's event streams when their organization has new events: at once for
commits made here, within a poll interval for commits made by other processes; and purges
events past their retention."""

import asyncio
import contextlib
import logging
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

from sqlalchemy import Engine

from gateway.fhir.write_context import now_us
from gateway.live.feed import last_seqs, purge_events
from gateway.live.tickets import purge_tickets
from gateway.store.engine import read_transaction, write_transaction
from gateway.worker_threads import WorkerThreads

log = logging.getLogger("loopgate.live")
PURGE_INTERVAL_S = 3600.0
MICROS = 1_000_000


class LiveHub:
    """One per app. ``start()``/``await stop()`` inside the running event loop (the lifespan
    does); ``changed(...)`` from any thread; streams use ``listening(organization)``."""

    def __init__(self, engine: Engine, *, poll_interval_s: float, retention_s: float) -> None:
        self.engine = engine
        self.poll_interval_s = poll_interval_s
        self.retention_s = retention_s
        self.closed = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task[None] | None = None
        self._bells: dict[str, asyncio.Event] = {}
        self._listeners: dict[str, int] = {}
        self._seen: dict[str, int] = {}
        self._threads = WorkerThreads()

    def start(self) -> None:
        self.closed = False
        self._loop = asyncio.get_running_loop()
        self._task = self._loop.create_task(self._run(), name="loopgate-live-events")

    async def stop(self) -> None:
        """End every stream (each sends what it has and finishes its response) and stop."""
        self.closed = True
        for organization in list(self._bells):
            self._ring(organization)
        task, self._task, self._loop = self._task, None, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._threads.drain()  # a poll or purge in progress finishes first

    def changed(self, organizations: Sequence[str]) -> None:
        """These organizations have new events (committed): wake their streams. Safe from any
        thread; a no-op while the hub is not running."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        with contextlib.suppress(RuntimeError):  # the loop closed in between
            loop.call_soon_threadsafe(self._ring_all, tuple(organizations))

    @contextmanager
    def listening(self, organization: str) -> Iterator["Listener"]:
        """Register a stream for ``organization`` (so its events are polled for) while open."""
        self._listeners[organization] = self._listeners.get(organization, 0) + 1
        try:
            yield Listener(self, organization)
        finally:
            self._listeners[organization] -= 1
            if not self._listeners[organization]:
                del self._listeners[organization]
                self._bells.pop(organization, None)
                self._seen.pop(organization, None)

    def bell(self, organization: str) -> asyncio.Event:
        bell = self._bells.get(organization)
        if bell is None:
            bell = self._bells[organization] = asyncio.Event()
        return bell

    def _ring_all(self, organizations: Sequence[str]) -> None:
        for organization in organizations:
            self._ring(organization)

    def _ring(self, organization: str) -> None:
        """Set the bell the organization's streams wait on, and hang up a fresh one."""
        bell = self._bells.pop(organization, None)
        if bell is not None:
            bell.set()

    async def _run(self) -> None:
        next_purge = 0.0
        loop = asyncio.get_running_loop()
        while True:
            if loop.time() >= next_purge:
                next_purge = loop.time() + PURGE_INTERVAL_S
                await self._purge()
            await self._poll()
            await asyncio.sleep(self.poll_interval_s)

    async def _poll(self) -> None:
        """Ring for organizations whose last event number moved since the last look (or that
        were not looked at yet: a commit may have landed before the stream began waiting)."""
        watched = list(self._listeners)
        if not watched:
            return
        try:
            latest = await self._threads.run(lambda: self._last_seqs(watched))
        except Exception as error:  # the database is away: streams wait, the loop goes on
            log.warning("live events: polling failed (%s)", type(error).__name__)
            return
        for organization in watched:
            seq = latest.get(organization, 0)
            if self._seen.get(organization) != seq and organization in self._listeners:
                self._seen[organization] = seq
                self._ring(organization)

    def _last_seqs(self, organizations: list[str]) -> dict[str, int]:
        with read_transaction(self.engine) as connection:
            return last_seqs(connection, organizations)

    async def _purge(self) -> None:
        try:
            events, tickets = await self._threads.run(self.purge_now)
        except Exception as error:  # try again next interval
            log.warning("live events: purge failed (%s)", type(error).__name__)
            return
        if events or tickets:
            log.info("live events: purged %d events and %d stream tickets", events, tickets)

    def purge_now(self) -> tuple[int, int]:
        """Delete events past retention and expired tickets; (events, tickets) deleted."""
        now = now_us()
        with write_transaction(self.engine) as connection:
            events = purge_events(connection, before=now - int(self.retention_s * MICROS))
            tickets = purge_tickets(connection, now=now)
        return events, tickets


class Listener:
    """One stream's registration: take ``bell()`` *before* reading events, then ``wait`` on
    it, so a ring between the read and the wait is not lost."""

    def __init__(self, hub: LiveHub, organization: str) -> None:
        self.hub = hub
        self.organization = organization

    def bell(self) -> asyncio.Event:
        return self.hub.bell(self.organization)

    async def wait(self, bell: asyncio.Event, timeout: float) -> bool:
        """True when rung (new events, or the hub closing), False after ``timeout``."""
        try:
            await asyncio.wait_for(bell.wait(), timeout)
        except TimeoutError:
            return False
        return True
