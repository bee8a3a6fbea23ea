"""The delivery's held read connection: kept while deliveries are in flight, returned after,
every read seeing the latest commits, and a broken connection replaced (real database)."""

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError

from gateway.store.engine import make_engine, write_transaction
from gateway.subscriptions import records
from gateway.subscriptions.reads import HeldReads


def _token(reads: HeldReads) -> str | None:
    with reads.reading() as connection:
        return records.generation(connection)


def test_reads__one_connection_while_deliveries_are_in_flight_returned_after_the_last(
    database_url: str,
) -> None:
    engine = make_engine(database_url)  # its own pool, so checked-out counts are this test's
    try:
        reads = HeldReads(engine)
        with reads.in_flight():
            with reads.in_flight(), reads.reading() as first:
                pass
            assert engine.pool.checkedout() == 1  # type: ignore[attr-defined]
            with reads.reading() as second:
                assert second is first
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
    finally:
        engine.dispose()


def test_reads__each_read_sees_what_was_committed_before_it(engine: Engine) -> None:
    reads = HeldReads(engine)
    with reads.in_flight():
        before = _token(reads)
        with write_transaction(engine) as connection:
            records.new_generation(connection)
        after = _token(reads)
        assert after is not None
        assert after != before
        with write_transaction(engine) as connection:
            records.new_generation(connection)
        assert _token(reads) not in (before, after)


def test_reads__an_error_returns_the_connection_and_the_next_read_gets_one(
    engine: Engine,
) -> None:
    reads = HeldReads(engine)
    used: list[Connection] = []

    def read_then_fail() -> None:
        with reads.reading() as connection:
            used.append(connection)
            connection.execute(text("SELECT 1"))
            raise LookupError("rendering failed")

    with reads.in_flight():
        with pytest.raises(LookupError):
            read_then_fail()
        with reads.reading() as fresh:
            assert fresh is not used[0]
            assert fresh.execute(text("SELECT 1")).scalar() == 1


@pytest.mark.postgres
def test_reads__a_connection_lost_mid_burst_fails_one_read_then_reads_go_on(
    engine: Engine,
) -> None:
    reads = HeldReads(engine)
    with reads.in_flight():
        with reads.reading() as held:
            pid = held.execute(text("SELECT pg_backend_pid()")).scalar()
        with engine.connect() as admin:  # as a database restart would
            admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        with pytest.raises(OperationalError):
            _token(reads)
        with reads.reading() as fresh:
            assert fresh.execute(text("SELECT pg_backend_pid()")).scalar() != pid
