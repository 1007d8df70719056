"""A SQLite projection catching up lets other processes' appends in between its batches.

Each batch of an exactly-once projection runs in ``BEGIN IMMEDIATE``; before the writers'
gate (``evstore/backends/sqlite.py``) the next batch took the lock again at once and an
append from another process waited for the whole catch-up (or failed after
``busy_timeout``). Here a rebuild runs in another process while this one appends 20 events,
one at a time: all 20 must commit while the rebuild is still running - a proof by order
(the rebuild's checkpoint has not reached the end), not by a clock. The worst wait is a
figure, measured by ``python -m benchmarks.sqlite_projection_lock``.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

import evstore

REBUILD = """
import sys, time, evstore

def setup(tx):
    tx.execute("CREATE TABLE IF NOT EXISTS totals (id INTEGER PRIMARY KEY, n INTEGER)")
    tx.execute("INSERT OR IGNORE INTO totals VALUES (1, 0)")

def handle(event, tx):
    tx.execute("UPDATE totals SET n = n + 1")
    end = time.perf_counter() + 0.0005  # the handler's own work
    while time.perf_counter() < end:
        pass

with evstore.connect(sys.argv[1]) as store:
    evstore.Projection(store, "rebuild", handle, setup=setup, batch_size=100).catch_up()
"""

EVENTS = 20_000
APPENDS = 20
PER_APPEND = 100  # events (one full batch) the rebuild may handle per append, on average


@pytest.mark.slow
def test_appends_of_another_process_get_in_while_a_projection_rebuilds(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rebuild.db'}"
    with evstore.connect(url) as store:
        for start in range(0, EVENTS, 1000):
            batch = [evstore.NewEvent("Item", {"i": i}) for i in range(start, start + 1000)]
            last = store.append(f"item-{start}", batch).last_position
        rebuild = subprocess.Popen([sys.executable, "-c", REBUILD, url])
        try:
            deadline = time.monotonic() + 120
            while not store.backend.get_checkpoint("rebuild"):  # it is under way
                assert rebuild.poll() is None, "the rebuild ended before it started"
                assert time.monotonic() < deadline, "the rebuild never started"
                time.sleep(0.01)
            began = store.backend.get_checkpoint("rebuild") or 0
            for i in range(APPENDS):
                store.append("writer", [evstore.NewEvent("Written", {"i": i})])
            reached = store.backend.get_checkpoint("rebuild") or 0
            print(f"the rebuild handled {reached - began} events during {APPENDS} appends")
            assert rebuild.poll() is None and reached < last, (
                f"the {APPENDS} appends only got in once the rebuild had ended"
            )
            # Each append waited for about one of the rebuild's batches, not for the rebuild.
            assert reached - began < APPENDS * PER_APPEND
        finally:
            assert rebuild.wait(300) == 0
        assert (store.backend.get_checkpoint("rebuild") or 0) >= last
        assert store.stream_version("writer") == APPENDS
