"""PostgreSQL connections that the server dropped (a restart, a network timeout) are replaced:
unseen when they sat idle, at the cost of one failed statement when they were in use just
before, and then for the whole pool at once, not once per connection."""

import time
from collections.abc import Iterator
from contextlib import ExitStack

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from gateway.settings import Settings
from gateway.store import driver
from gateway.store.engine import IDLE_PING_S, make_engine, read_transaction

pytestmark = pytest.mark.postgres

_PID = driver.Statement("SELECT pg_backend_pid()")


@pytest.fixture
def pool(settings: Settings) -> Iterator[Engine]:
    """An engine of its own, so the test owns every connection in its pool."""
    engine = make_engine(settings.database_url, pool_size=3)
    yield engine
    engine.dispose()


def _pids_of_three_connections(engine: Engine) -> set[int]:
    with ExitStack() as stack:
        connections = [stack.enter_context(read_transaction(engine)) for _ in range(3)]
        return {_pid(connection) for connection in connections}


def _pid(connection: Connection) -> int:
    row = driver.first(connection, _PID)
    assert row is not None
    return int(row[0])


def _terminate(engine: Engine, pids: set[int]) -> None:
    with engine.connect() as admin:  # as a database restart would
        for pid in pids:
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})


def test_an_idle_connection_the_server_dropped__is_replaced_unseen(
    pool: Engine, engine: Engine
) -> None:
    pids = _pids_of_three_connections(pool)
    _terminate(engine, pids)
    time.sleep(IDLE_PING_S + 0.2)

    with read_transaction(pool) as connection:
        assert _pid(connection) not in pids


def test_connections_dropped_while_busy__fail_one_statement_then_the_pool_is_new(
    pool: Engine, engine: Engine
) -> None:
    pids = _pids_of_three_connections(pool)
    _terminate(engine, pids)

    with pytest.raises(OperationalError), read_transaction(pool) as connection:
        _pid(connection)
    # every other pooled connection was dead too: none of them is handed out again
    assert _pids_of_three_connections(pool).isdisjoint(pids)
