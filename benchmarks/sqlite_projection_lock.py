"""How long another process's append waits while a SQLite projection rebuilds.

    .venv/bin/python -m benchmarks.sqlite_projection_lock [--seconds 30] [--path DIR]

One process rebuilds an exactly-once projection over a log filled beforehand (each event
costs its handler about ``--handler-ms``; the log is sized so that the rebuild lasts about
``--seconds``); another process appends one event every 20 ms for as long as the rebuild
runs and times each append. Printed: the rebuild's length, how many appends got in during
it, and their wait (median, p99, worst), next to the same appends with no projection
running. The target (issue 10): worst wait under 100 ms during a 30 s rebuild.
Wall-clock figures: run it on a quiet machine, and compare runs interleaved.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import statistics
import tempfile
import time
from typing import Any

import evstore

PACE = 0.02


def _fill(url: str, count: int) -> int:
    with evstore.connect(url) as store:
        last = 0
        for start in range(0, count, 1000):
            batch = [evstore.NewEvent("Item", {"i": i}) for i in range(start, start + 1000)]
            last = store.append(f"item-{start}", batch).last_position
        return last


def _rebuild(url: str, handler_ms: float, started: Any, done: Any) -> None:
    def setup(tx: Any) -> None:
        tx.execute("CREATE TABLE IF NOT EXISTS totals (id INTEGER PRIMARY KEY, n INTEGER)")
        tx.execute("INSERT OR IGNORE INTO totals VALUES (1, 0)")

    def handle(event: evstore.RecordedEvent, tx: Any) -> None:
        tx.execute("UPDATE totals SET n = n + 1")
        end = time.perf_counter() + handler_ms / 1000
        while time.perf_counter() < end:  # the handler's own work, holding the GIL
            pass

    with evstore.connect(url) as store:
        projection = evstore.Projection(store, "rebuild", handle, setup=setup, batch_size=100)
        started.set()
        projection.catch_up()
    done.set()


def _appends(url: str, until: Any, seconds: float | None) -> list[float]:
    """Append one event every PACE seconds until ``until`` is set (or for ``seconds``)."""
    waits: list[float] = []
    with evstore.connect(url) as store:
        end = None if seconds is None else time.monotonic() + seconds
        while not until.is_set() if end is None else time.monotonic() < end:
            begin = time.perf_counter()
            store.append("writer", [evstore.NewEvent("Written", {})])
            waits.append(time.perf_counter() - begin)
            time.sleep(PACE)
    return waits


def _writer(url: str, until: Any, out: Any) -> None:
    out.put(_appends(url, until, None))


def measure(path: str, seconds: float, handler_ms: float) -> dict[str, float]:
    """Run the scenario once on a fresh database in ``path``; return the figures."""
    url = f"sqlite:///{os.path.join(path, f'lock-{time.time_ns()}.db')}"
    _fill(url, max(1000, int(seconds * 1000 / handler_ms) // 1000 * 1000))
    ctx = multiprocessing.get_context("spawn")
    baseline = _appends(url, ctx.Event(), 2.0)
    started, done, out = ctx.Event(), ctx.Event(), ctx.Queue()
    rebuild = ctx.Process(target=_rebuild, args=(url, handler_ms, started, done))
    rebuild.start()
    writer = ctx.Process(target=_writer, args=(url, done, out))
    writer.start()
    started.wait(60)
    begin = time.monotonic()
    waits: list[float] = out.get(timeout=seconds * 10 + 120)
    writer.join()
    rebuild.join()
    length = time.monotonic() - begin
    if rebuild.exitcode != 0 or writer.exitcode != 0:
        raise RuntimeError(
            f"a process failed: rebuild {rebuild.exitcode}, writer {writer.exitcode}"
        )
    waits = waits or [float("nan")]
    return {
        "rebuild_s": length,
        "appends_during_rebuild": len(waits),
        "median_ms": statistics.median(waits) * 1000,
        "p99_ms": sorted(waits)[int(len(waits) * 0.99)] * 1000,
        "worst_ms": max(waits) * 1000,
        "baseline_worst_ms": max(baseline) * 1000,
        "baseline_median_ms": statistics.median(baseline) * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=30.0, help="rebuild length to aim for")
    parser.add_argument("--handler-ms", type=float, default=0.5, help="work per event")
    parser.add_argument("--path", default=None, help="directory for the database")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.path) as path:
        figures = measure(path, args.seconds, args.handler_ms)
    print(
        f"rebuild {figures['rebuild_s']:.1f} s; {figures['appends_during_rebuild']:.0f} appends "
        f"by another process during it: median {figures['median_ms']:.1f} ms, "
        f"p99 {figures['p99_ms']:.1f} ms, worst {figures['worst_ms']:.1f} ms "
        f"(no projection running: median {figures['baseline_median_ms']:.1f} ms, "
        f"worst {figures['baseline_worst_ms']:.1f} ms)"
    )


if __name__ == "__main__":
    main()
