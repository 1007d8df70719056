"""The benchmark harness runs end to end (``python -m benchmarks --quick``) at a tiny size.

A smoke test only: it checks that every workload produced an entry for every
implementation (a figure, or a stated reason why it does not apply) and that the report
files are written. It asserts nothing about timings.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks.workloads import WORKLOADS

# Alone, after the parallel run: W9 opens about 60 PostgreSQL connections at once (16 raw
# threads beside evstore's and eventsourcing's pools), which with other workers' stores
# once exceeded the server's max_connections (100).
pytestmark = pytest.mark.serial

ROOT = Path(__file__).resolve().parent.parent

# The one pairing the harness runs but must report as not applicable (with its reason).
NOT_APPLICABLE = {
    ("W7", "sqlite", "eventsourcing"),  # its SQLite recorder cannot subscribe
    ("W11", "sqlite", "eventsourcing"),
}
# 100 eventsourcing subscriptions hold 100 connections: n/a unless max_connections allows.
MAY_NOT_APPLY = {("W11", "postgresql", "eventsourcing")}


def backends() -> list[str]:
    wanted = os.environ.get("EVSTORE_TEST_BACKENDS")
    if not wanted:
        return ["sqlite", "postgresql"]
    names = {n.strip() for n in wanted.split(",")}
    return [b for b in ("sqlite", "postgresql") if b in names] or ["sqlite"]


def test_quick_benchmark_reports_every_workload_and_implementation(tmp_path: Path) -> None:
    chosen = backends()
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [
            sys.executable, "-m", "benchmarks", "--quick", "--scale", "0.01", "--reps", "2",
            "--backends", ",".join(chosen), "--out", str(out), "--tmpdir", str(tmp_path),
        ],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-5000:]
    data = json.loads((out / "benchmarks.json").read_text())
    assert data["repetitions"] == 2
    errors = [e for e in data["entries"] if e["status"] == "error"]
    assert errors == []
    entries = {(e["workload"], e["backend"], e["implementation"]): e for e in data["entries"]}
    for workload in WORKLOADS:
        for backend in chosen:
            if backend not in workload.backends:
                continue
            for impl in workload.implementations:
                entry = entries.get((workload.id, backend, impl))
                assert entry is not None, f"no entry for {workload.id} {backend} {impl}"
                expect_na = (workload.id, backend, impl) in NOT_APPLICABLE
                if expect_na or (
                    (workload.id, backend, impl) in MAY_NOT_APPLY and entry["status"] == "n/a"
                ):
                    assert entry["status"] == "n/a" and entry["reason"]
                else:
                    assert entry["status"] == "ok", entry
                    assert len(entry["values"]) == 2
                    assert entry["min"] <= entry["median"] <= entry["max"]
    ratios = {(r["workload"], r["backend"], r["ratio"]) for r in data["ratios"]}
    for backend in chosen:
        assert ("W1", backend, "evstore/raw") in ratios
        assert ("W1", backend, "evstore/eventsourcing") in ratios
    assert {t["verdict"] for t in data["targets"]} <= {"met", "missed", "not measured"}
    page = (out / "benchmarks.md").read_text()
    assert data["command"] in page and "## Targets" in page
    for backend in chosen:
        assert (out / "img" / f"benchmarks-{backend}.png").stat().st_size > 0
    (out / "benchmarks.md").unlink()
    rerun = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--render", str(out / "benchmarks.json")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-5000:]
    assert (out / "benchmarks.md").read_text() == page


def test_quick_benchmark_on_nats_compares_evstore_with_the_raw_client(tmp_path: Path) -> None:
    """W1-W4 on one nats-server the harness starts (and stops): evstore and the raw nats-py
    client measured, eventsourcing reported as not applicable (it has no NATS module)."""
    out = tmp_path / "out"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [
            sys.executable, "-m", "benchmarks", "--scale", "0.01", "--reps", "1",
            "--backends", "nats", "--only", "W1,W2,W3,W4", "--no-charts", "--out", str(out),
            "--tmpdir", str(tmp_path),
        ],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, check=False,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr[-5000:]
    entries = json.loads((out / "benchmarks.json").read_text())["entries"]
    got = {(e["workload"], e["implementation"]): e for e in entries if e["backend"] == "nats"}
    for workload in ("W1", "W2", "W3", "W4"):
        assert got[(workload, "evstore")]["status"] == "ok"
        assert got[(workload, "raw")]["status"] == "ok"
        assert got[(workload, "eventsourcing")]["status"] == "n/a"
        assert "no NATS" in got[(workload, "eventsourcing")]["reason"]
    assert "NATS JetStream" in (out / "benchmarks.md").read_text()
