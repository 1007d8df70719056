"""Log partitions on NATS JetStream: 8 writers on 8 streams, P = 1 vs P = 16, one server and
a 3-node cluster (replicas = 3).

    .venv/bin/python -m benchmarks.partitions_nats [--appends 200] [--repeat 3]
        [--only single,cluster]

Each writer thread appends single events to its own stream through its own store (its own
connection). With P = 1 every append goes through the one log stream (on R3: its one Raft
leader); with P = 16 the 8 streams land in 8 different partitions (stream ids are picked
so), i.e. 8 JetStream streams whose leaders the store spread over the nodes. Reported:
events/s over all writers and per partition (median of --repeat runs on fresh stores,
P = 1 and P = 16 interleaved), and the load average before and after. Starts its own
nats-server processes on free loopback ports (never 4222) and stops them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import uuid

import evstore
from evstore.spi import stable_hash
from tests._nats_servers import NatsCluster, NatsServer, drop_store

WRITERS = 8


def _streams() -> list[str]:
    """WRITERS stream ids in WRITERS different partitions (of 16), the same ids for P = 1."""
    found: dict[int, str] = {}
    i = 0
    while len(found) < WRITERS:
        sid = f"bench-{i}"
        found.setdefault(stable_hash(sid) % 16, sid)
        i += 1
    return list(found.values())


def run(servers: list[str], partitions: int, appends: int, replicas: int) -> float:
    """Events/s of WRITERS concurrent writers on a fresh store."""
    name = f"pb{uuid.uuid4().hex[:12]}"
    url = f"{servers[0]}/{name}?replicas={replicas}&partitions={partitions}"
    stores = [evstore.connect(url) for _ in range(WRITERS)]
    streams = _streams()
    try:
        for store, sid in zip(stores, streams, strict=True):
            store.append(f"warm-{sid}", [evstore.NewEvent("Warm", {})])
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
        if partitions > 1:
            assert len({stores[0].partition_of(sid) for sid in streams}) == WRITERS
    finally:
        for s in stores:
            s.close()
        drop_store(servers, name)
    return WRITERS * appends / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--appends", type=int, default=200, help="appends per writer")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="single,cluster")
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}")
    print(f"{WRITERS} writers x {args.appends} single-event appends, 8 streams in 8 partitions")
    for setup in args.only.split(","):
        if setup == "single":
            server = NatsServer("bench-single")
            server.start()
            stop, servers, replicas = server.remove, [server.url], 1
        else:
            cluster = NatsCluster()
            cluster.start()
            stop, servers, replicas = cluster.remove, [s.url for s in cluster.servers], 3
        try:
            results: dict[int, list[float]] = {1: [], 16: []}
            for _ in range(args.repeat):
                for p in (1, 16):
                    results[p].append(run(servers, p, args.appends, replicas))
        finally:
            stop()
        for p, rows in results.items():
            rate = statistics.median(rows)
            per = rate if p == 1 else rate / WRITERS
            runs = ", ".join(f"{r:.0f}" for r in rows)
            print(
                f"{setup} R{replicas} P={p:<3} {rate:>7.0f} events/s, {per:>6.0f} per "
                f"partition written (runs: {runs})"
            )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
