"""What SQLite's savepoint journal costs a group commit, kept in a temp file or in memory
(bench/README.md, "SQLite savepoint journals"): ``python -m bench.savepoint_journal``.

Referral-shaped rows (six resources, their versions and 46 index rows) are inserted ten
referrals per transaction, each referral in its own savepoint as ``write_batches.py`` does,
on a migrated temporary database opened by the product's engine. Rounds alternate between
``temp_store=DEFAULT`` and ``MEMORY`` so that a drifting VM slows both alike.
"""

import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from gateway.fhir.ids import new_resource_id
from gateway.store.engine import make_engine
from gateway.store.migrate import upgrade_database

ROUNDS = 6
REFERRALS = 1_000
PER_COMMIT = 10
TYPES = ("Patient", "ServiceRequest", "Condition", "Consent", "Task", "Provenance")
INSERTS = {
    "resource": "INSERT INTO resource (resource_type, id, version_id, last_updated, deleted,"
    " created_by) VALUES (?, ?, 1, ?, 0, 'Organization/h')",
    "resource_version": "INSERT INTO resource_version (resource_type, id, version_id,"
    " last_updated, method, body) VALUES (?, ?, 1, ?, 'POST', ?)",
    "search_token": "INSERT INTO search_token (resource_type, resource_id, param, system, code)"
    " VALUES (?, ?, ?, ?, ?)",
    "search_reference": "INSERT INTO search_reference (resource_type, resource_id, param,"
    " target_type, target_id, target_base) VALUES (?, ?, ?, ?, ?, '')",
    "search_date": "INSERT INTO search_date (resource_type, resource_id, param, low, high)"
    " VALUES (?, ?, ?, ?, ?)",
    "search_string": "INSERT INTO search_string (resource_type, resource_id, param, normalised,"
    " exact) VALUES (?, ?, ?, ?, ?)",
}


def referral_rows(n: int) -> dict[str, list[tuple[Any, ...]]]:
    keys = [(kind, new_resource_id()) for kind in TYPES]
    now = time.time_ns() // 1000
    patient = keys[0][1]
    return {
        "resource": [(*key, now) for key in keys],
        "resource_version": [(*key, now, "x" * 650) for key in keys],
        "search_token": [(*keys[k % 6], f"p{k % 5}", "http://s", f"c{k % 40}") for k in range(18)],
        "search_reference": [(*keys[k % 6], f"r{k % 7}", "Patient", patient) for k in range(17)],
        "search_date": [(*keys[k % 6], f"d{k}", now, now + 1) for k in range(5)],
        "search_string": [(*keys[0], f"s{k}", f"name{n}", f"Name{n}") for k in range(6)],
    }


def insert_referrals(raw: Any, count: int) -> float:
    """CPU seconds per referral, commits included."""
    batches = [
        [referral_rows(n) for n in range(s, s + PER_COMMIT)] for s in range(0, count, PER_COMMIT)
    ]
    started = time.process_time()
    for batch in batches:
        raw.execute("BEGIN IMMEDIATE")
        for rows in batch:
            raw.execute("SAVEPOINT write")
            for table, values in rows.items():
                raw.executemany(INSERTS[table], values)
            raw.execute("RELEASE write")
        raw.execute("COMMIT")
    return (time.process_time() - started) / count


def main() -> None:
    results: dict[str, list[float]] = {"DEFAULT": [], "MEMORY": []}
    with tempfile.TemporaryDirectory() as workdir:
        engine = make_engine(f"sqlite:///{Path(workdir) / 'journal.db'}")
        upgrade_database(engine)
        with engine.connect() as connection:
            raw = connection.connection.driver_connection
            assert raw is not None
            insert_referrals(raw, REFERRALS)  # warm-up: trees of some depth
            for round_number in range(ROUNDS):
                arms = ("DEFAULT", "MEMORY") if round_number % 2 == 0 else ("MEMORY", "DEFAULT")
                for temp_store in arms:
                    raw.execute(f"PRAGMA temp_store={temp_store}")
                    results[temp_store].append(insert_referrals(raw, REFERRALS))
        engine.dispose()
    for temp_store, seconds in results.items():
        rounds = ", ".join(f"{s * 1e6:.0f}" for s in seconds)
        median = statistics.median(seconds) * 1e6
        print(f"temp_store={temp_store:<8} {median:5.0f} µs CPU per referral (rounds: {rounds})")


if __name__ == "__main__":
    main()
