"""The command line: run the workloads interleaved, then write JSON, markdown and charts."""

from __future__ import annotations

import argparse
import contextlib
import gc
import json
import shlex
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks import impl_eventsourcing, impl_evstore, impl_raw, report
from benchmarks._common import Database, NotApplicable, Sizes, fresh_database
from benchmarks.workloads import WORKLOADS, Workload

IMPLEMENTATIONS: dict[str, Callable[[Database], Any]] = {
    "evstore": impl_evstore.Impl,
    "eventsourcing": impl_eventsourcing.Impl,
    "raw": impl_raw.Impl,
}
QUICK_SCALE = 0.1


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="evstore vs eventsourcing 9.5.6 vs the raw drivers, on SQLite, PostgreSQL "
        "and NATS JetStream (W1-W4; eventsourcing has no NATS module).",
    )
    parser.add_argument(
        "--quick", action="store_true", help="every workload at a tenth of its size"
    )
    parser.add_argument("--scale", type=float, default=None, help="size factor (overrides --quick)")
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated")
    parser.add_argument("--only", default=None, help="workloads to run, e.g. W1,W3")
    parser.add_argument("--impls", default=",".join(IMPLEMENTATIONS), help="comma-separated")
    parser.add_argument("--reps", type=int, default=3, help="repetitions (fresh databases each)")
    parser.add_argument(
        "--out",
        default=None,
        help="output folder (default: docs/ for a full run, build/benchmarks-quick/ otherwise)",
    )
    parser.add_argument("--tmpdir", default=None, help="where the SQLite files go")
    parser.add_argument("--no-charts", action="store_true", help="skip the PNG charts")
    parser.add_argument(
        "--render",
        metavar="JSON",
        default=None,
        help="measure nothing: redo the charts and markdown of a run's benchmarks.json "
        "(after editing benchmarks/analysis.md), in the JSON's folder",
    )
    args = parser.parse_args(argv)
    args.backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    for backend in args.backends:
        if backend not in ("sqlite", "postgresql", "nats"):
            parser.error(f"unknown backend {backend!r}: use sqlite, postgresql, nats")
    known = {w.id for w in WORKLOADS}
    args.only = None if args.only is None else [w.strip().upper() for w in args.only.split(",")]
    for w in args.only or ():
        if w not in known:
            parser.error(f"unknown workload {w!r}: use {', '.join(sorted(known))}")
    args.impls = [i.strip() for i in args.impls.split(",") if i.strip()]
    for impl in args.impls:
        if impl not in IMPLEMENTATIONS:
            parser.error(f"unknown implementation {impl!r}: use {', '.join(IMPLEMENTATIONS)}")
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    if args.scale is None:
        args.scale = QUICK_SCALE if args.quick else 1.0
    if args.out is None:
        root = Path(__file__).resolve().parent.parent
        args.out = str(root / ("docs" if args.scale == 1.0 else "build/benchmarks-quick"))
    return args


def log(message: str) -> None:
    print(f"[{datetime.now(UTC):%H:%M:%S}] {message}", file=sys.stderr, flush=True)


Outcome = tuple[dict[str, float] | None, str | None, dict[str, str] | None]


def run_rep(
    workload: Workload, backend: str, order: list[str], sizes: Sizes, tmpdir: str | None
) -> dict[str, Outcome | BaseException]:
    """One repetition: every implementation on its own fresh database.

    Returns, per implementation, (metrics, reason it does not apply, settings) or the
    exception that broke its run.
    """
    out: dict[str, Outcome | BaseException] = {}
    with contextlib.ExitStack() as stack:
        opened: dict[str, tuple[Any, Database]] = {}
        for name in order:
            db = stack.enter_context(fresh_database(backend, tmpdir))
            try:
                impl = IMPLEMENTATIONS[name](db)
            except NotApplicable as e:
                out[name] = (None, str(e), None)
                continue
            except Exception as e:
                out[name] = e
                continue
            stack.callback(impl.close)
            opened[name] = (impl, db)
        if workload.chunked:
            _interleaved(workload, sizes, opened, out)
            return out
        for name, (impl, db) in opened.items():
            try:
                out[name] = (workload.run(impl, db, sizes), None, impl.settings())
            except NotApplicable as e:
                out[name] = (None, str(e), None)
            except Exception as e:
                out[name] = e
    return out


