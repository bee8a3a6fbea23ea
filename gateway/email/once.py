"""``insert_once``: the database decides which of several processes does a thing first."""

from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from gateway.store.engine import is_sqlite


def insert_once(connection: Connection, table: Table, values: dict[str, Any]) -> bool:
    """Insert a row unless one with its primary key exists; True if this call inserted it.

    Processes racing for the same key each get an answer and exactly one gets True:
    PostgreSQL makes the later insert wait for the earlier transaction and then skips it,
    SQLite admits one writer at a time.
    """
    insert = sqlite_insert if is_sqlite(connection) else postgresql_insert
    statement = insert(table).values(**values).on_conflict_do_nothing()
    # RETURNING, not rowcount: SQLAlchemy keeps no row count for an INSERT on PostgreSQL
    inserted = connection.execute(statement.returning(*table.primary_key.columns)).first()
    return inserted is not None
