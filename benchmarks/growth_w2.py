"""W2 (100-event batches) in an empty store and in one already holding N events,
interleaved: where does evstore fall off as the store grows?

W10 in the harness runs each implementation in turn; on a loaded machine that cannot tell
growth from load. This script opens, per implementation, an empty database and one
prefilled with ``--events`` events (streams of 1,000), then appends batches to all of them
slice by slice in rotating order, so every figure shares the same moments of load, and
prints the grown/empty rate ratio per implementation (median over slices).

    python -m benchmarks.growth_w2 --backend sqlite --events 200000 --slices 12
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import os
import statistics
import time
from typing import Any

from benchmarks import impl_evstore, impl_raw
from benchmarks._common import fresh_database, new_ids, payloads

IMPLS = {"evstore": impl_evstore.Impl, "raw": impl_raw.Impl}


def main() -> None:
    """Run the comparison and print one line per implementation."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.growth_w2")
    parser.add_argument("--backend", default="sqlite")
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--slices", type=int, default=12)
    parser.add_argument("--batches", type=int, default=5, help="100-event batches per slice")
    parser.add_argument("--tmpdir", default=None)
    args = parser.parse_args()
    print(f"load average before: {os.getloadavg()}", flush=True)
    with contextlib.ExitStack() as stack:
        runs: dict[tuple[str, str], Any] = {}
        for name, make in IMPLS.items():
            for state in ("empty", "grown"):
                impl = make(stack.enter_context(fresh_database(args.backend, args.tmpdir)))
                stack.callback(impl.close)
                if state == "grown":
                    started = time.perf_counter()
                    for k, ident in enumerate(new_ids(args.events // 1000)):
                        impl.populate(ident, 1000, k * 1000)
                    took = time.perf_counter() - started
                    print(f"{name}: prefilled {args.events:,} events in {took:.0f} s", flush=True)
                runs[name, state] = impl
        streams = {key: new_ids(1)[0] for key in runs}
        versions = dict.fromkeys(runs, 0)
        rates: dict[tuple[str, str], list[float]] = {key: [] for key in runs}
        keys = list(runs)
        for s in range(args.slices):
            batches = [payloads(100, (s * args.batches + b) * 100) for b in range(args.batches)]
            for key in keys[s % len(keys) :] + keys[: s % len(keys)]:
                gc.collect()
                start = time.perf_counter()
                runs[key].append_batches(streams[key], batches, versions[key])
                rates[key].append(100 * args.batches / (time.perf_counter() - start))
                versions[key] += 100 * args.batches
    print(f"load average after: {os.getloadavg()}")
    for name in IMPLS:
        empty, grown = rates[name, "empty"], rates[name, "grown"]
        ratios = [g / e for g, e in zip(grown, empty, strict=True)]
        print(
            f"{name}: empty {statistics.median(empty):,.0f} ev/s, +{args.events:,} "
            f"{statistics.median(grown):,.0f} ev/s, grown/empty per slice: median "
            f"{statistics.median(ratios):.2f} (min {min(ratios):.2f}, max {max(ratios):.2f})"
        )


if __name__ == "__main__":
    main()