def _interleaved(
    workload: Workload,
    sizes: Sizes,
    opened: dict[str, tuple[Any, Database]],
    out: dict[str, Outcome | BaseException],
) -> None:
    steps: dict[str, list[tuple[Callable[[], Any], int]]] = {}
    for name, (impl, db) in opened.items():
        try:
            steps[name] = workload.run(impl, db, sizes)
        except Exception as e:
            out[name] = e
    seconds = dict.fromkeys(steps, 0.0)
    events = dict.fromkeys(steps, 0)
    for k in range(max((len(s) for s in steps.values()), default=0)):
        for name in list(steps):
            if k >= len(steps[name]):
                continue
            step, count = steps[name][k]
            gc.collect()
            start = time.perf_counter()
            try:
                step()
            except Exception as e:
                out[name] = e
                del steps[name]
                continue
            seconds[name] += time.perf_counter() - start
            events[name] += count
    for name in steps:
        out[name] = ({"events/s": events[name] / seconds[name]}, None, opened[name][0].settings())


def main(argv: list[str] | None = None) -> int:
    args = parse(argv)
    if args.render:
        source = Path(args.render)
        data = json.loads(source.read_text())
        for path in report.render(data, source.parent, charts=not args.no_charts):
            log(f"wrote {path}")
        return 0
    sizes = Sizes().scaled(args.scale)
    command = "python -m benchmarks" + (
        " " + shlex.join(sys.argv[1:] if argv is None else argv)
        if (sys.argv[1:] if argv is None else argv)
        else ""
    )
    results = report.Results(command=command, sizes=asdict(sizes), reps=args.reps, scale=args.scale)
    started = time.perf_counter()
    for workload in WORKLOADS:
        if args.only and workload.id not in args.only:
            continue
        results.describe(workload.id, workload.describe(sizes))
        for backend in args.backends:
            if backend not in workload.backends:
                continue
            impls = [i for i in workload.implementations if i in args.impls]
            for rep in range(args.reps):
                order = impls[rep % len(impls) :] + impls[: rep % len(impls)]
                order = [i for i in order if not results.not_applicable(workload.id, backend, i)]
                if not order:
                    continue
                label = f"{workload.id} {backend} rep {rep + 1}/{args.reps}"
                try:
                    outcomes = run_rep(workload, backend, order, sizes, args.tmpdir)
                except Exception as e:  # the database could not be made, for instance
                    outcomes = dict.fromkeys(order, e)
                for impl_name in order:
                    outcome = outcomes[impl_name]
                    if isinstance(outcome, BaseException):
                        log(f"{label} {impl_name}: ERROR {outcome!r}")
                        traceback.print_exception(outcome)
                        results.error(
                            workload.id, backend, impl_name, f"{type(outcome).__name__}: {outcome}"
                        )
                        continue
                    metrics, reason, settings = outcome
                    if metrics is None:
                        log(f"{label} {impl_name}: n/a ({reason})")
                        results.skip(workload.id, backend, impl_name, reason or "")
                        continue
                    results.add(workload.id, backend, impl_name, rep, metrics, settings or {})
                    log(
                        f"{label} {impl_name}: "
                        + ", ".join(f"{k} {v:,.2f}" for k, v in metrics.items())
                    )
    results.elapsed = time.perf_counter() - started
    out = Path(args.out)
    written = report.write(results, out, charts=not args.no_charts)
    for path in written:
        log(f"wrote {path}")
    if results.errors:
        log(f"{len(results.errors)} run(s) failed; see the report")
        return 1
    return 0
