"""What OpenTelemetry costs an append: W1 (single-event appends to new streams, SQLite)
without the OpenTelemetry API installed, with the API but no SDK, and with the SDK set up.

    python -m benchmarks.otel_overhead [--appends 20000] [--slices 10] [--synchronous FULL]
                                       [--backend sqlite|memory]

``--backend memory`` takes the disk out: what is left is the CPU each set-up adds.

Each mode runs in a process of its own (the "no API" one hides ``opentelemetry`` from
imports), each on its own fresh SQLite file in one temporary directory. The driver runs
slice k of every mode (in a rotating order) before slice k + 1 of any, so all three see the
same moments of disk and CPU contention on a shared machine, and adds up the time each
spent appending. "SDK" is a ``TracerProvider`` with a ``BatchSpanProcessor`` whose exporter
drops the spans, and a ``MeterProvider`` with an in-memory reader: the cost of recording,
not of shipping. Besides the wall-clock time it reports the CPU time each process used
(``time.process_time``, every thread), which a loaded machine disturbs far less.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODES = ("no API", "API, no SDK", "SDK")

_HIDE_OTEL = """
import sys
class _Hide:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, _Hide())
"""


def _sdk() -> None:
    from opentelemetry import metrics, trace
    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        SpanExporter,
        SpanExportResult,
    )

    class Drop(SpanExporter):
        def export(self, spans: object) -> SpanExportResult:
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop()))
    trace.set_tracer_provider(provider)
    metrics.set_meter_provider(MeterProvider(metric_readers=[InMemoryMetricReader()]))


def child(mode: str, path: str, synchronous: str, backend: str) -> None:
    """Serve ``run N`` requests on stdin: N appends, answering the seconds they took (wall
    clock) and the CPU seconds the process spent meanwhile (all its threads)."""
    if mode == "SDK":
        _sdk()
    import evstore

    url = "memory://" if backend == "memory" else f"sqlite:///{path}?synchronous={synchronous}"
    store = evstore.connect(url)
    recording = evstore.observability.active() is not None
    assert recording == (mode == "SDK"), mode
    data = {"email": "user@example.com", "n": 1}
    done = 0
    for line in sys.stdin:
        count = int(line.split()[1])
        began, cpu = time.perf_counter(), time.process_time()
        for i in range(done, done + count):
            event = evstore.NewEvent("Registered", data)
            store.append(f"user-{i}", [event], expected_version=evstore.NO_STREAM)
        print(time.perf_counter() - began, time.process_time() - cpu, flush=True)
        done += count
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--appends", type=int, default=20_000, help="per mode")
    parser.add_argument("--slices", type=int, default=10)
    parser.add_argument("--synchronous", default="FULL", choices=["FULL", "NORMAL"])
    parser.add_argument("--backend", default="sqlite", choices=["sqlite", "memory"])
    parser.add_argument("--child", nargs=2, metavar=("MODE", "PATH"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child[0], args.child[1], args.synchronous, args.backend)
        return
    load_before = os.getloadavg()
    per_slice = args.appends // args.slices
    totals = dict.fromkeys(MODES, 0.0)
    cpu = dict.fromkeys(MODES, 0.0)
    with tempfile.TemporaryDirectory() as tmp:
        children = {}
        for n, mode in enumerate(MODES):
            code = (_HIDE_OTEL if mode == "no API" else "") + (
                "import runpy, sys; sys.argv[0] = 'otel_overhead'; "
                "runpy.run_module('benchmarks.otel_overhead', run_name='__main__')"
            )
            argv = ["--child", mode, str(Path(tmp) / f"w1-{n}.db")]
            argv += ["--synchronous", args.synchronous, "--backend", args.backend]
            children[mode] = subprocess.Popen(
                [sys.executable, "-c", code, *argv],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                text=True,
                cwd=Path(__file__).resolve().parent.parent,
            )
        for k in range(args.slices):
            order = MODES[k % 3 :] + MODES[: k % 3]
            for mode in order:
                proc = children[mode]
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write(f"run {per_slice}\n")
                proc.stdin.flush()
                wall, used = proc.stdout.readline().split()
                totals[mode] += float(wall)
                cpu[mode] += float(used)
        for proc in children.values():
            assert proc.stdin is not None
            proc.stdin.close()
            proc.wait(60)
    load_after = os.getloadavg()
    count = per_slice * args.slices
    base = totals["no API"]
    print(f"command: python -m benchmarks.otel_overhead {shlex.join(sys.argv[1:])}")
    where = "memory://" if args.backend == "memory" else f"SQLite ({args.synchronous})"
    print(
        f"W1 on {where}: {count} single-event appends to new streams per mode, "
        f"{args.slices} interleaved slices"
    )
    print(f"load average: {load_before[0]:.2f} before, {load_after[0]:.2f} after")
    print(
        "| mode | appends/s | µs per append | time vs no API | CPU µs per append | CPU vs no API |"
    )
    print("|---|---|---|---|---|---|")
    for mode in MODES:
        seconds = totals[mode]
        print(
            f"| {mode} | {count / seconds:,.0f} | {seconds / count * 1e6:.1f} | "
            f"{seconds / base:.3f}x | {cpu[mode] / count * 1e6:.1f} | "
            f"{cpu[mode] / cpu['no API']:.3f}x |"
        )


if __name__ == "__main__":
    main()
