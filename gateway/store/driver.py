"""Statements sent straight to the DB-API cursor of a SQLAlchemy connection, for the few that
every request runs. SQLAlchemy's execution layer adds about 35–40 µs to each statement on a
2-vCPU VM, three to four times what SQLite takes for a primary-key read (bench/README.md,
"Driver statements").

They run in the connection's own transaction and fail with SQLAlchemy's exception types
(``IntegrityError`` and the rest), parameters hidden, so callers handle them as before. On
PostgreSQL they are prepared on first use, as their text never varies; searches, even the
prebuilt ones, stay unprepared (``Statement.prepare``, ``engine.py``).
"""

from collections.abc import Iterable, Sequence
from typing import Any, cast

from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError

Row = tuple[Any, ...]


class Statement:
    """One statement's text, written with ``?`` placeholders, and its PostgreSQL spelling
    (psycopg's ``%s``) when that differs by more than the placeholders.

    ``binary``: PostgreSQL gets the parameters in binary form (psycopg's ``%b``). For arrays
    that saves escaping each element: a referral's five JSON bodies as one ``text[]`` took
    355 µs of CPU to send as text and 40 µs in binary.

    ``prepare``: a named prepared statement on PostgreSQL. A search must not be one: after a
    few runs PostgreSQL plans it once for all values, blind to how many rows each matches
    (``engine.py``)."""

    __slots__ = ("postgresql", "prepare", "sqlite")

    def __init__(
        self,
        sqlite: str,
        postgresql: str | None = None,
        *,
        binary: bool = False,
        prepare: bool = True,
    ) -> None:
        if "%" in sqlite or "%" in (postgresql or ""):
            raise ValueError("'%' would be read as a psycopg placeholder; bind it instead")
        self.sqlite = sqlite
        self.postgresql = (postgresql or sqlite).replace("?", "%b" if binary else "%s")
        self.prepare = prepare

    def text_for(self, connection: Connection) -> str:
        return self.sqlite if connection.dialect.name == "sqlite" else self.postgresql


def rows(connection: Connection, statement: Statement, params: Sequence[Any] = ()) -> list[Row]:
    """Every row the statement returns, as plain tuples."""
    cursor = _run(connection, statement, params, many=False)
    try:
        return [tuple(row) for row in cursor.fetchall()]
    finally:
        cursor.close()


def first(connection: Connection, statement: Statement, params: Sequence[Any] = ()) -> Row | None:
    """The first row the statement returns, or None."""
    cursor = _run(connection, statement, params, many=False)
    try:
        row = cursor.fetchone()
        return tuple(row) if row is not None else None
    finally:
        cursor.close()


def run(connection: Connection, statement: Statement, params: Sequence[Any] = ()) -> int:
    """Run a statement that returns no rows; its row count."""
    cursor = _run(connection, statement, params, many=False)
    try:
        return int(cursor.rowcount)
    finally:
        cursor.close()


def run_many(
    connection: Connection, statement: Statement, param_rows: Iterable[Sequence[Any]]
) -> None:
    """Run a statement once per parameter row, in one driver call."""
    batch = list(param_rows)
    if batch:
        _run(connection, statement, batch, many=True).close()


def _run(connection: Connection, statement: Statement, params: Any, *, many: bool) -> Any:
    if not connection.in_transaction():
        connection.begin()  # as SQLAlchemy's autobegin would (SQLite's BEGIN is ours to send)
    fairy = connection.connection
    dialect = connection.dialect
    text = statement.text_for(connection)
    cursor = fairy.cursor()
    try:
        if many:
            cursor.executemany(text, params)
        elif dialect.name == "sqlite":
            cursor.execute(text, params)
        else:
            # psycopg's own argument
            cast(Any, cursor).execute(text, params, prepare=statement.prepare)
    except dialect.loaded_dbapi.Error as error:
        cursor.close()
        if dialect.is_disconnect(error, fairy.dbapi_connection, cursor):
            # the rest of the pool most likely died with it (a database restart): have every
            # connection made before now replaced at its next checkout, as SQLAlchemy does for
            # its own statements, rather than fail once per connection
            connection.engine.pool._invalidate(fairy, error)
            connection.invalidate(error)
        raise DBAPIError.instance(
            text,
            None,
            error,
            dialect.loaded_dbapi.Error,
            hide_parameters=True,
            dialect=dialect,
            ismulti=many,
        ) from error
    return cursor
