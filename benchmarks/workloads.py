"""The workloads W1-W11: each times one implementation on one fresh database.

A workload function gets an open implementation and the sizes, does its untimed set-up
(populating what is to be read), times only the operation under test with
``time.perf_counter`` and returns ``{metric: value}``.
"""

from __future__ import annotations

import gc
import itertools
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from benchmarks._common import Database, NotApplicable, Sizes, new_ids, payloads

ROOT = Path(__file__).resolve().parent.parent
WAIT = 30.0  # seconds to wait for one delivery before calling the run broken


Step = tuple[Callable[[], Any], int]  # (one timed slice of the work, events it writes)
CHUNKS = 10


def _slices(n: int, chunks: int) -> list[tuple[int, int]]:
    chunks = max(1, min(chunks, n))
    bounds = [round(n * k / chunks) for k in range(chunks + 1)]
    return [(lo, hi) for lo, hi in itertools.pairwise(bounds) if hi > lo]


def w1(impl: Any, db: Database, sizes: Sizes) -> list[Step]:
    n = sizes.w1_streams
    ids, datas = new_ids(n), payloads(n)
    return [
        (lambda lo=lo, hi=hi: impl.append_new_streams(ids[lo:hi], datas[lo:hi]), hi - lo)
        for lo, hi in _slices(n, CHUNKS)
    ]


def w2(impl: Any, db: Database, sizes: Sizes) -> list[Step]:
    size = sizes.w2_batch_size
    batches = [payloads(size, b * size) for b in range(sizes.w2_batches)]
    (ident,) = new_ids(1)
    return [
        (
            lambda lo=lo, hi=hi: impl.append_batches(ident, batches[lo:hi], lo * size),
            (hi - lo) * size,
        )
        for lo, hi in _slices(len(batches), CHUNKS)
    ]


READS = 5  # W3 and W4 read the same data this many times, interleaved


def _read_steps(read: Callable[[], int], expected: int) -> list[Step]:
    def step() -> None:
        count = read()
        if count != expected:
            raise AssertionError(f"read {count} events of {expected}")

    return [(step, expected)] * READS


def w3(impl: Any, db: Database, sizes: Sizes) -> list[Step]:
    n = sizes.w3_events
    (ident,) = new_ids(1)
    impl.populate(ident, n)
    return _read_steps(lambda: impl.read_stream(ident), n)


def w4(impl: Any, db: Database, sizes: Sizes) -> list[Step]:
    streams = sizes.w4_streams
    per_stream = max(1, sizes.w4_events // streams)
    for k, ident in enumerate(new_ids(streams)):
        impl.populate(ident, per_stream, k * per_stream)
    return _read_steps(lambda: impl.read_log(sizes.w4_page), streams * per_stream)


def _own_stream_writers(impl: Any, n: int, per_thread: int, chunks: int) -> list[Step]:
    """``n`` threads, each appending single events to its own new stream."""
    ids = new_ids(n)
    datas = [payloads(per_thread, k * per_thread) for k in range(n)]

    def step(lo: int, hi: int) -> None:
        errors: list[BaseException] = []

        def writer(k: int) -> None:
            try:
                impl.append_singly(ids[k], datas[k][lo:hi], lo)
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=writer, args=(k,)) for k in range(n)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        if errors:
            raise errors[0]

    return [
        (lambda lo=lo, hi=hi: step(lo, hi), n * (hi - lo)) for lo, hi in _slices(per_thread, chunks)
    ]


