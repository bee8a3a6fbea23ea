"""``HeldReads``: the delivery handler's reads, on one connection kept while deliveries are in
flight, so a notification burst pays no pool checkout and connection ping per notification.

Each read still sees what was committed before it: SQLite's read transaction ends after each
use, and on PostgreSQL the connection is in autocommit (every statement sees the latest
commits; the default READ COMMITTED gave the same within a transaction). The connection goes
back to the pool once no delivery is in flight, and after any error: a connection that broke
(a database restart) fails that one read, which the outbox retries, and the next read gets a
fresh, pinged connection from the pool. Deliveries run on one event loop and reads never
await, so one connection is enough.
"""

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Connection, Engine

from gateway.store.engine import is_sqlite


class HeldReads:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._connection: Connection | None = None
        self._in_flight = 0

    @contextmanager
    def in_flight(self) -> Iterator[None]:
        """Around one whole delivery: the connection is kept until the last one ends."""
        self._in_flight += 1
        try:
            yield
        finally:
            self._in_flight -= 1
            if not self._in_flight:
                self._release()

    @contextmanager
    def reading(self) -> Iterator[Connection]:
        """A connection for reads that end before the next ``await``."""
        connection = self._connection
        if connection is None:
            connection = self.engine.connect()
            if not is_sqlite(connection):
                # no BEGIN and COMMIT round trips; SQLite's pooled connections keep their own
                # settings (the store issues BEGIN itself), so they are left alone
                connection = connection.execution_options(isolation_level="AUTOCOMMIT")
            self._connection = connection
        try:
            yield connection
            connection.commit()
        except BaseException:
            self._release()
            raise

    def _release(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()
