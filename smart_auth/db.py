"""Transactions on the engine gateway hands in: one per logical operation.

SQLite write transactions must start with ``BEGIN IMMEDIATE`` (gateway's engine does that when a
connection carries ``loopgate_write=True``), so a read-then-write never fails on a lock upgrade.
"""

import time
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine


def now() -> int:
    """UTC epoch seconds, the unit of every ``*_at`` column."""
    return int(time.time())


@contextmanager
def writing(engine: Engine) -> Iterator[Connection]:
    """A write transaction: commits on success, rolls back on any exception."""
    with engine.connect() as connection:
        connection.execution_options(loopgate_write=True)
        with connection.begin():
            yield connection


@contextmanager
def reading(engine: Engine) -> Iterator[Connection]:
    """A connection for a read. On PostgreSQL without BEGIN and COMMIT: in READ COMMITTED a
    transaction gives each statement its own snapshot anyway, and they cost two round trips
    on every API request (the token lookup)."""
    with engine.connect() as connection:
        if connection.dialect.name == "sqlite":
            with connection.begin():
                yield connection
        else:
            yield connection.execution_options(isolation_level="AUTOCOMMIT")
