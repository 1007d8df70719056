"""The operators' commands, run in-process with click's runner on real SQLite files."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import evstore
from evstore import NewEvent
from evstore.cli import main
from tests.ops_data import assert_same, populate


def _url(tmp_path: Path, name: str) -> str:
    return f"sqlite:///{tmp_path / name}"


def test_export_import_copy_commands(tmp_path: Path) -> None:
    source_url, imported_url, copied_url = (_url(tmp_path, n) for n in ("a.db", "b.db", "c.db"))
    with evstore.connect(source_url) as source:
        populate(source, prefix="[red]")  # markup in stored ids must print verbatim
    runner = CliRunner()
    file = str(tmp_path / "dump.jsonl.zst")
    exported = runner.invoke(main, ["export", file, "--url", source_url])
    assert exported.exit_code == 0, exported.output
    assert exported.stdout.startswith("exported: 16 events, 7 streams")
    imported = runner.invoke(main, ["import", file, "--url", imported_url])
    assert imported.exit_code == 0, imported.output
    copied = runner.invoke(main, ["copy", source_url, copied_url])
    assert copied.exit_code == 0, copied.output
    assert "checkpoint [red]mid: " in copied.stdout
    with (
        evstore.connect(source_url) as source,
        evstore.connect(imported_url) as imported_store,
        evstore.connect(copied_url) as copied_store,
    ):
        assert_same(source, imported_store)
        assert_same(source, copied_store)
    again = runner.invoke(main, ["copy", source_url, copied_url])
    assert again.exit_code == 0 and "resumed" in again.stdout


def test_errors_go_to_stderr_with_exit_1(tmp_path: Path) -> None:
    runner = CliRunner()
    missing = runner.invoke(main, ["import", str(tmp_path / "nope.jsonl"), "--url", "memory://"])
    assert missing.exit_code == 1
    assert missing.stdout == "" and "InvalidInput: cannot open" in missing.stderr
    target = _url(tmp_path, "full.db")
    with evstore.connect(target) as store:
        store.append("x-1", [NewEvent("X", {})])
    source = _url(tmp_path, "src.db")
    with evstore.connect(source) as store:
        store.append("y-1", [NewEvent("Y", {})])
    refused = runner.invoke(main, ["copy", source, target])
    assert refused.exit_code == 1 and "not empty" in refused.stderr


def test_subscriptions_list_parked_discard_reset(tmp_path: Path) -> None:
    url = _url(tmp_path, "s.db")
    with evstore.connect(url) as store:
        populate(store)
        total = len(store.read_all())
    runner = CliRunner()
    listed = runner.invoke(main, ["subscriptions", "--url", url])
    assert listed.exit_code == 0, listed.output
    rows = {line.split("\t")[0]: line.split("\t") for line in listed.stdout.splitlines()[1:]}
    assert rows["orders"][2:] == ["0", "1"]  # no lag, one parked event
    assert rows["mid"][2] == str(total - 4)
    parked = runner.invoke(main, ["subscriptions", "--url", url, "parked", "orders"])
    assert "cannot handle order 1" in parked.stdout
    position = parked.stdout.splitlines()[1].split("\t")[0]
    discarded = runner.invoke(main, ["subscriptions", "--url", url, "discard", "orders", position])
    assert discarded.exit_code == 0, discarded.output
    gone = runner.invoke(main, ["subscriptions", "--url", url, "discard", "orders", position])
    assert gone.exit_code == 1 and "no parked event" in gone.stderr
    reset = runner.invoke(main, ["subscriptions", "--url", url, "reset", "orders"])
    assert reset.exit_code == 0, reset.output
    again = runner.invoke(main, ["subscriptions", "--url", url])
    rows = {line.split("\t")[0]: line.split("\t") for line in again.stdout.splitlines()[1:]}
    assert rows["orders"][1:3] == ["0", str(total)]
    past = runner.invoke(main, ["subscriptions", "--url", url, "reset", "orders", "--to", "999999"])
    assert past.exit_code == 1 and "past the log's head" in past.stderr


SEEN: list[str] = []


def make_projection(store: evstore.EventStore) -> evstore.Projection:
    """A rebuild factory: resets its read model (SEEN) and returns the projection."""
    SEEN.clear()

    def handler(event: evstore.RecordedEvent, tx: Any) -> None:
        SEEN.append(event.stream_id)

    return evstore.Projection(store, "seen", handler, exactly_once=False)


def test_rebuild_runs_a_projection_again_from_the_start(tmp_path: Path) -> None:
    url = _url(tmp_path, "r.db")
    with evstore.connect(url) as store:
        store.append("a-1", [NewEvent("A", {}), NewEvent("A", {})])
        make_projection(store).catch_up()
        assert SEEN == ["a-1", "a-1"]
    sys.modules.setdefault("tests.test_ops_cli", sys.modules[__name__])
    runner = CliRunner()
    rebuilt = runner.invoke(main, ["rebuild", "tests.test_ops_cli:make_projection", "--url", url])
    assert rebuilt.exit_code == 0, rebuilt.output
    assert "rebuilt seen: 2 events handled" in rebuilt.stdout
    assert SEEN == ["a-1", "a-1"]
    bad = runner.invoke(main, ["rebuild", "tests.nope:make", "--url", url])
    assert bad.exit_code == 1 and "cannot load" in bad.stderr


def test_a_mistyped_source_is_an_error_never_a_new_empty_store(tmp_path: Path) -> None:
    runner = CliRunner()
    typo = _url(tmp_path, "typo.db")
    for args in (
        ["verify", "--url", typo],
        ["export", str(tmp_path / "x.jsonl"), "--url", typo],
        ["copy", typo, _url(tmp_path, "dst.db")],
        ["subscriptions", "--url", typo],
    ):
        result = runner.invoke(main, args)
        assert result.exit_code == 1, (args, result.output)
        assert "no evstore database" in result.stderr
    assert not (tmp_path / "typo.db").exists()


def test_ctrl_c_stops_a_copy_that_the_same_command_then_resumes(tmp_path: Path) -> None:
    import os
    import signal
    import subprocess
    import time

    source, target = _url(tmp_path, "big.db"), _url(tmp_path, "dst.db")
    with evstore.connect(source) as store:
        for i in range(300):
            store.append(f"s-{i % 7}", [NewEvent("E", {"i": i * 100 + k}) for k in range(100)])
    exe = os.path.join(os.path.dirname(sys.executable), "evstore")
    process = subprocess.Popen(
        [exe, "copy", source, target], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 120
    while not (tmp_path / "dst.db").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(0.5)  # let it copy some events
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=120)
    if process.returncode == 0:
        pytest.fail("the copy finished before it could be interrupted; make the store larger")
    assert process.returncode == 130, err
    assert b"run the same command again to resume" in err
    resumed = CliRunner().invoke(main, ["copy", source, target])
    assert resumed.exit_code == 0, resumed.output
    assert "resumed at source position" in resumed.stdout
    with evstore.connect(source) as a, evstore.connect(target) as b:
        assert_same(a, b)


def test_a_terminal_gets_a_progress_bar_with_rate(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import io

    from rich.console import Console

    import evstore.cli.ops as cli_ops

    screen = io.StringIO()
    monkeypatch.setattr(cli_ops, "_stderr", Console(file=screen, force_terminal=True, width=120))
    source = _url(tmp_path, "p.db")
    with evstore.connect(source) as store:
        for i in range(30):
            store.append(f"s-{i}", [NewEvent("E", {"k": k}) for k in range(100)])
    result = CliRunner().invoke(main, ["export", str(tmp_path / "p.jsonl"), "--url", source])
    assert result.exit_code == 0, result.output
    assert "export" in screen.getvalue() and "events/s" in screen.getvalue()
