"""Collecting the figures and writing them: JSON, a markdown page and PNG bar charts."""

from __future__ import annotations

import json
import os
import platform
import sqlite3
import statistics
import subprocess
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

IMPL_ORDER = ("evstore", "eventsourcing", "raw")
ANALYSIS = Path(__file__).with_name("analysis.md")


@dataclass(frozen=True)
class Target:
    text: str
    workload: str
    backend: str
    metric: str
    against: str | None  # None: an absolute limit on evstore's own figure
    op: str  # ">=" or "<="
    limit: float


_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "nats": "NATS JetStream"}
_BOTH = ("sqlite", "postgresql")


def _at_least(workload: str, backend: str, against: str, limit: float, metric: str = "") -> Target:
    what = " loads" + (" from a snapshot" if "snapshot" in metric else "") if metric else ""
    return Target(
        f"{workload}{what} >= {limit:g}x {against} ({_NAMES[backend]})",
        workload,
        backend,
        metric or "events/s",
        against,
        ">=",
        limit,
    )


def _at_most(workload: str, backend: str, metric: str, limit: float) -> Target:
    return Target(
        f"{workload} {metric} <= {limit:g} ({_NAMES[backend]})",
        workload,
        backend,
        metric,
        None,
        "<=",
        limit,
    )


# The targets of issue 12.
TARGETS = (
    _at_least("W1", "sqlite", "eventsourcing", 1.2),
    _at_least("W1", "sqlite", "raw", 0.9),
    _at_least("W1", "postgresql", "eventsourcing", 2),
    _at_least("W1", "postgresql", "raw", 0.8),
    *(_at_least("W2", b, "eventsourcing", 1.5) for b in _BOTH),
    *(_at_least("W2", b, "raw", 0.9) for b in _BOTH),
    *(_at_least(w, b, "eventsourcing", 1.5) for w in ("W3", "W4") for b in _BOTH),
    *(_at_least(w, b, "raw", 0.8) for w in ("W3", "W4") for b in _BOTH),
    _at_least("W5", "postgresql", "eventsourcing", 3),
    _at_least("W5", "postgresql", "raw", 1),
    *(_at_least("W6", b, "eventsourcing", 3, "loads/s") for b in _BOTH),
    *(_at_least("W6", b, "eventsourcing", 3, "loads/s (snapshot)") for b in _BOTH),
    _at_most("W7", "sqlite", "p99 ms (other process)", 5),
    _at_most("W7", "postgresql", "p99 ms (same process)", 2),
    _at_most("W7", "postgresql", "p99 ms (other process)", 2),
    *(_at_most("W8", b, "peak RSS MB", 50) for b in _BOTH),
    *(_at_least("W9", b, "raw", 3) for b in _BOTH),
    *(
        Target(
            f"W10 {w} grown / empty >= 0.8 ({_NAMES[b]})",
            "W10",
            b,
            f"{w} grown / empty",
            None,
            ">=",
            0.8,
        )
        for w in ("W1", "W2", "W3", "W4")
        for b in _BOTH
    ),
    *(_at_most("W11", b, "p99 ms (100 subscriptions)", 10) for b in _BOTH),
    *(_at_most("W11", b, "CPU 100 subscriptions / 1", 3) for b in _BOTH),
)


def _stats(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values)}


