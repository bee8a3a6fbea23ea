"""``Heartbeats``: now and then, queue a heartbeat for every active rest-hook subscription
that has sent nothing for its ``heartbeatPeriod`` (Backport IG, "Heartbeats").

Claiming a heartbeat reschedules it in the same atomic ``UPDATE`` that finds it, so however
many Loopgate processes scan, each heartbeat is queued once. An event also postpones the next
heartbeat (``records.next_event_numbers``): a busy subscription gets none.
"""

from collections.abc import Callable

from sqlalchemy import Engine

from gateway.fhir.write_context import now_us
from gateway.outbox import enqueue
from gateway.periodic import Periodic
from gateway.store.engine import read_transaction, write_transaction
from gateway.subscriptions import records
from gateway.subscriptions.events import SUBSCRIPTION_KIND


class Heartbeats:
    def __init__(
        self, engine: Engine, *, interval_s: float, wake_outbox: Callable[[], None] | None = None
    ) -> None:
        self.engine = engine
        self.wake_outbox = wake_outbox
        self._periodic = Periodic("heartbeat scan", interval_s, self.scan)

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
        self._periodic.start()

    async def stop(self) -> None:
        await self._periodic.stop()
