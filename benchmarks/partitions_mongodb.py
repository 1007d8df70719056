"""Log partitions on MongoDB: 8 writers on 8 different streams, P = 1 vs P = 16.

    .venv/bin/python -m benchmarks.partitions_mongodb [--url mongodb://...] [--appends 200]
        [--repeat 3]

Each writer thread appends single events to its own stream through its own store. With
P = 1 every append's transaction first increments the one counter document, so concurrent
appends conflict there (MongoDB: first writer wins, the loser is retried); with P = 16 the
8 streams land in different partitions (stream ids are picked so) and each append
increments only its partition's counter. Reported per P: events/s (median of --repeat runs
on fresh databases, P = 1 and P = 16 interleaved) and transaction retries per append
(``transaction_retries`` counted by the backend: write conflicts and other transient errors).
Without --url a SecantusDB server is started on a free loopback port (the test helper).
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid

import evstore
from evstore.spi import stable_hash

WRITERS = 8


def _streams(partitions: int) -> list[str]:
    """WRITERS stream ids in WRITERS different partitions (of 16), the same ids for P = 1."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < WRITERS:
        sid = f"bench-{i}"
        found.setdefault(stable_hash(sid) % 16, sid)
        i += 1
    return list(found.values())


def run(base: str, partitions: int, appends: int) -> tuple[float, float]:
    """(events/s, retries per append) for one fresh database."""
    from tests.backends.mongodb import fresh_database

    with fresh_database(base) as url:
        stores = [evstore.connect(url, partitions=partitions) for _ in range(WRITERS)]
        streams = _streams(partitions)
        try:
            for store, sid in zip(stores, streams, strict=True):
                store.append(f"warm-{sid}", [evstore.NewEvent("Warm", {})])
            before = sum(s.backend.transaction_retries for s in stores)  # type: ignore[attr-defined]
            barrier = threading.Barrier(WRITERS + 1)

            def write(store: evstore.EventStore, sid: str) -> None:
                barrier.wait()
                for i in range(appends):
                    store.append(sid, [evstore.NewEvent("Bench", {"i": i, "id": uuid.uuid4().hex})])

            threads = [
                threading.Thread(target=write, args=(s, sid))
                for s, sid in zip(stores, streams, strict=True)
            ]
            for t in threads:
                t.start()
            barrier.wait()
            start = time.perf_counter()
            for t in threads:
                t.join()
            elapsed = time.perf_counter() - start
            retries = sum(s.backend.transaction_retries for s in stores) - before  # type: ignore[attr-defined]
            if partitions > 1:
                assert len({stores[0].partition_of(sid) for sid in streams}) == WRITERS
        finally:
            for s in stores:
                s.close()
    total = WRITERS * appends
    return total / elapsed, retries / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--url", help="a MongoDB replica set (default: start SecantusDB)")
    parser.add_argument("--appends", type=int, default=200, help="appends per writer")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    base = args.url
    if base is None:
        from tests.backends.mongodb import server_url

        base = server_url()
    results: dict[int, list[tuple[float, float]]] = {1: [], 16: []}
    for _ in range(args.repeat):
        for p in (1, 16):
            results[p].append(run(base, p, args.appends))
    print(f"{WRITERS} writers x {args.appends} single-event appends, 8 different streams")
    print("P    events/s (median)   retries per append (median)   runs")
    for p, rows in results.items():
        rate = statistics.median(r for r, _ in rows)
        retries = statistics.median(q for _, q in rows)
        runs = ", ".join(f"{r:.0f}/s {q:.2f}" for r, q in rows)
        print(f"{p:<4} {rate:>10.0f}          {retries:>8.2f}                      {runs}")


if __name__ == "__main__":
    main()