@dataclass
class Results:
    """Everything one run measured, keyed by workload, backend, metric and implementation."""

    command: str
    sizes: dict[str, int]
    reps: int
    scale: float
    started_at: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    elapsed: float = 0.0
    values: dict[tuple[str, str, str, str], dict[int, float]] = field(default_factory=dict)
    skipped: dict[tuple[str, str, str], str] = field(default_factory=dict)
    errors: list[dict[str, str]] = field(default_factory=list)
    settings: dict[str, dict[str, dict[str, str]]] = field(default_factory=dict)
    descriptions: dict[str, str] = field(default_factory=dict)
    load_before: tuple[float, ...] = field(default_factory=lambda: os.getloadavg())

    def describe(self, workload: str, text: str) -> None:
        self.descriptions[workload] = text

    def not_applicable(self, workload: str, backend: str, impl: str) -> bool:
        return (workload, backend, impl) in self.skipped

    def skip(self, workload: str, backend: str, impl: str, reason: str) -> None:
        self.skipped[(workload, backend, impl)] = reason

    def error(self, workload: str, backend: str, impl: str, message: str) -> None:
        self.errors.append(
            {"workload": workload, "backend": backend, "implementation": impl, "error": message}
        )

    def add(
        self,
        workload: str,
        backend: str,
        impl: str,
        rep: int,
        metrics: dict[str, float],
        settings: dict[str, str],
    ) -> None:
        for metric, value in metrics.items():
            self.values.setdefault((workload, backend, metric, impl), {})[rep] = value
        if settings:
            self.settings.setdefault(backend, {})[impl] = settings

    # -- derived figures ---------------------------------------------------------------------

    def entries(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        for (workload, backend, metric, impl), by_rep in self.values.items():
            values = [by_rep[r] for r in sorted(by_rep)]
            out.append(
                {
                    "workload": workload,
                    "backend": backend,
                    "metric": metric,
                    "implementation": impl,
                    "higher_is_better": metric.endswith("/s") or "/s " in metric,
                    "status": "ok",
                    "values": values,
                    **_stats(values),
                }
            )
        for (workload, backend, impl), reason in self.skipped.items():
            out.append(
                {
                    "workload": workload,
                    "backend": backend,
                    "metric": None,
                    "implementation": impl,
                    "status": "n/a",
                    "reason": reason,
                }
            )
        for error in self.errors:
            out.append({**error, "metric": None, "status": "error"})
        return out

    def ratios(self) -> list[dict[str, Any]]:
        """evstore / other, computed for each repetition from that repetition's pair."""
        out = []
        for (workload, backend, metric, impl), mine in self.values.items():
            if impl != "evstore":
                continue
            for other in IMPL_ORDER[1:]:
                theirs = self.values.get((workload, backend, metric, other))
                if not theirs:
                    continue
                reps = sorted(set(mine) & set(theirs))
                values = [mine[r] / theirs[r] for r in reps if theirs[r]]
                if values:
                    out.append(
                        {
                            "workload": workload,
                            "backend": backend,
                            "metric": metric,
                            "ratio": f"evstore/{other}",
                            "values": values,
                            **_stats(values),
                        }
                    )
        return out

    def median(self, workload: str, backend: str, metric: str, impl: str) -> float | None:
        by_rep = self.values.get((workload, backend, metric, impl))
        return statistics.median(by_rep.values()) if by_rep else None

    def ratio(self, workload: str, backend: str, metric: str, other: str) -> dict[str, Any] | None:
        for r in self.ratios():
            if (r["workload"], r["backend"], r["metric"], r["ratio"]) == (
                workload,
                backend,
                metric,
                f"evstore/{other}",
            ):
                return r
        return None

    def targets(self) -> list[dict[str, Any]]:
        out = []
        for t in TARGETS:
            if t.against is None:
                value = self.median(t.workload, t.backend, t.metric, "evstore")
            else:
                r = self.ratio(t.workload, t.backend, t.metric, t.against)
                value = None if r is None else r["median"]
            if value is None:
                verdict = "not measured"
            elif (value >= t.limit) if t.op == ">=" else (value <= t.limit):
                verdict = "met"
            else:
                verdict = "missed"
            out.append(
                {
                    "target": t.text,
                    "kind": "value" if t.against is None else f"evstore/{t.against}",
                    "value": value,
                    "limit": t.limit,
                    "verdict": verdict,
                }
            )
        return out


# -- the machine ----------------------------------------------------------------------------


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def _git(*args: str) -> str:
    """Output of a git command in this checkout ("" outside a git checkout)."""
    try:
        return subprocess.run(
            ["git", *args],
            capture_output=True,
            text=True,
            cwd=Path(__file__).resolve().parent.parent,
            check=False,
        ).stdout.strip()
    except OSError:
        return ""


def machine() -> dict[str, Any]:
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in _read("/proc/cpuinfo").splitlines()
            if line.startswith("model name")
        ),
        platform.processor() or "unknown",
    )
    mem_kb = next(
        (
            int(line.split()[1])
            for line in _read("/proc/meminfo").splitlines()
            if line.startswith("MemTotal")
        ),
        0,
    )
    try:
        import psycopg

        from benchmarks._common import PG_ADMIN_URL

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT current_setting('server_version'), current_setting('synchronous_commit'),"
                " current_setting('fsync'), current_setting('wal_sync_method')"
            ).fetchone()
        assert row is not None
        pg = {
            "server_version": row[0],
            "synchronous_commit": row[1],
            "fsync": row[2],
            "wal_sync_method": row[3],
        }
    except Exception as e:
        pg = {"error": str(e)}
    commit = os.environ.get("EVSTORE_BENCH_COMMIT") or _git("rev-parse", "--short", "HEAD")
    if _git("status", "--porcelain", "--", "src"):
        commit += " plus uncommitted changes in src/"
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "os": platform.platform(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "postgresql": pg,
        "packages": {
            p: _version(p) for p in ("evstore", "eventsourcing", "psycopg", "orjson", "matplotlib")
        },
        "evstore_commit": commit,
    }


# -- writing --------------------------------------------------------------------------------


