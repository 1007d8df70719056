"""What honouring retention at once costs a small stream read: with and without.

    python -m benchmarks.retention_cost [--reads 2000] [--reps 5] [--postgres URL]

Each read is ``get_events`` of a 10-event stream on a store with no retention metadata
(the common case). ``at once`` is the default (``retention_refresh=0``: the ``$retention``
stream is read before every read); ``refresh 60 s`` reuses what was read
(``retention_refresh=60``). The two stores alternate ``reps`` times; medians of the mean
time per read are printed. On a shared machine compare the columns of one run.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import evstore
from evstore import NewEvent


def per_read(store: evstore.EventStore, reads: int) -> float:
    start = time.perf_counter()
    for _ in range(reads):
        store.get_events("s-1")
    return (time.perf_counter() - start) / reads * 1e6


def measure(url: str, reads: int, reps: int) -> tuple[float, float]:
    with evstore.connect(url) as eager, evstore.connect(url, retention_refresh=60) as lazy:
        if eager.stream_version("s-1") == 0:
            eager.append("s-1", [NewEvent("E", {"i": i}) for i in range(10)])
        runs: dict[str, list[float]] = {"eager": [], "lazy": []}
        for _ in range(reps):
            runs["eager"].append(per_read(eager, reads))
            runs["lazy"].append(per_read(lazy, reads))
    return statistics.median(runs["eager"]), statistics.median(runs["lazy"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reads", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--postgres", help="a PostgreSQL URL (a schema evstore_retention_cost)")
    args = parser.parse_args()
    urls = [("SQLite", f"sqlite:///{tempfile.mkdtemp()}/cost.db")]
    if args.postgres:
        sep = "&" if "?" in args.postgres else "?"
        urls.append(("PostgreSQL", f"{args.postgres}{sep}schema=evstore_retention_cost"))
    print(f"load average {os.getloadavg()[0]:.1f}; {args.reads} reads x {args.reps} reps")
    print("| backend | at once (default), us/read | refresh 60 s, us/read |")
    print("|---|---:|---:|")
    for name, url in urls:
        eager, lazy = measure(url, args.reads, args.reps)
        print(f"| {name} | {eager:,.0f} | {lazy:,.0f} |")


if __name__ == "__main__":
    main()
