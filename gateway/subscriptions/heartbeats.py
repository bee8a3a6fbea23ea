"""``Heartbeats``: now and then, queue a heartbeat for every active rest-hook subscription
that has sent nothing for its ``heartbeatPeriod`` (Backport IG, "Heartbeats").

Claiming a heartbeat reschedules it in the same atomic ``UPDATE`` that finds it, so however
many Loopgate processes scan, each heartbeat is queued once. An event also postpones the next
heartbeat (``records.next_event_number``): a busy subscription gets none.
"""

import asyncio
import contextlib
import logging
from collections.abc import Callable

from sqlalchemy import Engine

from gateway.fhir.write_context import now_us
from gateway.outbox import enqueue
from gateway.store.engine import read_transaction, write_transaction
from gateway.subscriptions import records
from gateway.subscriptions.events import SUBSCRIPTION_KIND

log = logging.getLogger("loopgate.subscriptions")


class Heartbeats:
    def __init__(
        self, engine: Engine, *, interval_s: float, wake_outbox: Callable[[], None] | None = None
    ) -> None:
        self.engine = engine
        self.interval_s = interval_s
        self.wake_outbox = wake_outbox
        self._task: asyncio.Task[None] | None = None

    def scan(self, *, now: int | None = None) -> int:
        """Queue the heartbeats due at ``now`` (epoch µs); returns how many."""
        moment = now_us() if now is None else now
        with read_transaction(self.engine) as connection:
            if not records.any_heartbeat_due(connection, now=moment):
                return 0
        with write_transaction(self.engine) as connection:
            due = records.due_heartbeats(connection, now=moment)
            for subscription_id, events in due:
                enqueue(
                    connection,
                    kind=SUBSCRIPTION_KIND,
                    destination=subscription_id,
                    ordering_key=subscription_id,
                    payload={"type": "heartbeat", "events_since_start": events},
                )
        if due and self.wake_outbox is not None:
            self.wake_outbox()
        return len(due)

    def start(self) -> None:
        if self._task is not None:
            raise RuntimeError("the heartbeat scan is already running")
        self._task = asyncio.get_running_loop().create_task(self._run(), name="loopgate-heartbeats")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is None:
            return
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.interval_s)
            try:
                self.scan()
            except Exception as error:  # the database is away: try again next time
                log.warning("heartbeat scan failed (%s)", type(error).__name__)