def write(results: Results, out: Path, *, charts: bool = True) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    data = {
        "command": results.command,
        "started_at": results.started_at,
        "elapsed_s": round(results.elapsed, 1),
        "scale": results.scale,
        "repetitions": results.reps,
        "sizes": results.sizes,
        "machine": machine(),
        "load_average": {"before": results.load_before, "after": os.getloadavg()},
        "workloads": results.descriptions,
        "settings": results.settings,
        "entries": results.entries(),
        "ratios": results.ratios(),
        "targets": results.targets(),
    }
    json_path = out / "benchmarks.json"
    json_path.write_text(json.dumps(data, indent=2) + "\n")
    return [json_path, *render(data, out, charts=charts)]


def render(data: dict[str, Any], out: Path, *, charts: bool = True) -> list[Path]:
    """Write the charts and the markdown page of a run's JSON (``--render`` redoes this)."""
    written: list[Path] = []
    images: list[Path] = []
    if charts:
        images = _charts(data, out / "img")
        written.extend(images)
    md_path = out / "benchmarks.md"
    md_path.write_text(markdown(data, [p.relative_to(out) for p in images]))
    written.append(md_path)
    return written


def _fmt(metric: str, value: float) -> str:
    if "ms" in metric:
        return f"{value:.2f}"
    if "MB" in metric:
        return f"{value:.1f}"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.1f}"


def _cell(metric: str, e: dict[str, Any] | None) -> str:
    if e is None:
        return "-"
    if e["status"] != "ok":
        return "n/a" if e["status"] == "n/a" else "error"
    return f"**{_fmt(metric, e['median'])}** ({_fmt(metric, e['min'])}-{_fmt(metric, e['max'])})"


def _ratio_cell(r: dict[str, Any] | None) -> str:
    if r is None:
        return "-"
    return f"**{r['median']:.2f}x** ({r['min']:.2f}-{r['max']:.2f})"


def _loads(values: list[float]) -> str:
    return ", ".join(f"{x:.2f}" for x in values)


BACKEND_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "nats": "NATS JetStream"}


