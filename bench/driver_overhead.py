"""What SQLAlchemy's execution layer adds to one statement, against the DB-API cursor
(bench/README.md, "Driver statements"): ``python -m bench.driver_overhead``.

The same primary-key read of ``resource``, 20,000 times each way on a temporary SQLite file,
twice (the second pass is printed). It is why the statements every write runs go through
``gateway/store/driver.py``.
"""

import tempfile
import time
from pathlib import Path

from sqlalchemy import bindparam, create_engine, select
from sqlmodel import SQLModel

from gateway.store.tables import resource_table

READS = 20_000
KEYS = 1_000
RAW = "SELECT version_id, last_updated FROM resource WHERE resource_type = ? AND id = ?"


def main() -> None:
    with tempfile.TemporaryDirectory() as workdir:
        engine = create_engine(f"sqlite:///{Path(workdir) / 'overhead.db'}")
        SQLModel.metadata.create_all(engine, tables=[resource_table])
        rows = [
            {"resource_type": "Task", "id": f"t{n}", "version_id": 1, "last_updated": n}
            for n in range(KEYS)
        ]
        with engine.begin() as connection:
            connection.execute(resource_table.insert(), rows)
        c = resource_table.c
        query = select(c.version_id, c.last_updated).where(
            c.resource_type == bindparam("t"), c.id == bindparam("i")
        )
        with engine.connect() as connection:
            cursor = connection.connection.driver_connection.cursor()  # type: ignore[union-attr]
            for _ in range(2):
                started = time.perf_counter()
                for n in range(READS):
                    connection.execute(query, {"t": "Task", "i": f"t{n % KEYS}"}).first()
                core = (time.perf_counter() - started) / READS * 1e6
                started = time.perf_counter()
                for n in range(READS):
                    cursor.execute(RAW, ("Task", f"t{n % KEYS}")).fetchone()
                raw = (time.perf_counter() - started) / READS * 1e6
        engine.dispose()
    print(f"SQLAlchemy Core execute: {core:.1f} µs per statement")
    print(f"DB-API cursor:           {raw:.1f} µs per statement")
    print(f"execution layer:         {core - raw:.1f} µs per statement")


if __name__ == "__main__":
    main()
