"""The ``evstore`` command, run in-process with click's runner on real SQLite files."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

import evstore
from evstore.cli import main
from evstore.testing._base import batch


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    with evstore.connect(url) as store:
        store.append("user-1", batch(3, "UserRegistered"))
        store.append("order-1", batch(1, "OrderPlaced"))
        store.delete_stream("order-1")
    return url


def test_demo_runs_the_whole_scenario(tmp_path: Path) -> None:
    path = tmp_path / "demo.db"
    result = CliRunner().invoke(main, ["demo", "--path", str(path)])
    assert result.exit_code == 0, result.output
    for step in (
        "a subscription",
        "the scenario",
        "read a stream",
        "optimistic concurrency",
        "ConcurrencyError",
        "snapshot of user-0000",
        "upcast on read",
        "users by source",
        "exactly-once",
        "done",
    ):
        assert step in result.output, step
    with evstore.connect(f"sqlite:///{path}") as store:
        assert store.stream_version("user-0000") == 6
        assert store.get_snapshot("user-0000") is not None
    again = CliRunner().invoke(main, ["demo", "--path", str(path)])
    assert again.exit_code == 0, again.output


def test_read_streams_stats(db: str) -> None:
    runner = CliRunner()
    read = runner.invoke(main, ["read", "user-1", "--url", db])
    assert read.exit_code == 0 and read.output.count("UserRegistered") == 3
    streams = runner.invoke(main, ["streams"], env={"EVSTORE_URL": db})
    assert streams.exit_code == 0
    assert "user-1" in streams.output and "deleted" in streams.output
    stats = runner.invoke(main, ["stats", "--url", db])
    assert stats.exit_code == 0 and "head_position" in stats.output
    migrate = runner.invoke(main, ["migrate", "--url", db])
    assert migrate.exit_code == 0 and "schema ready" in migrate.output


def test_errors_are_one_line_and_exit_1(db: str) -> None:
    result = CliRunner().invoke(main, ["read", "", "--url", db])
    assert result.exit_code == 1
    assert "InvalidInput" in result.output
    bad = CliRunner().invoke(main, ["stats", "--url", "nosuch://x"])
    assert bad.exit_code == 1 and "unsupported URL" in bad.output
