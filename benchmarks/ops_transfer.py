"""Export, import and copy of a large log: events per second and peak memory (RSS).

    python -m benchmarks.ops_transfer --events 1000000 [--partitions 16] [--postgres URL]

Builds a SQLite store of N events (1,000 streams, appended 10 events at a time in
round-robin, so the log interleaves streams the way a live application's does), then runs
each operation in a fresh child process and reports its rate and the child's peak resident
memory (``ru_maxrss``; a child that only starts Python and imports evstore is measured too,
as the baseline), with the machine's load average (1 minute) as it started and ended.
Times on a shared machine are noisy; memory is not. ``--partitions P`` builds a store of P
log partitions and carries it into stores of the same P.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from typing import Any

import evstore
from evstore import NewEvent

STREAMS = 1000
RUN = 10


def build(url: str, events: int) -> None:
    with evstore.connect(url) as store:
        written, i = 0, 0
        payload = {"name": "x" * 40, "amount": 12, "tags": ["a", "b"]}
        while written < events:
            n = min(RUN, events - written)
            events_ = [NewEvent("OrderEvent", {**payload, "n": written + k}) for k in range(n)]
            store.append(f"order-{i % STREAMS}", events_)
            written += n
            i += 1
        store.backend.set_checkpoint("orders-view", store.head_position() // 2)


def child(op: str, args: list[str]) -> None:
    from evstore import ops

    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    if op == "baseline":
        events = 0
    elif op == "export":
        with evstore.connect(args[0]) as store:
            events = ops.export_store(store, args[1]).events
    elif op == "import":
        with evstore.connect(args[1]) as store:
            events = ops.import_store(store, args[0]).events
    else:
        with evstore.connect(args[0]) as src, evstore.connect(args[1]) as dst:
            events = ops.copy_store(src, dst).events
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    load = (load_before, os.getloadavg()[0])
    print(
        json.dumps(
            {"op": op, "events": events, "seconds": seconds, "peak_mb": peak_mb, "load": load}
        )
    )


def run(op: str, *args: str) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-m", "benchmarks.ops_transfer", "--child", op, *args],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    rate = result["events"] / result["seconds"] if result["seconds"] else 0
    print(
        f"{op:>8}: {int(result['events']):>9} events  {result['seconds']:8.1f} s  "
        f"{rate:>9,.0f} events/s  peak RSS {result['peak_mb']:6.1f} MB  "
        f"load {result['load'][0]:.1f} -> {result['load'][1]:.1f}",
        flush=True,
    )
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--postgres", default=None, help="also copy into this PostgreSQL URL")
    parser.add_argument("--partitions", type=int, default=1, help="log partitions P")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.child:
        child(ns.child[0], ns.child[1:])
        return
    work = tempfile.mkdtemp(prefix="evstore-ops-bench-")
    fast = "?synchronous=NORMAL" + (f"&partitions={ns.partitions}" if ns.partitions > 1 else "")
    source = f"sqlite:///{work}/source.db{fast}"
    t = time.perf_counter()
    build(source, ns.events)
    print(f"built {ns.events} events in {time.perf_counter() - t:.1f} s ({work})", flush=True)
    file = os.path.join(work, "dump.jsonl.gz")
    run("baseline")
    run("export", source, file)
    print(f"  file: {os.path.getsize(file) / 2**20:.1f} MB (gzip)", flush=True)
    run("import", file, f"sqlite:///{work}/imported.db{fast}")
    run("copy", source, f"sqlite:///{work}/copied.db{fast}")
    if ns.postgres:
        schema = f"bench_ops_{uuid.uuid4().hex[:8]}"
        sep = "&" if "?" in ns.postgres else "?"
        parts = f"&partitions={ns.partitions}" if ns.partitions > 1 else ""
        run("copy", source, f"{ns.postgres}{sep}schema={schema}{parts}")
        print(f"  (PostgreSQL schema {schema} left for inspection; drop it when done)")


if __name__ == "__main__":
    main()
