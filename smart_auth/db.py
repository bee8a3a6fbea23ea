"""Transactions on the engine gateway hands in: one per logical operation; and the one read
that needs none (``first_row``: the token lookup of every request).

SQLite write transactions must start with ``BEGIN IMMEDIATE`` (gateway's engine does that when a
connection carries ``loopgate_write=True``), so a read-then-write never fails on a lock upgrade.
"""

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Connection, Engine
from sqlalchemy.exc import DBAPIError


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


def first_row(engine: Engine, statement: str, params: Sequence[Any]) -> tuple[Any, ...] | None:
    """The first row of one read (``statement`` written with ``?`` placeholders), sent
    straight to a pooled DB-API connection, outside any transaction.

    For the token lookup every API request makes: SQLAlchemy's execution layer and the
    transaction around it took about 60 of its 80 µs of CPU on SQLite and half of its 300 µs
    on PostgreSQL (measured in-process; README, *Benchmark*). One statement needs no
    transaction: it reads one snapshot either way. Errors are SQLAlchemy's, parameters hidden.
    """
    dialect = engine.dialect
    postgresql = dialect.name != "sqlite"  # SQLite's connections never BEGIN on their own
    pooled = engine.raw_connection()
    try:
        dbapi_connection: Any = pooled.dbapi_connection
        if postgresql:
            dbapi_connection.autocommit = True  # no BEGIN, and no ROLLBACK when returned
        cursor: Any = pooled.cursor()
        try:
            if postgresql:
                cursor.execute(statement.replace("?", "%s"), params, prepare=True)
            else:
                cursor.execute(statement, params)
            row = cursor.fetchone()
        except dialect.loaded_dbapi.Error as error:
            if dialect.is_disconnect(error, dbapi_connection, cursor):
                # the pool drops this connection and replaces those made before it (a restart)
                engine.pool._invalidate(pooled, error)
            raise DBAPIError.instance(
                statement,
                None,
                error,
                dialect.loaded_dbapi.Error,
                hide_parameters=True,
                dialect=dialect,
            ) from error
        finally:
            cursor.close()
            if postgresql and pooled.is_valid:
                _leave_autocommit(pooled)
        return tuple(row) if row is not None else None
    finally:
        pooled.close()


def _leave_autocommit(pooled: Any) -> None:
    """Autocommit off again, as the pool's other users expect; a connection that refuses is
    discarded, never handed out in autocommit, where a write would commit statement by
    statement."""
    try:
        pooled.dbapi_connection.autocommit = False
    except Exception:
        pooled.invalidate()
