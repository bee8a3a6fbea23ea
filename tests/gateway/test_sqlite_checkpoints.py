"""The SQLite checkpointer keeps the WAL from growing without end, and takes the write lock for
a TRUNCATE only in a turn of the writer queue, so writers queue behind it instead of polling
for the lock in SQLite's busy handler. And a BEGIN that SQLite refuses fails as SQLAlchemy's
error, as every other statement does."""

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from gateway.store.engine import SqliteCheckpointer, make_engine, write_transaction

ROWS = 64
ROW_BYTES = 4000


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[Path, Engine]]:
    path = tmp_path / "checkpoints.db"
    engine = make_engine(f"sqlite:///{path}")
    with write_transaction(engine) as connection:
        connection.execute(text("CREATE TABLE note (body BLOB)"))
    write_notes(engine)
    yield path, engine
    engine.dispose()


def write_notes(engine: Engine) -> None:
    with write_transaction(engine) as connection:
        for _ in range(ROWS):
            connection.execute(text(f"INSERT INTO note VALUES (randomblob({ROW_BYTES}))"))


def notes(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(text("SELECT count(*) FROM note")).scalar_one())


def wal_bytes(path: Path) -> int:
    wal = Path(f"{path}-wal")
    return wal.stat().st_size if wal.exists() else 0


def test_a_wal_past_the_limit_is_truncated_and_one_below_it_is_left(
    database: tuple[Path, Engine],
) -> None:
    path, engine = database
    grown = wal_bytes(path)
    assert grown > ROWS * ROW_BYTES

    SqliteCheckpointer(str(path), truncate_wal_bytes=grown + 1).checkpoint()
    assert wal_bytes(path) == grown  # PASSIVE copies pages back but keeps the file

    SqliteCheckpointer(str(path), truncate_wal_bytes=1024).checkpoint()
    assert wal_bytes(path) == 0
    assert notes(engine) == ROWS


def test_a_truncation_waits_for_the_writer_of_another_process__having_copied_the_wal_back(
    database: tuple[Path, Engine],
) -> None:
    path, engine = database
    before = path.stat().st_size
    # another server process's turn: its own descriptor on the same lock file
    other_process = os.open(f"{path}.writer-lock", os.O_RDWR)
    fcntl.flock(other_process, fcntl.LOCK_EX)
    done = threading.Event()
    checkpointer = SqliteCheckpointer(str(path), truncate_wal_bytes=1024)
    thread = threading.Thread(target=lambda: (checkpointer.checkpoint(), done.set()))
    try:
        thread.start()
        assert not done.wait(0.5), "the checkpoint took the write lock during another's turn"
        assert wal_bytes(path) > 1024
        # the copying is done beside the writers: the truncation, which holds them all up,
        # finds little left
        assert path.stat().st_size >= before + ROWS * ROW_BYTES
    finally:
        fcntl.flock(other_process, fcntl.LOCK_UN)
        os.close(other_process)
    assert done.wait(30)
    thread.join()
    assert wal_bytes(path) == 0
    assert notes(engine) == ROWS


def test_a_reader_on_an_old_snapshot_delays_the_truncation_but_not_the_writers(
    database: tuple[Path, Engine],
) -> None:
    path, engine = database
    reader = sqlite3.connect(path, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM note").fetchone() == (ROWS,)
    write_notes(engine)  # frames the reader's snapshot does not include
    checkpointer = SqliteCheckpointer(str(path), truncate_wal_bytes=1024)

    checkpointer.checkpoint()  # gives up: the reader still needs the WAL
    write_notes(engine)
    assert wal_bytes(path) > 1024
    assert reader.execute("SELECT count(*) FROM note").fetchone() == (ROWS,)

    reader.execute("COMMIT")
    reader.close()
    checkpointer.checkpoint()
    assert wal_bytes(path) == 0
    assert notes(engine) == 3 * ROWS


def test_a_begin_refused_by_sqlite__fails_as_sqlalchemy_error_and_the_connection_is_reusable(
    database: tuple[Path, Engine],
) -> None:
    path, engine = database
    outsider = sqlite3.connect(path, isolation_level=None)
    outsider.execute("BEGIN IMMEDIATE")  # another program holding SQLite's write lock
    try:
        with engine.connect() as connection:
            raw = connection.connection.dbapi_connection
            assert raw is not None
            raw.execute("PRAGMA busy_timeout=50")  # give up at once rather than in 30 s
            connection.execution_options(loopgate_write=True)
            with pytest.raises(OperationalError, match="locked"):
                connection.begin()
            raw.execute("PRAGMA busy_timeout=30000")
    finally:
        outsider.rollback()
        outsider.close()
    write_notes(engine)
    assert notes(engine) == 2 * ROWS
