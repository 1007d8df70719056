"""Subprocesses of the benchmark: a W7 subscriber in another process, the W8 iteration.

``python -m benchmarks._child subscribe IMPL DATABASE_JSON N`` prints ``READY``, then one
``SEQ MONOTONIC_NS`` line per event handled, and exits after N events or when stdin closes.
``python -m benchmarks._child iterate URL STREAM_UUID`` iterates the stream with
``iter_events`` and prints ``{"count", "baseline_mb", "peak_mb"}``: the RSS once connected,
and the program's peak RSS (VmHWM) after the iteration, in MiB.
"""

from __future__ import annotations

import json
import sys
import threading
import time
import uuid
from pathlib import Path


def _status_mb(field: str) -> float:
    """A memory figure of this process from /proc/self/status, in MiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


def _rss_mb() -> float:
    """The resident set size now."""
    return _status_mb("VmRSS")


def _peak_mb() -> float:
    """The peak resident set size of this program (VmHWM).

    Not ``ru_maxrss``: Linux carries the parent's peak over fork and exec into it, so a
    child of a big benchmark process would report the parent's size.
    """
    return _status_mb("VmHWM")


def subscribe(impl_name: str, database: str, n: int) -> int:
    from benchmarks._common import Database
    from benchmarks.cli import IMPLEMENTATIONS

    impl = IMPLEMENTATIONS[impl_name](Database(**json.loads(database)))
    done = threading.Event()
    lock = threading.Lock()
    count = 0

    def on_event(seq: int) -> None:
        nonlocal count
        now = time.monotonic_ns()
        with lock:
            sys.stdout.write(f"{seq} {now}\n")
            sys.stdout.flush()
            count += 1
            if count >= n:
                done.set()

    stop = impl.start_subscriber(on_event)
    print("READY", flush=True)
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    done.wait()
    stop()
    impl.close()
    return 0


def iterate(url: str, stream: str) -> int:
    import evstore
    from benchmarks._common import stream_name

    with evstore.connect(url) as store:
        baseline = _rss_mb()
        count = 0
        for _event in store.iter_events(stream_name(uuid.UUID(stream))):
            count += 1
        peak = _peak_mb()
    print(json.dumps({"count": count, "baseline_mb": baseline, "peak_mb": peak}))
    return 0


def main(argv: list[str]) -> int:
    if argv[0] == "subscribe":
        return subscribe(argv[1], argv[2], int(argv[3]))
    if argv[0] == "iterate":
        return iterate(argv[1], argv[2])
    raise SystemExit(f"unknown mode {argv[0]!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
