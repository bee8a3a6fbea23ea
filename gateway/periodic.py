"""``Periodic``: run a blocking job every few seconds in a worker thread, from the app's event
loop, until stopped. A failing run is logged by its error's type only and tried again next time
(the database may be away for a moment)."""

import asyncio
import contextlib
import logging
from collections.abc import Callable

from gateway.worker_threads import WorkerThreads

log = logging.getLogger("loopgate")


class Periodic:
    def __init__(self, name: str, interval_s: float, job: Callable[[], object]) -> None:
        self.name = name
        self.interval_s = interval_s
        self.job = job
        self._task: asyncio.Task[None] | None = None
        self._threads = WorkerThreads()

    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError(f"{self.name} is already running")
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await self._threads.drain()  # a run in progress finishes before the engine goes

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                # scans make many short database calls: keep them off the event loop
                await self._threads.run(self.job)
            except Exception as error:
                log.warning("%s failed (%s)", self.name, type(error).__name__)
