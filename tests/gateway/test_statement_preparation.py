"""On PostgreSQL the fixed statements every write runs are prepared once per connection and then
only bound and executed; searches, whose plans depend on their values, are never prepared."""

import pytest
from sqlalchemy import Connection, Engine, text

from gateway.store import resource_rows
from gateway.store.engine import read_transaction

pytestmark = pytest.mark.postgres


def prepared(connection: Connection) -> list[str]:
    rows = connection.execute(text("SELECT statement FROM pg_prepared_statements"))
    return [statement for (statement,) in rows]


def test_a_fixed_driver_statement_is_prepared_on_its_first_run(engine: Engine) -> None:
    with read_transaction(engine) as connection:
        before = prepared(connection)
        assert resource_rows.current(connection, "Task", "no-such-task") is None
        after = prepared(connection)
    new = [statement for statement in after if statement not in before]
    assert len(new) == 1
    assert "FROM resource" in new[0]
    assert "WHERE r.resource_type = $1 AND r.id = $2" in new[0]


def test_statements_outside_the_driver_stay_unprepared_however_often_they_run(
    engine: Engine,
) -> None:
    search = "SELECT count(*) FROM resource WHERE resource_type = :type AND last_updated > :since"
    with read_transaction(engine) as connection:
        for _ in range(12):  # psycopg's own default would prepare it on the sixth run
            connection.execute(text(search), {"type": "Task", "since": 0}).scalar_one()
        statements = prepared(connection)
    assert not [statement for statement in statements if "last_updated >" in statement]