def w5(impl: Any, db: Database, sizes: Sizes) -> list[Step]:
    return _own_stream_writers(impl, sizes.w5_threads, sizes.w5_per_thread, CHUNKS // 2)


def w9(impl: Any, db: Database, sizes: Sizes) -> list[Step]:
    return _own_stream_writers(impl, sizes.w9_threads, sizes.w9_per_thread, CHUNKS // 2)


def w6(impl: Any, db: Database, sizes: Sizes) -> dict[str, float]:
    gc.collect()
    result: dict[str, float] = impl.w6(sizes.w6_aggregates, sizes.w6_loads, sizes.w6_cached_loads)
    return result


GROWTH_STREAM = 1000  # events per stream in W10's prefill


def _timed(steps: list[Step]) -> float:
    """Run ``steps`` one after the other; events per second over their summed times."""
    seconds, events = 0.0, 0
    for step, count in steps:
        gc.collect()
        start = time.perf_counter()
        step()
        seconds += time.perf_counter() - start
        events += count
    return events / seconds


def _w4_tail(impl: Any, db: Database, sizes: Sizes) -> list[Step]:
    """W4 in a store that already holds events: the log read after the head it had."""
    after = impl.head()
    streams = sizes.w4_streams
    per_stream = max(1, sizes.w4_events // streams)
    for k, ident in enumerate(new_ids(streams)):
        impl.populate(ident, per_stream, k * per_stream)
    return _read_steps(lambda: impl.read_log(sizes.w4_page, after), streams * per_stream)


def w10(impl: Any, db: Database, sizes: Sizes) -> dict[str, float]:
    """W1-W4 in the near-empty store, then again once it holds ``w10_events`` more."""
    kinds = (("W1", w1), ("W2", w2), ("W3", w3), ("W4", _w4_tail))
    empty = {name: _timed(run(impl, db, sizes)) for name, run in kinds}
    n = sizes.w10_events
    for k, ident in enumerate(new_ids(max(1, n // GROWTH_STREAM))):
        impl.populate(ident, min(GROWTH_STREAM, n - k * GROWTH_STREAM), 0)
    grown = {name: _timed(run(impl, db, sizes)) for name, run in kinds}
    out: dict[str, float] = {}
    for name, _ in kinds:
        out[f"{name} events/s (empty)"] = empty[name]
        out[f"{name} events/s (+{n:,} events)"] = grown[name]
        out[f"{name} grown / empty"] = grown[name] / empty[name]
    return out


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    rank = max(0, min(len(ordered) - 1, round(p / 100 * len(ordered) + 0.5) - 1))
    return ordered[rank]


WARM_UP = 5  # events delivered before measuring: connections and listeners are up by then


def _latencies(impl: Any, n: int, delivered: Callable[[int, float], int]) -> list[float]:
    """Append single events one at a time; latency = handler called - append returned.

    The first ``WARM_UP`` events are not counted. A handler that runs before the writer's
    ``append`` has returned counts as 0.
    """
    (ident,) = new_ids(1)
    out = []
    for seq in range(n + WARM_UP):
        impl.append_one(ident, seq)
        committed = time.monotonic_ns()
        handled = delivered(seq, WAIT)
        if seq >= WARM_UP:
            out.append(max(0, handled - committed) / 1e6)
        time.sleep(0.005)  # measure an idle subscriber, not a backlog
    return out


def w7(impl: Any, db: Database, sizes: Sizes) -> dict[str, float]:
    n = sizes.w7_events
    seen: dict[int, int] = {}
    cond = threading.Condition()

    def on_event(seq: int) -> None:
        now = time.monotonic_ns()
        with cond:
            seen[seq] = now
            cond.notify_all()

    def delivered(seq: int, timeout: float) -> int:
        with cond:
            if not cond.wait_for(lambda: seq in seen, timeout):
                raise AssertionError(f"event {seq} was not delivered within {timeout}s")
            return seen[seq]

    stop = impl.start_subscriber(on_event)
    try:
        same = _latencies(impl, n, delivered)
    finally:
        stop()
    other = _other_process_latencies(impl, db, n)
    return {
        "p50 ms (same process)": _percentile(same, 50),
        "p99 ms (same process)": _percentile(same, 99),
        "p50 ms (other process)": _percentile(other, 50),
        "p99 ms (other process)": _percentile(other, 99),
    }


def _child(*args: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-m", "benchmarks._child", *args],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE,
        text=True,
        env=env,
        cwd=ROOT,
    )


def _other_process_latencies(impl: Any, db: Database, n: int) -> list[float]:
    proc = _child("subscribe", impl.name, json.dumps(asdict(db)), str(n + WARM_UP))
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            lines.put(line)
        lines.put("")

    threading.Thread(target=pump, daemon=True).start()
    try:
        first = lines.get(timeout=60)
        if first.strip() != "READY":
            raise AssertionError(f"subscriber process failed to start: {first!r}")

        def delivered(seq: int, timeout: float) -> int:
            line = lines.get(timeout=timeout)
            if not line:
                raise AssertionError("the subscriber process ended early")
            got, handled = (int(x) for x in line.split())
            if got != seq:
                raise AssertionError(f"expected event {seq}, the subscriber got {got}")
            return handled

        return _latencies(impl, n, delivered)
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _fan_out(impl: Any, count: int, n: int) -> tuple[list[float], float]:
    """``count`` subscriptions; ``n`` single-event appends one at a time, each waited for
    until every subscription has handled it. Returns every (subscription, event) latency
    in ms (append returned -> that subscription's handler called) and the client CPU
    seconds per event (this process: writer, readers, handlers)."""
    seen: dict[int, list[int]] = {}
    cond = threading.Condition()

    def on_event(index: int, seq: int) -> None:
        now = time.monotonic_ns()
        with cond:
            seen.setdefault(seq, []).append(now)
            if len(seen[seq]) == count:
                cond.notify_all()

    stop = impl.start_subscribers(count, on_event)
    try:
        (ident,) = new_ids(1)
        out: list[float] = []
        cpu = 0.0
        for seq in range(n + WARM_UP):
            before = time.process_time()
            impl.append_one(ident, seq)
            committed = time.monotonic_ns()
            with cond:
                if not cond.wait_for(lambda s=seq: len(seen.get(s, ())) == count, WAIT):
                    got = len(seen.get(seq, ()))
                    raise AssertionError(f"event {seq} reached {got} of {count} subscriptions")
            if seq >= WARM_UP:
                cpu += time.process_time() - before
                out.extend(max(0, t - committed) / 1e6 for t in seen[seq])
            time.sleep(0.005)  # idle subscribers, not a backlog
    finally:
        stop()
    return out, cpu / n


def w11(impl: Any, db: Database, sizes: Sizes) -> dict[str, float]:
    many, n = sizes.w11_subscribers, sizes.w11_events
    one_lat, one_cpu = _fan_out(impl, 1, n)
    many_lat, many_cpu = _fan_out(impl, many, n)
    return {
        "p50 ms (1 subscription)": _percentile(one_lat, 50),
        "p99 ms (1 subscription)": _percentile(one_lat, 99),
        f"p50 ms ({many} subscriptions)": _percentile(many_lat, 50),
        f"p99 ms ({many} subscriptions)": _percentile(many_lat, 99),
        "client CPU ms/event (1 subscription)": one_cpu * 1e3,
        f"client CPU ms/event ({many} subscriptions)": many_cpu * 1e3,
        f"CPU {many} subscriptions / 1": many_cpu / one_cpu,
    }


def w8(impl: Any, db: Database, sizes: Sizes) -> dict[str, float]:
    (ident,) = new_ids(1)
    impl.populate(ident, sizes.w8_events)
    proc = _child("iterate", db.evstore_url, str(ident))
    out, _ = proc.communicate(timeout=3600)
    if proc.returncode != 0:
        raise AssertionError(f"the iterating process failed with exit code {proc.returncode}")
    result = json.loads(out)
    if result["count"] != sizes.w8_events:
        raise AssertionError(f"iterated {result['count']} events of {sizes.w8_events}")
    return {"peak RSS MB": result["peak_mb"], "RSS before iterating MB": result["baseline_mb"]}


@dataclass(frozen=True)
class Workload:
    """A workload; ``chunked`` ones return timed steps that the driver interleaves.

    A chunked workload's ``run`` prepares the work untimed and returns it as slices; the
    driver then runs slice k of every implementation before slice k + 1 of any, so all of
    them see the same moments of disk and CPU contention on a shared machine, and adds up
    the time each spent in its own slices.
    """

    id: str
    title: str
    backends: tuple[str, ...]
    implementations: tuple[str, ...]
    run: Callable[[Any, Database, Sizes], Any]
    chunked: bool = False

    def describe(self, sizes: Sizes) -> str:
        return self.title.format(**asdict(sizes))


ALL_IMPLS = ("evstore", "eventsourcing", "raw")
BOTH = ("sqlite", "postgresql")
WITH_NATS = (*BOTH, "nats")  # W1-W4 also on one nats-server (eventsourcing: not applicable)

WORKLOADS = (
    Workload(
        "W1",
        "{w1_streams} new streams, one single-event append each (new stream); "
        "10 interleaved slices",
        WITH_NATS,
        ALL_IMPLS,
        w1,
        chunked=True,
    ),
    Workload(
        "W2",
        "{w2_batches} batches of {w2_batch_size} events to one stream (exact expected version); "
        "10 interleaved slices",
        WITH_NATS,
        ALL_IMPLS,
        w2,
        chunked=True,
    ),
    Workload(
        "W3",
        "read one {w3_events}-event stream, payloads decoded; 5 interleaved reads",
        WITH_NATS,
        ALL_IMPLS,
        w3,
        chunked=True,
    ),
    Workload(
        "W4",
        "read the global log from the start, {w4_events} events in pages of "
        "{w4_page}, payloads decoded; 5 interleaved reads",
        WITH_NATS,
        ALL_IMPLS,
        w4,
        chunked=True,
    ),
    Workload(
        "W5",
        "{w5_threads} threads appending single events to their own new stream, "
        "{w5_per_thread} each; 5 interleaved slices",
        ("postgresql",),
        ALL_IMPLS,
        w5,
        chunked=True,
    ),
    Workload(
        "W6",
        "{w6_aggregates} aggregates of 100 events: saves/s; loads/s plain, from a "
        "snapshot at 100, from the cache",
        BOTH,
        ("evstore", "eventsourcing"),
        w6,
    ),
    Workload(
        "W7",
        "subscription latency, append returned -> handler called, {w7_events} events one at "
        "a time (after 5 warm-up events), same process and another process",
        BOTH,
        ("evstore", "eventsourcing"),
        w7,
    ),
    Workload(
        "W8",
        "peak RSS of a process iterating a {w8_events}-event stream with iter_events",
        BOTH,
        ("evstore",),
        w8,
    ),
    Workload(
        "W9",
        "{w9_threads} threads on one store appending single events to their own new stream, "
        "{w9_per_thread} each (raw: one autocommit connection per thread); 5 interleaved slices",
        BOTH,
        ("evstore", "raw"),
        w9,
        chunked=True,
    ),
    Workload(
        "W10",
        "growth: W1-W4 (their sizes above) in a near-empty store, then again after "
        "{w10_events} more events (streams of 1,000) were added; each implementation in "
        "turn, not interleaved",
        BOTH,
        ALL_IMPLS,
        w10,
    ),
    Workload(
        "W11",
        "{w11_subscribers} subscriptions on one store (evstore: named, checkpointed), "
        "{w11_events} single-event appends one at a time, each waited for until every "
        "subscription handled it (after 5 warm-up events); the same with 1 subscription; "
        "client CPU of this process per event",
        BOTH,
        ("evstore", "eventsourcing"),
        w11,
    ),
)

__all__ = ["WORKLOADS", "NotApplicable", "Workload"]
