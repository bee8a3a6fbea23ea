"""Blocking calls run in worker threads from the event loop, which a shutdown waits for.

Cancelling the task that awaits ``asyncio.to_thread`` does not stop the thread: without the
wait, a scan still running would hold a database connection while the app disposes its engine,
or open a new one after it, and that connection would be closed by the garbage collector.
"""

import asyncio
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


class WorkerThreads:
    """Runs each call in a thread (``run``); ``drain`` waits for those still running."""

    def __init__(self) -> None:
        self._running: set[asyncio.Future[object]] = set()

    async def run(self, function: Callable[[], T]) -> T:
        future: asyncio.Future[T] = asyncio.ensure_future(asyncio.to_thread(function))
        self._running.add(future)  # type: ignore[arg-type]
        future.add_done_callback(self._running.discard)
        # shielded: a cancelled caller leaves the call to finish, and ``drain`` to wait for it
        return await asyncio.shield(future)

    async def drain(self) -> None:
        """Wait for every call still running; their results and errors are dropped (each
        caller has already been cancelled or told)."""
        while self._running:
            await asyncio.gather(*self._running, return_exceptions=True)
