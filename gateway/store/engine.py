"""Database engines for SQLite (embedded default) and PostgreSQL, and write transactions.

SQLite runs in WAL mode and every write transaction starts with ``BEGIN IMMEDIATE``, so writers
queue on the database lock instead of failing on a read-to-write upgrade. Checkpoints (copying
the WAL back into the database, with an fsync) run in a background thread, not inside a
writer's commit while it holds the lock. PostgreSQL writers lock the rows they change
(``SELECT … FOR UPDATE``) inside ordinary READ COMMITTED transactions.
"""

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url

_WRITE_OPTION = "loopgate_write"
WRITER_CHECKPOINT_PAGES = 20_000
CHECKPOINT_INTERVAL_S = 1.0
TRUNCATE_WAL_BYTES = 32 * 1024 * 1024
OPTIMIZE_EVERY_ROUNDS = 600
NEVER_BY_COUNT = 2**31 - 1  # psycopg's prepare_threshold: prepare only when asked
# how long the checkpointer, holding the writers' turn, waits for readers before it gives up
LOCKED_WORK_WAIT_MS = 100


def is_sqlite(engine: Engine | Connection) -> bool:
    return engine.dialect.name == "sqlite"


def make_engine(database_url: str, *, pool_size: int = 10) -> Engine:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return _sqlite_engine(database_url)
    return create_engine(
        database_url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
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
        # writers checkpoint only if the background checkpointer has fallen far behind
        cursor.execute(f"PRAGMA wal_autocheckpoint={WRITER_CHECKPOINT_PAGES}")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _begin(connection: Connection) -> None:
        writing = connection.get_execution_options().get(_WRITE_OPTION, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")

    return engine


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """One database transaction for one logical write; commits on success, rolls back on error."""
    with _writer_turn(engine), engine.connect() as connection:
        connection.execution_options(**{_WRITE_OPTION: True})
        with connection.begin():
            yield connection


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


_QUEUES: dict[str, _WriterQueue] = {}
_QUEUES_LOCK = threading.Lock()


def _writer_queue(database_path: str) -> _WriterQueue:
    with _QUEUES_LOCK:
        queue = _QUEUES.get(database_path)
        return queue or _QUEUES.setdefault(database_path, _WriterQueue(database_path))


def _writer_turn(engine: Engine) -> AbstractContextManager[None]:
    database = engine.url.database if is_sqlite(engine) else None
    if not database or database == ":memory:":
        return nullcontext()
    return _writer_queue(database).turn()


@contextmanager
def read_transaction(engine: Engine) -> Iterator[Connection]:
    """A consistent snapshot for a read (a search and its includes see the same data)."""
    with engine.connect() as connection, connection.begin():
        yield connection


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
        """One round: TRUNCATE if the WAL has grown too large, PASSIVE otherwise."""
        own = connection is None
        connection = connection or self._connect()
        try:
            wal = Path(f"{self.database_path}-wal")
            with suppress(sqlite3.OperationalError):  # busy: the next round tries again
                if wal.exists() and wal.stat().st_size > self.truncate_wal_bytes:
                    self._between_writers(connection, "PRAGMA wal_checkpoint(TRUNCATE)")
                else:
                    connection.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
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
    if not is_sqlite(engine):
        return None
    database = engine.url.database
    if not database or database == ":memory:":
        return None
    return SqliteCheckpointer(database)
