"""``evstore retention``, ``evstore scavenge`` and replaying parked events, on SQLite files."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner

import evstore
from evstore import NewEvent
from evstore.cli import main


def _url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'r.db'}"


def test_retention_and_scavenge_commands(tmp_path: Path) -> None:
    url = _url(tmp_path)
    with evstore.connect(url) as store:
        for i in range(6):
            store.append("order-1", [NewEvent("E", {"i": i})])
            store.append("audit-1", [NewEvent("E", {"i": i})])
    runner = CliRunner()
    for args in (
        ["retention", "order-1", "--max-count", "2"],
        ["retention", "--category", "audit", "--protected"],
    ):
        result = runner.invoke(main, [*args, "--url", url])
        assert result.exit_code == 0, result.output
    listed = runner.invoke(main, ["retention", "--url", url])
    assert listed.stdout.splitlines()[1:] == [
        "category\taudit\t\t\t\tyes",
        "stream\torder-1\t\t2\t\t",
    ]
    one = runner.invoke(main, ["retention", "audit-1", "--url", url])
    assert one.stdout == "stream\taudit-1\t\t\t\tyes\n"
    refused = runner.invoke(main, ["retention", "audit-1", "--max-count", "1", "--url", url])
    assert refused.exit_code == 1 and "protected" in refused.stderr
    dry = runner.invoke(main, ["scavenge", "--dry-run", "--url", url])
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.startswith("would free up to 4 events in 1 streams")
    done = runner.invoke(main, ["scavenge", "--url", url])
    assert done.stdout.startswith("freed 4 events in 1 streams"), done.output
    assert "1 protected" in done.stdout
    with evstore.connect(url) as store:
        assert [e.version for e in store.get_events("order-1")] == [5, 6]
        assert store.stats()["events"] == 2 + 6 + 2  # the two metadata events included
    verified = runner.invoke(main, ["verify", "--url", url])
    assert verified.exit_code == 0, verified.output
    cleared = runner.invoke(main, ["retention", "order-1", "--clear", "--url", url])
    assert cleared.exit_code == 0
    with evstore.connect(url) as store:
        assert store.retention("order-1") == evstore.RetentionPolicy()


FAIL = {"on": True}


def flaky_projection(store: evstore.EventStore) -> evstore.Projection:
    """A projection whose handler fails while FAIL["on"] (its events get parked)."""

    def handler(event: evstore.RecordedEvent, tx: Any) -> None:
        if FAIL["on"] and event.data.get("bad"):
            raise ValueError(f"cannot handle {event.stream_id}")

    return evstore.Projection(
        store, "flaky", handler, max_attempts=1, retry_delay=0, exactly_once=False
    )


def test_parked_events_are_replayed_and_discarded_from_the_cli(tmp_path: Path) -> None:
    url = _url(tmp_path)
    with evstore.connect(url) as store:
        for i in range(4):
            store.append(f"p-{i}", [NewEvent("E", {"bad": i % 2 == 1})])
        FAIL["on"] = True
        flaky_projection(store).catch_up()
    sys.modules.setdefault("tests.test_retention_cli", sys.modules[__name__])
    factory = "tests.test_retention_cli:flaky_projection"
    runner = CliRunner()
    parked = runner.invoke(main, ["subscriptions", "--url", url, "parked", "flaky"])
    rows = parked.stdout.splitlines()[1:]
    assert [r.split("\t")[1] for r in rows] == ["p-1", "p-3"]
    still = runner.invoke(main, ["subscriptions", "--url", url, "replay", factory])
    assert (
        still.exit_code == 1 and "replayed 0 parked events of flaky; 2 still parked" in still.stdout
    )
    FAIL["on"] = False
    first = rows[0].split("\t")[0]
    one = runner.invoke(
        main, ["subscriptions", "--url", url, "replay", factory, "--position", first]
    )
    assert one.exit_code == 0 and "replayed 1 parked events of flaky; 1 still parked" in one.stdout
    second = rows[1].split("\t")[0]
    dropped = runner.invoke(main, ["subscriptions", "--url", url, "discard", "flaky", second])
    assert dropped.exit_code == 0, dropped.output
    listed = runner.invoke(main, ["subscriptions", "--url", url])
    assert listed.stdout.splitlines()[1].split("\t")[-1] == "0"
