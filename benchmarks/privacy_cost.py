"""What sealing personal data costs, W2- and W3-like, on SQLite: with and without.

    python -m benchmarks.privacy_cost [--events 10000] [--reps 5]

W2: append ``events`` events to one stream in batches of 50 (exact expected version); the
sealed run encrypts one field of each event for one subject. W3: read that stream back
with payloads decoded; the sealed run also opens each event (key lookup + decrypt). Runs
alternate plain/sealed ``reps`` times on fresh files; medians are printed. Timing on a
shared machine is noisy: compare the two columns of one run, not runs with each other.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import evstore
from evstore import NewEvent
from evstore.domain.privacy import PersonalData

BATCH = 50


def one(path: str, events: int, sealed: bool, cache: float) -> tuple[float, float]:
    with evstore.connect(f"sqlite:///{path}") as store:
        personal = PersonalData(store, key_cache_seconds=cache)
        start = time.perf_counter()
        version = 0
        for b in range(events // BATCH):
            batch = []
            for i in range(BATCH):
                data = {"email": f"user{b}-{i}@example.com", "amount": i, "note": "x" * 40}
                if sealed:
                    batch.append(personal.new_event("E", data, subject="s1", fields=["email"]))
                else:
                    batch.append(NewEvent("E", data))
            store.append("stream-1", batch, expected_version=version)
            version += BATCH
        w2 = time.perf_counter() - start
        start = time.perf_counter()
        read = store.get_events("stream-1")
        if sealed:
            read = [personal.open(e) for e in read]
        assert len(read) == events
        w3 = time.perf_counter() - start
    return w2, w3


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--reps", type=int, default=5)
    ns = parser.parse_args()
    modes = {
        "plain": (False, 0.0),
        "sealed, no key cache": (True, 0.0),
        "sealed, 60 s cache": (True, 60.0),
    }
    results: dict[str, list[tuple[float, float]]] = {m: [] for m in modes}
    work = tempfile.mkdtemp(prefix="evstore-privacy-bench-")
    for rep in range(ns.reps):
        for number, (mode, (sealed, cache)) in enumerate(modes.items()):
            results[mode].append(one(f"{work}/{rep}-{number}.db", ns.events, sealed, cache))
    for mode in modes:
        w2 = statistics.median(r[0] for r in results[mode])
        w3 = statistics.median(r[1] for r in results[mode])
        print(
            f"{mode:>21}: W2 {ns.events / w2:>9,.0f} events/s   W3 {ns.events / w3:>9,.0f} events/s"
        )


if __name__ == "__main__":
    main()
