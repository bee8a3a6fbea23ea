"""Group commit on SQLite: the database part of the writes that arrive together runs in one
transaction, each write in its own savepoint, and is committed once for all of them.

SQLite takes one writer at a time, and a commit writes every page the transaction touched to
the WAL, about 25 for a referral: committing ten referrals at once writes the shared pages
(index leaves, table tails) once instead of ten times, and takes the writer lock once. A
write's work that needs no database (structure, profile and access checks, index values,
``gateway/fhir/prepared_body.py``) runs before it queues, so it stays outside the lock.
Each write still succeeds or fails on its own: a failing one rolls back to its savepoint and
the others commit. Nobody hears "done" before the commit.
PostgreSQL writes run at once, each in its own transaction, as before.
"""

import asyncio
import contextvars
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy import Engine

from gateway.store.engine import WriterBusy, is_sqlite, shared_write_transaction

T = TypeVar("T")

# a batch larger than this leaves the rest to the next one: the writer lock is held for the
# whole batch, and the other server processes wait for it
MAX_BATCH = 32
# how soon a batch looks again for the writer turn another writer holds (meanwhile the loop
# goes on checking and queueing writes; a blocking wait would stop the whole process)
BUSY_RETRY_S = 0.001


@dataclass
class _QueuedWrite:
    write: Callable[[], Any]
    done: asyncio.Future[Any]
    context: contextvars.Context


class WriteBatcher:
    """Queues writes from the event loop and runs each loop turn's queue as one batch."""

    def __init__(self, engine: Engine, *, max_batch: int = MAX_BATCH) -> None:
        self.engine = engine
        self.max_batch = max_batch
        self.enabled = is_sqlite(engine)
        self._queue: list[_QueuedWrite] = []
        self._scheduled_on: asyncio.AbstractEventLoop | None = None

    @property
    def waiting(self) -> int:
        """Writes queued and not yet run."""
        return len(self._queue)

    async def run(self, write: Callable[[], T]) -> T:
        """``write()``'s result once it is committed; its error if it failed (then nothing of
        it was kept)."""
        if not self.enabled:
            return write()
        loop = asyncio.get_running_loop()
        queued = _QueuedWrite(write, loop.create_future(), contextvars.copy_context())
        self._queue.append(queued)
        if self._scheduled_on is not loop:
            # runs after the handlers ready in this turn of the loop have queued their writes
            self._scheduled_on = loop
            loop.call_soon(self._run_batch)
        result: T = await queued.done
        return result

    def _run_batch(self) -> None:
        loop = asyncio.get_running_loop()
        # a loop that ended (one test client after another) left writes nobody awaits
        self._queue = [queued for queued in self._queue if queued.done.get_loop() is loop]
        batch = self._queue[: self.max_batch]
        if not batch:
            self._scheduled_on = None
            return
        try:
            outcomes = self._outcomes(batch)
        except WriterBusy:  # another writer's turn: look again soon, queueing what arrives
            loop.call_later(BUSY_RETRY_S, self._run_batch)
            return
        del self._queue[: len(batch)]
        if self._queue:
            loop.call_soon(self._run_batch)
        else:
            self._scheduled_on = None
        for queued, (succeeded, value) in zip(batch, outcomes, strict=True):
            if queued.done.cancelled():
                continue
            if succeeded:
                queued.done.set_result(value)
            else:
                queued.done.set_exception(value)

    def _outcomes(self, batch: list[_QueuedWrite]) -> list[tuple[bool, Any]]:
        """Each write's result or error; raises ``WriterBusy``, having run none of them, when
        another writer has the turn."""
        try:
            return self._write(batch)
        except WriterBusy:
            raise
        except Exception as error:  # BEGIN, COMMIT or the transaction failed: nothing was kept
            cause = error.__cause__ if isinstance(error, LostBatch) else None
            return [(False, cause or error)] * len(batch)

    def _write(self, batch: list[_QueuedWrite]) -> list[tuple[bool, Any]]:
        outcomes: list[tuple[bool, Any]] = []
        with shared_write_transaction(self.engine, wait=False) as shared:
            for queued in batch:
                try:
                    with shared.savepoint():
                        outcomes.append((True, queued.context.run(queued.write)))
                except Exception as error:  # this write's own failure, answered as before
                    outcomes.append((False, error))
                    if not shared.is_open():
                        raise LostBatch() from error
        return outcomes


class LostBatch(Exception):
    """SQLite rolled the shared transaction back on its own; no write of the batch was kept."""
