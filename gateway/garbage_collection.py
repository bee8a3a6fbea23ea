"""Python's cyclic garbage collector, set for a long-running server once the app has started.

What start-up loads (FHIR model classes and their validators, SQLAlchemy's tables, the
statements every request runs) lives as long as the process, yet every full collection
scanned it again: some 100 ms each, about 5 % of the server's CPU under load. It is frozen
out of the scans instead (``gc.freeze``). Young objects are collected less often, because a
request's objects nearly all die by reference counting before any collection could find them.
https://docs.python.org/3/library/gc.html#gc.freeze
"""

import gc
from collections.abc import Iterator
from contextlib import contextmanager

# allocations between young collections (Python's default is 700), and how many collections
# of one generation make one of the next (default 10 and 10)
YOUNG_THRESHOLD = 20_000
OLDER_THRESHOLDS = (20, 20)


@contextmanager
def settled_heap() -> Iterator[None]:
    """While serving: what exists now is frozen, and young collections are rarer. The
    collector's settings are restored at the end (several apps start and stop in a test run)."""
    before = gc.get_threshold()
    # no gc.collect() first: it costs ~85 ms per start (every test's app), and what little
    # garbage start-up left is frozen with the rest, a one-off of a few kilobytes
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*before)
        gc.unfreeze()
