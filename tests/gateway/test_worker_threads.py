"""Background scans and the live hub stop only once the work they began in a thread is done,
so no database connection outlives the app's engine (it would be closed by the garbage
collector, with a ResourceWarning, in whatever ran next)."""

import asyncio
import threading

from sqlalchemy import Engine, text

from gateway.live.hub import LiveHub
from gateway.periodic import Periodic
from gateway.store.engine import read_transaction


def test_stopping_a_periodic_scan_waits_for_the_run_in_progress(engine: Engine) -> None:
    started, release = threading.Event(), threading.Event()
    finished: list[int] = []

    def scan() -> None:
        with read_transaction(engine) as connection:
            started.set()
            release.wait(30)
            finished.append(connection.execute(text("SELECT 1")).scalar_one())

    async def main() -> int:
        periodic = Periodic("test scan", 0.01, scan)
        periodic.start()
        while not started.is_set():
            await asyncio.sleep(0.01)
        asyncio.get_running_loop().call_later(0.2, release.set)
        await periodic.stop()
        return engine.pool.checkedout()  # type: ignore[attr-defined,no-any-return]

    checked_out = asyncio.run(main())
    assert finished == [1]
    assert checked_out == 0


def test_stopping_the_live_hub_waits_for_a_purge_in_progress(engine: Engine) -> None:
    started, release = threading.Event(), threading.Event()

    class SlowHub(LiveHub):
        def purge_now(self) -> tuple[int, int]:
            with read_transaction(engine):  # a connection held while the purge is slow
                started.set()
                release.wait(30)
            return super().purge_now()

    async def main() -> int:
        hub = SlowHub(engine, poll_interval_s=0.01, retention_s=3600)
        hub.start()  # purges at once
        while not started.is_set():
            await asyncio.sleep(0.01)
        asyncio.get_running_loop().call_later(0.2, release.set)
        await hub.stop()
        return engine.pool.checkedout()  # type: ignore[attr-defined,no-any-return]

    assert asyncio.run(main()) == 0