def markdown(data: dict[str, Any], images: list[Path]) -> str:
    m = data["machine"]
    pg = m["postgresql"]
    lines = [
        "# Benchmarks: evstore, eventsourcing 9.5.6 and the raw drivers",
        "",
        "<!-- Generated by `python -m benchmarks`. The notes at the end come from "
        "benchmarks/analysis.md: edit that, then `python -m benchmarks --render "
        "docs/benchmarks.json`. -->",
        "",
        f"Command: `{data['command']}`, run at {data['started_at']}, "
        f"{data['elapsed_s']:.0f} s. Every figure is the **median** of {data['repetitions']} "
        "repetitions, each on a fresh database, with (min-max); the three implementations run "
        "interleaved in the same process, their order rotated from one repetition to the next. "
        "Ratios are computed per repetition (evstore's figure over the other's from the same "
        "repetition), then summarised the same way. Raw data: `benchmarks.json` beside this page.",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu']}, {m['cores']} cores; memory {m['memory_gib']} GiB; {m['os']}",
        f"- Python {m['python']}, SQLite {m['sqlite']}, PostgreSQL "
        f"{pg.get('server_version', pg.get('error'))} on 127.0.0.1 (synchronous_commit="
        f"{pg.get('synchronous_commit')}, fsync={pg.get('fsync')}, wal_sync_method="
        f"{pg.get('wal_sync_method')})",
        "- Packages: "
        + ", ".join(f"{k} {v}" for k, v in m["packages"].items())
        + f"; evstore at commit {m['evstore_commit']}",
        f"- Load average (1, 5, 15 min) before: {_loads(data['load_average']['before'])}; "
        f"after: {_loads(data['load_average']['after'])}. The machine is "
        "shared: other processes were running, so treat small differences as noise.",
        "",
        "## Workloads",
        "",
    ]
    for wid, text in data["workloads"].items():
        lines.append(f"- **{wid}**: {text}")
    lines += ["", "Durability and settings, as each implementation reported them:", ""]
    for backend, by_impl in data["settings"].items():
        for impl, settings in by_impl.items():
            lines.append(
                f"- {BACKEND_NAMES[backend]}, {impl}: "
                + ", ".join(f"{k}={v}" for k, v in settings.items())
            )
    lines += [
        "",
        "Decoding: evstore returns `RecordedEvent`s with data and metadata decoded (orjson) and "
        "UUID/datetime fields converted; eventsourcing's recorder returns `StoredEvent`s / "
        "`Notification`s whose `state` the benchmark decodes with the `JSONTranscoder` its "
        "`Application` uses; the raw driver decodes data and metadata with `orjson.loads` into "
        "plain tuples.",
        "",
        "## Results",
        "",
    ]
    entries = data["entries"]
    ratios = {(r["workload"], r["backend"], r["metric"], r["ratio"]): r for r in data["ratios"]}
    for wid in data["workloads"]:
        rows = [e for e in entries if e["workload"] == wid]
        if not rows:
            continue
        lines += [
            f"### {wid}",
            "",
            "| backend | metric | evstore | eventsourcing | raw | evstore/eventsourcing "
            "| evstore/raw |",
            "|---|---|---|---|---|---|---|",
        ]
        keys = []
        for e in rows:
            if e["metric"] is not None and (e["backend"], e["metric"]) not in keys:
                keys.append((e["backend"], e["metric"]))
        backends_seen = {e["backend"] for e in rows}
        for backend in BACKEND_NAMES:
            if backend not in backends_seen:
                continue
            metrics = [k[1] for k in keys if k[0] == backend] or ["-"]
            for metric in metrics:
                cells = []
                for impl in IMPL_ORDER:
                    match = [
                        e
                        for e in rows
                        if e["backend"] == backend
                        and e["implementation"] == impl
                        and (e["metric"] == metric or e["metric"] is None)
                    ]
                    cells.append(_cell(metric, match[0] if match else None))
                lines.append(
                    f"| {BACKEND_NAMES[backend]} | {metric} | "
                    + " | ".join(cells)
                    + " | "
                    + _ratio_cell(ratios.get((wid, backend, metric, "evstore/eventsourcing")))
                    + " | "
                    + _ratio_cell(ratios.get((wid, backend, metric, "evstore/raw")))
                    + " |"
                )
        lines.append("")
    lines += [
        "For figures in ms and MB lower is better, so a ratio below 1 favours evstore there; "
        "for everything per second a ratio above 1 does.",
        "",
        "## Targets",
        "",
        "| target | measured (median) | verdict |",
        "|---|---|---|",
    ]
    for t in data["targets"]:
        value = (
            "-"
            if t["value"] is None
            else (f"{t['value']:.2f}x" if t["kind"] != "value" else f"{t['value']:.2f}")
        )
        lines.append(f"| {t['target']} | {value} | {t['verdict']} |")
    lines.append("")
    not_run = [e for e in entries if e["status"] != "ok"]
    if not_run:
        lines += ["## Not measured", ""]
        for e in not_run:
            why = e.get("reason") or e.get("error")
            lines.append(
                f"- {e['workload']} {BACKEND_NAMES[e['backend']]} {e['implementation']}: "
                f"{e['status']} - {why}"
            )
        lines.append("")
    if images:
        lines += ["## Charts", ""]
        for image in images:
            lines.append(f"![{image.stem}]({image.as_posix()})")
            lines.append("")
    if ANALYSIS.exists():
        lines += [ANALYSIS.read_text().rstrip(), ""]
    return "\n".join(lines)


def _charts(data: dict[str, Any], folder: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter

    folder.mkdir(parents=True, exist_ok=True)
    written = []
    colors = {"evstore": "#2b6cb0", "eventsourcing": "#dd6b20", "raw": "#718096"}
    values = {
        (e["workload"], e["backend"], e["metric"], e["implementation"]): e["values"]
        for e in data["entries"]
        if e["status"] == "ok"
    }
    for backend in BACKEND_NAMES:
        panels = []
        for workload, b, metric, _impl in values:
            if b == backend and "/s" in metric and (workload, metric) not in panels:
                panels.append((workload, metric))
        if not panels:
            continue
        cols = min(4, len(panels))
        rows = (len(panels) + cols - 1) // cols
        fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.2 * rows), squeeze=False)
        for ax, (workload, metric) in zip(axes.flat, panels, strict=False):
            names, medians, low, high = [], [], [], []
            for impl in IMPL_ORDER:
                vals = values.get((workload, backend, metric, impl))
                if not vals:
                    continue
                med = statistics.median(vals)
                names.append(impl)
                medians.append(med)
                low.append(med - min(vals))
                high.append(max(vals) - med)
            ax.bar(names, medians, yerr=[low, high], capsize=4, color=[colors[n] for n in names])
            ax.set_title(f"{workload} {metric}", fontsize=10)
            ax.tick_params(axis="x", labelsize=8)
            ax.tick_params(axis="y", labelsize=8)
            ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
        for ax in list(axes.flat)[len(panels) :]:
            ax.axis("off")
        fig.suptitle(
            f"{BACKEND_NAMES[backend]}: median of {data['repetitions']} repetitions "
            "(bars: min-max); higher is better"
        )
        fig.tight_layout()
        path = folder / f"benchmarks-{backend}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        written.append(path)
    return written
