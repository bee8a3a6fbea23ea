"""Database engines for SQLite (embedded default) and PostgreSQL, and write transactions.

SQLite runs in WAL mode and every write transaction starts with ``BEGIN IMMEDIATE``, so writers
queue on the database lock instead of failing on a read-to-write upgrade. Checkpoints (copying
the WAL back into the database, with an fsync) run in a background thread, not inside a
writer's commit while it holds the lock. PostgreSQL writers lock the rows they change
(``SELECT … FOR UPDATE``) inside ordinary READ COMMITTED transactions.

A shared transaction (``shared_write_transaction``, used by ``write_batches.py`` for group
commit on SQLite) lets several writes in a row join one transaction on this thread: each
``write_transaction`` then becomes a savepoint in it, and reads use it too.
"""

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError

from gateway.store import driver

log = logging.getLogger("loopgate.store")

_WRITE_OPTION = "loopgate_write"
WRITER_CHECKPOINT_PAGES = 20_000
CHECKPOINT_INTERVAL_S = 1.0
TRUNCATE_WAL_BYTES = 32 * 1024 * 1024
OPTIMIZE_EVERY_ROUNDS = 600
NEVER_BY_COUNT = 2**31 - 1  # psycopg's prepare_threshold: prepare only when asked
# a pooled PostgreSQL connection idle this long is pinged before use (``_ping_when_idle``)
IDLE_PING_S = 2.0
_IDLE_SINCE = "loopgate_idle_since"
# how long the checkpointer, holding the writers' turn, waits for readers before it gives up
LOCKED_WORK_WAIT_MS = 100


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(database_url: str, *, pool_size: int = 10) -> Engine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(database_url)
    engine = create_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        json_serializer=lambda value: orjson.dumps(value).decode(),
        connect_args={
            # psycopg prepares a statement after five runs and PostgreSQL then plans it
            # generically, blind to how selective `last_updated > $1` is: a search went from
            # 50 ms to 850 ms on its eleventh run. So nothing is prepared by count; only the
            # fixed statements of driver.py ask for it (None would refuse them too).
            "prepare_threshold": NEVER_BY_COUNT,
            # Loopgate's queries are short index probes over data that fits in memory:
            # price random reads like sequential ones (the usual SSD setting), and skip
            # parallel workers, whose start-up costs more than these queries take.
            "options": "-c random_page_cost=1.1 -c max_parallel_workers_per_gather=0",
        },
    )
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """Check a pooled connection before use only when it has sat idle (``IDLE_PING_S``): a
    connection a database restart or a network timeout broke is replaced unseen, as with
    ``pool_pre_ping``, without a round trip on every checkout under load (each one ~0.2 ms
    that the event loop waits through, twice or more per request)."""

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_connection: Any, record: Any) -> None:
        record.info[_IDLE_SINCE] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_idle(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        idle_since = record.info.get(_IDLE_SINCE)  # None: connected just now
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_S:
            return
        try:
            engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # the pool replaces it and checks out again
            raise DisconnectionError() from error


def _sqlite_engine(database_url: str) -> Engine:
    url = make_url(database_url)
    if url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        database_url,
        connect_args={"check_same_thread": False, "timeout": 30},
        pool_size=8,
        max_overflow=8,
    )

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # we issue BEGIN ourselves, below
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA cache_size=-65536")
        # each write of a group commit runs in a savepoint, whose journal of the pages it
        # changes goes to a temp file past 64 KiB; kept in memory, a referral's inserts and
        # commit take about a quarter less CPU (bench/README.md, "SQLite savepoint journals")
        cursor.execute("PRAGMA temp_store=MEMORY")
        # writers checkpoint only if the background checkpointer has fallen far behind
        cursor.execute(f"PRAGMA wal_autocheckpoint={WRITER_CHECKPOINT_PAGES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        writing = connection.get_execution_options().get(_WRITE_OPTION, False)
        statement = "BEGIN IMMEDIATE" if writing else "BEGIN"
        # straight to the driver: SQLAlchemy's execution layer (exec_driver_sql) took some
        # 40 µs of a read's 140, and every request begins two transactions or more
        try:
            connection.connection.dbapi_connection.execute(statement)  # type: ignore[union-attr]
        except sqlite3.Error as error:
            raise DBAPIError.instance(
                statement, None, error, sqlite3.Error, dialect=connection.dialect
            ) from error

    return engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One database transaction for one logical write; commits on success, rolls back on error.

    Inside a shared transaction on this thread it is a savepoint of that one instead: rolled
    back on error, committed with the others."""
    shared = _shared(engine)
    if shared is not None:
        with shared.savepoint():
            yield shared.connection
        return
    with _writer_turn(engine), _begin_write(engine) as connection:
        yield connection


@contextmanager
def _begin_write(engine: Engine) -> Iterator[Connection]:
    with engine.connect() as connection:
        connection.execution_options(**{_WRITE_OPTION: True})
        with connection.begin():
            yield connection


def when_committed(engine: Engine, callbacks: Iterable[Callable[[], None]]) -> None:
    """Run ``callbacks`` once what was just written is committed: now, or, inside a shared
    transaction, after its commit (and never if it rolls back)."""
    shared = _shared(engine)
    if shared is not None:
        shared.after_commit.extend(callbacks)
        return
    for callback in callbacks:
        callback()


class SharedTransaction:
    """One write transaction that the writes run on this thread join, each in a savepoint."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.after_commit: list[Callable[[], None]] = []
        self._depth = 0

    @contextmanager
    def savepoint(self) -> Iterator[None]:
        """Everything written in the block, and the commit callbacks it added, or none."""
        name = _SAVEPOINT_NAMES[min(self._depth, len(_SAVEPOINT_NAMES) - 1)]
        callbacks_before = len(self.after_commit)
        driver.run(self.connection, name.create)
        self._depth += 1
        try:
            yield
        except BaseException:
            del self.after_commit[callbacks_before:]
            if self.is_open():
                driver.run(self.connection, name.roll_back)
                driver.run(self.connection, name.release)
            raise
        else:
            driver.run(self.connection, name.release)
        finally:
            self._depth -= 1

    def is_open(self) -> bool:
        """False once SQLite has rolled the whole transaction back on its own (disk full, I/O
        error): what earlier savepoints wrote is then gone."""
        dbapi_connection = self.connection.connection.dbapi_connection
        return bool(getattr(dbapi_connection, "in_transaction", True))


class _SavepointName:
    __slots__ = ("create", "release", "roll_back")

    def __init__(self, depth: int) -> None:
        name = f"loopgate_write_{depth}"
        self.create = driver.Statement(f"SAVEPOINT {name}")
        self.release = driver.Statement(f"RELEASE SAVEPOINT {name}")
        self.roll_back = driver.Statement(f"ROLLBACK TO SAVEPOINT {name}")


# savepoint names by nesting depth (a name reused deeper still rolls back the innermost one)
_SAVEPOINT_NAMES = tuple(_SavepointName(depth) for depth in range(8))
_SHARED = threading.local()


def _shared(engine: Engine) -> SharedTransaction | None:
    shared: dict[int, SharedTransaction] | None = getattr(_SHARED, "by_engine", None)
    return shared.get(id(engine)) if shared else None


class WriterBusy(Exception):
    """Another writer holds SQLite's write turn (``shared_write_transaction(wait=False)``)."""


@contextmanager
def shared_write_transaction(engine: Engine, *, wait: bool = True) -> Iterator[SharedTransaction]:
    """One write transaction that every ``write_transaction`` and ``read_transaction`` on
    ``engine`` in this thread joins until the block ends; commits at the end (then runs the
    callbacks its writes left), or rolls back if the block raises. With ``wait=False`` it
    raises ``WriterBusy`` at once rather than wait for another writer's turn to end."""
    if _shared(engine) is not None:
        raise RuntimeError("a shared write transaction is already open on this thread")
    turn = _writer_turn(engine) if wait else _writer_turn_if_free(engine)
    if turn is None:
        raise WriterBusy()
    with turn, _begin_write(engine) as connection:
        shared = SharedTransaction(connection)
        by_engine = _SHARED.__dict__.setdefault("by_engine", {})
        by_engine[id(engine)] = shared
        try:
            yield shared
        finally:
            del by_engine[id(engine)]
    for callback in shared.after_commit:
        # committed: a callback that fails must not make the writes look failed
        try:
            callback()
        except Exception as error:
            log.error("a callback after a group commit failed (%s)", type(error).__name__)


class _WriterQueue:
    """SQLite admits one writer at a time, and a writer refused the lock polls for it with
    sleeps of up to 100 ms. Queue writers instead: a thread lock within the process and an
    ``flock`` on a file beside the database across processes, both woken the moment the
    previous writer is done."""

    def __init__(self, database_path: str) -> None:
        self._thread_lock = threading.Lock()
        # a raw descriptor, open for the life of the process (the lock lives on it)
        self._fd = os.open(f"{database_path}.writer-lock", os.O_RDWR | os.O_CREAT, 0o600)

    @contextmanager
    def turn(self) -> Iterator[None]:
        with self._thread_lock:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(self._fd, fcntl.LOCK_UN)

    def turn_if_free(self) -> AbstractContextManager[None] | None:
        """The turn, if no other writer has it right now; None otherwise."""
        if not self._thread_lock.acquire(blocking=False):
            return None
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._thread_lock.release()
            return None
        return self._taken()

    @contextmanager
    def _taken(self) -> Iterator[None]:
        try:
            yield
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            self._thread_lock.release()


_QUEUES: dict[str, _WriterQueue] = {}
_QUEUES_LOCK = threading.Lock()


def _writer_queue(database_path: str) -> _WriterQueue:
    with _QUEUES_LOCK:
        queue = _QUEUES.get(database_path)
        return queue or _QUEUES.setdefault(database_path, _WriterQueue(database_path))


def _writer_turn(engine: Engine) -> AbstractContextManager[None]:
    database = _queued_database(engine)
    return _writer_queue(database).turn() if database else nullcontext()


def _writer_turn_if_free(engine: Engine) -> AbstractContextManager[None] | None:
    database = _queued_database(engine)
    return _writer_queue(database).turn_if_free() if database else nullcontext()


def _queued_database(engine: Engine) -> str | None:
    """The SQLite file whose writers queue (``_WriterQueue``); None for PostgreSQL and memory."""
    database = engine.url.database if is_sqlite(engine) else None
    return database if database and database != ":memory:" else None


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A connection for a read: on SQLite one snapshot for all its statements (a search and
    its includes see the same data); on PostgreSQL each statement sees the latest commits, as
    in a READ COMMITTED transaction. Inside a shared write transaction, that transaction, so a
    write's own reads see what it wrote."""
    shared = _shared(engine)
    if shared is not None:
        yield shared.connection
        return
    with engine.connect() as connection:
        if is_sqlite(connection):
            with connection.begin():
                yield connection
        else:
            # READ COMMITTED gives each statement its own snapshot inside a transaction as
            # well, so BEGIN and COMMIT would add two round trips and nothing else
            yield connection.execution_options(isolation_level="AUTOCOMMIT")


class SqliteCheckpointer:
    """Checkpoints an SQLite WAL from a background thread (PASSIVE, never blocking writers;
    TRUNCATE once the WAL passes ``truncate_wal_bytes``, so it does not grow without end),
    and now and then runs ``PRAGMA optimize`` so the planner has statistics."""

    def __init__(self, database_path: str, *, truncate_wal_bytes: int = TRUNCATE_WAL_BYTES) -> None:
        self.database_path = database_path
        self.truncate_wal_bytes = truncate_wal_bytes
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqlite-checkpoint", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def checkpoint(self, connection: sqlite3.Connection | None = None) -> None:
        """One round: PASSIVE, then TRUNCATE if the WAL has grown too large.

        The PASSIVE pass copies the WAL into the database beside the writers; the TRUNCATE,
        which holds their lock, then copies only what they wrote meanwhile. Alone it held
        the lock 60-100 ms at a time under a referral load, for some 12 % of the locked time.
        """
        own = connection is None
        connection = connection or self._connect()
        try:
            wal = Path(f"{self.database_path}-wal")
            with suppress(sqlite3.OperationalError):  # busy: the next round tries again
                connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                if wal.exists() and wal.stat().st_size > self.truncate_wal_bytes:
                    self._between_writers(connection, "PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            if own:
                connection.close()

    def _connect(self) -> sqlite3.Connection:
        connection = sqlite3.connect(self.database_path, isolation_level=None)
        connection.execute(f"PRAGMA busy_timeout={LOCKED_WORK_WAIT_MS}")
        return connection

    def _run(self) -> None:
        connection = self._connect()
        try:
            rounds = 0
            while not self._stop.wait(CHECKPOINT_INTERVAL_S):
                rounds += 1
                if rounds % OPTIMIZE_EVERY_ROUNDS == 0:  # keep the planner's statistics fresh
                    with suppress(sqlite3.OperationalError):
                        self._between_writers(connection, "PRAGMA optimize")
                self.checkpoint(connection)
        finally:
            connection.close()

    def _between_writers(self, connection: sqlite3.Connection, pragma: str) -> None:
        """Run a pragma that takes SQLite's write lock in a turn of the writer queue.

        Outside the queue, writers meet that lock in ``BEGIN IMMEDIATE`` and wait in SQLite's
        busy handler, which sleeps in steps of up to 100 ms: behind a TRUNCATE checkpoint
        that waited for readers, writes stalled for 0.2-0.9 s under load. In the queue they
        wake the moment the pragma is done, and it gives up after ``LOCKED_WORK_WAIT_MS``.
        """
        with _writer_queue(self.database_path).turn():
            connection.execute(pragma).fetchall()


def sqlite_checkpointer(engine: Engine) -> SqliteCheckpointer | None:
    """A checkpointer for ``engine``'s database file, or None (PostgreSQL, in-memory)."""
    database = _queued_database(engine)
    return SqliteCheckpointer(database) if database else None
