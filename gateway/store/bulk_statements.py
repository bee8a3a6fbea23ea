"""Multi-row inserts, updates and deletes built from a table's own columns.

SQLite runs the one-row form once per row in a single ``executemany`` (a loop in C).
PostgreSQL gets one statement over ``unnest`` of one array per column, so N rows cost one
parse and one round trip instead of N of each; the arrays go in binary form, which spares
escaping every quote of every JSON body.
"""

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql

from gateway.store import driver
from gateway.store.driver import Statement


class BulkStatement:
    """One multi-row statement; ``send`` takes rows as tuples in the order of the columns it
    was built from."""

    def __init__(self, sqlite: Statement, postgresql: Statement) -> None:
        self._sqlite = sqlite
        self._postgresql = postgresql

    def send(self, connection: Connection, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        if connection.dialect.name == "sqlite":
            driver.run_many(connection, self._sqlite, rows)
        else:
            driver.run(
                connection, self._postgresql, [list(values) for values in zip(*rows, strict=True)]
            )


def insert_rows(table: Table, columns: Sequence[str] | None = None) -> BulkStatement:
    """``INSERT`` of whole rows (or of ``columns``, the rest taking their defaults)."""
    names = list(columns or (column.name for column in table.columns))
    listed = ", ".join(names)
    return BulkStatement(
        Statement(f"INSERT INTO {table.name} ({listed}) VALUES ({', '.join('?' * len(names))})"),
        Statement(
            f"INSERT INTO {table.name} ({listed}) SELECT * FROM {_unnest(table, names)}",
            binary=True,
        ),
    )


def delete_where(table: Table, keys: Sequence[str]) -> BulkStatement:
    """``DELETE`` of the rows whose ``keys`` columns equal each row's values."""
    match = " AND ".join(f"{name} = ?" for name in keys)
    joined = " AND ".join(f"{table.name}.{name} = k.{name}" for name in keys)
    return BulkStatement(
        Statement(f"DELETE FROM {table.name} WHERE {match}"),
        Statement(
            f"DELETE FROM {table.name} USING {_unnest(table, keys)} WHERE {joined}", binary=True
        ),
    )


def update_where(table: Table, keys: Sequence[str], values: Sequence[str]) -> BulkStatement:
    """``UPDATE`` setting ``values`` on the row whose ``keys`` equal each row's; rows are
    tuples of the values first, then the keys."""
    assignments = ", ".join(f"{name} = ?" for name in values)
    match = " AND ".join(f"{name} = ?" for name in keys)
    from_k = ", ".join(f"{name} = k.{name}" for name in values)
    joined = " AND ".join(f"{table.name}.{name} = k.{name}" for name in keys)
    names = [*values, *keys]
    return BulkStatement(
        Statement(f"UPDATE {table.name} SET {assignments} WHERE {match}"),
        Statement(
            f"UPDATE {table.name} SET {from_k} FROM {_unnest(table, names)} WHERE {joined}",
            binary=True,
        ),
    )


def _unnest(table: Table, names: Sequence[str]) -> str:
    """``unnest(?::type[], …) AS k(name, …)``: one typed array per column."""
    dialect = postgresql.dialect()  # type: ignore[no-untyped-call]
    arrays = ", ".join(f"?::{table.c[name].type.compile(dialect=dialect)}[]" for name in names)
    return f"unnest({arrays}) AS k({', '.join(names)})"
