"""The ``evstore`` command as people and scripts use it: every command is run as a real
process, through a pipe and in a pseudo-terminal, with the mistakes new users make.

No traceback ever reaches the user: every run checks that stderr has none.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import select
import shlex
import signal
import sqlite3
import struct
import subprocess
import sys
import termios
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

import evstore
from evstore.cli import main
from evstore.testing._base import batch
from tests.backends.postgresql import server_url

EVSTORE = str(Path(sys.executable).with_name("evstore"))  # the installed entry point
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07")
TRICKY = {"close": "[/]", "bold": "[bold]x[/bold]", "emoji": ":smile:", "nl": "a\nb"}


@dataclass
class Run:
    code: int
    out: str
    err: str


def _env(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "EVSTORE_URL"}
    env.update({"COLUMNS": "100", "TERM": "xterm-256color"})
    env.update(extra or {})
    return env


def piped(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> Run:
    """Run ``evstore ARGS`` with stdout and stderr as pipes."""
    done = subprocess.run(
        [EVSTORE, *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=_env(env),
        stdin=subprocess.DEVNULL,
        timeout=120,
    )
    assert "Traceback" not in done.stderr, done.stderr
    return Run(done.returncode, done.stdout, done.stderr)


def in_terminal(*args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None) -> Run:
    """Run ``evstore ARGS`` in a pseudo-terminal (100 columns); ``out`` is the screen text
    (stdout and stderr both), without colour codes."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    process = subprocess.Popen(
        [EVSTORE, *args], stdin=slave, stdout=slave, stderr=slave, cwd=cwd, env=_env(env)
    )
    os.close(slave)
    chunks = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1.0)
        if not ready:
            if process.poll() is not None:
                break
            continue
        try:
            data = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(master)
    code = process.wait(timeout=60)
    screen = ANSI.sub("", b"".join(chunks).decode("utf-8", "replace")).replace("\r\n", "\n")
    assert "Traceback" not in screen, screen
    return Run(code, screen, screen)


BOTH = pytest.mark.parametrize("run", [piped, in_terminal], ids=["pipe", "terminal"])


@pytest.fixture
def db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    with evstore.connect(url) as store:
        store.append("user-1", batch(3, "UserRegistered"))
        store.append("order-1", batch(1, "OrderPlaced"))
        store.delete_stream("order-1")
        store.append(
            "odd-1",
            [evstore.NewEvent("Odd[type]", dict(TRICKY), metadata={"by": "[red]me[/red]"})],
        )
    return url


# -- blockers --------------------------------------------------------------------------------


@BOTH
def test_stored_text_prints_verbatim_never_as_markup(run: type[piped], db: str) -> None:
    for args in (
        ["read", "odd-1", "--url", db],
        ["tail", "--from-position", "0", "--limit", "5", "--url", db],
    ):
        result = run(*args)
        assert result.code == 0, result.err
        text = result.out
        for literal in ("Odd[type]", "[/]", "[bold]x[/bold]", ":smile:"):
            assert literal in text, (args, literal, text)


def test_json_prints_every_field_verbatim(db: str) -> None:
    result = piped("read", "odd-1", "--json", "--url", db)
    assert result.code == 0
    (record,) = [json.loads(line) for line in result.out.splitlines()]
    with evstore.connect(db) as store:
        (event,) = store.get_events("odd-1")
    assert record == {
        "stream_id": "odd-1",
        "version": 1,
        "position": event.position,
        "event_id": str(event.event_id),
        "type": "Odd[type]",
        "data": TRICKY,
        "metadata": {"by": "[red]me[/red]"},
        "schema_version": 1,
        "occurred_at": event.occurred_at.isoformat(),
        "recorded_at": event.recorded_at.isoformat(),
    }


@BOTH
def test_demo_never_touches_a_file_it_did_not_make(run: type[piped], tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    other = tmp_path / "other.db"
    with evstore.connect(f"sqlite:///{other}") as store:
        store.append("precious-1", batch(5))
    for path in (notes, other):
        result = run("demo", "--path", str(path))
        assert result.code == 1
        assert "was not made by `evstore demo`" in result.err and "--force" in result.err
    assert notes.read_text() == "my notes\n"
    with evstore.connect(f"sqlite:///{other}") as store:
        assert store.stream_version("precious-1") == 5
    (tmp_path / "adir").mkdir()
    for path, message in (("adir", "is a directory"), ("nodir/x.db", "does not exist")):
        result = run("demo", "--path", path, cwd=tmp_path)
        assert result.code == 1 and message in result.err, result.err
    assert not (tmp_path / "nodir").exists() and list((tmp_path / "adir").iterdir()) == []


def test_demo_replaces_its_own_database_and_force_replaces_any(tmp_path: Path) -> None:
    path = tmp_path / "demo.db"
    for _ in range(2):  # the second run replaces the first one's file
        result = piped("demo", "--path", str(path))
        assert result.code == 0, result.err
    with evstore.connect(f"sqlite:///{path}") as store:
        assert store.stream_version("user-0000") == 6
        assert store.get_snapshot("user-0000") is not None
    notes = tmp_path / "notes.txt"
    notes.write_text("mine")
    assert piped("demo", "--path", str(notes), "--force").code == 0
    with evstore.connect(f"sqlite:///{notes}") as store:
        assert store.stream_version("user-0000") == 6


@BOTH
def test_demo_runs_the_whole_scenario_and_its_hint_works_as_typed(
    run: type[piped], tmp_path: Path
) -> None:
    # As after `make demo`: the venv is not on PATH, the command is run by its path.
    env = {"PATH": "/usr/bin:/bin"}
    result = run("demo", "--path", "demo.db", cwd=tmp_path, env=env)
    assert result.code == 0, result.out
    for step in (
        "a subscription",
        "the scenario",
        "read a stream",
        "ConcurrencyError",
        "snapshot of user-0000",
        "upcast on read",
        "users by source",
        "exactly-once",
    ):
        assert step in result.out, step
    assert "seed" not in result.out
    # progress bars: on a terminal only, never in a pipe
    assert ("running the scenario" in result.out + result.err) == (run is in_terminal)
    hint = result.out.split("Inspect it", 1)[1].splitlines()[1].strip()
    again = subprocess.run(
        shlex.split(hint), cwd=tmp_path, env=_env(env), capture_output=True, text=True
    )
    assert again.returncode == 0, (hint, again.stderr)
    assert again.stdout.count("user-0000@") == 6


# -- opening stores --------------------------------------------------------------------------


@BOTH
@pytest.mark.parametrize("command", ["read x", "tail", "streams", "stats"])
def test_a_mistyped_path_is_an_error_never_a_new_database(
    run: type[piped], command: str, tmp_path: Path
) -> None:
    missing = tmp_path / "typo.db"
    result = run(*command.split(), "--url", f"sqlite:///{missing}")
    assert result.code == 1
    assert f"no evstore database at {missing}" in result.err
    assert f"evstore migrate --url sqlite:///{missing}" in result.err
    assert not missing.exists()
    from_env = run(*command.split(), env={"EVSTORE_URL": f"sqlite:///{missing}"})
    assert from_env.code == 1 and "$EVSTORE_URL" in from_env.err
    bare = run(*command.split(), "--url", "app.db")
    assert bare.code == 1 and "sqlite:///app.db" in bare.err


@BOTH
def test_a_file_of_another_application_is_not_an_evstore_database(
    run: type[piped], tmp_path: Path
) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE notes (x)")
    junk = tmp_path / "junk.txt"
    junk.write_text("hello")
    for path in (other, junk):
        result = run("stats", "--url", f"sqlite:///{path}")
        assert result.code == 1 and "not an evstore database" in result.err
    assert junk.read_text() == "hello"


def test_migrate_creates_the_store_the_other_commands_then_open(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    result = piped("migrate", "--url", url)
    assert result.code == 0 and "schema ready" in result.out
    stats = piped("stats", "--json", "--url", url)
    assert stats.code == 0 and json.loads(stats.out)["events"] == 0


def test_postgresql_mistakes_fail_at_once_in_one_line() -> None:
    base = server_url().rsplit("/", 1)[0]
    cases = {
        f"{base}/evstore_no_such_db?pool_timeout=600": 'database "evstore_no_such_db" does not',
        base.replace("//postgres@", "//evstore_no_such_role@") + "/postgres?pool_timeout=600": (
            'role "evstore_no_such_role" does not exist'
        ),
        f"{server_url()}{'&' if '?' in server_url() else '?'}sslmod=x": "sslmod",
        f"{server_url()}{'&' if '?' in server_url() else '?'}schema=evstore_no_such_schema": (
            "no evstore database"
        ),
    }
    for url, reason in cases.items():
        # pool_timeout=600: a wait for the pool would outlast the subprocess time-out.
        result = piped("stats", "--url", url)
        assert result.code == 1, url
        lines = result.err.strip().splitlines()
        assert len(lines) == 1 and reason in lines[0], result.err
        assert "psycopg" not in result.err.lower() and "WARNING" not in result.err


@pytest.mark.parametrize(
    ("url", "module", "extra"),
    [("postgres://h/db", "psycopg", "postgresql"), ("mongodb+srv://h/db", "pymongo", "mongodb")],
)
def test_missing_driver_hint_names_an_extra_that_exists(
    url: str, module: str, extra: str, tmp_path: Path
) -> None:
    (tmp_path / module).mkdir()
    (tmp_path / module / "__init__.py").write_text(f"raise ImportError('no {module} here')\n")
    result = piped("stats", "--url", url, env={"PYTHONPATH": str(tmp_path)})
    assert result.code == 1
    assert f"pip install 'evstore[{extra}]'" in result.err
    import importlib.metadata

    assert extra in (importlib.metadata.metadata("evstore").get_all("Provides-Extra") or [])


# -- read ------------------------------------------------------------------------------------


def test_read_through_a_pipe_prints_one_line_per_event(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'long.db'}"
    wide = {"text": "x" * 500}
    with evstore.connect(url) as store:
        store.append("wide-1", [evstore.NewEvent("Wide", wide) for _ in range(30)])
    result = piped("read", "wide-1", "--url", url)
    lines = result.out.splitlines()
    assert result.code == 0 and len(lines) == 30
    assert lines[0].split("\t") == ["1", "wide-1@1", "Wide", json.dumps(wide)]
    ranged = piped("read", "wide-1", "--from-version", "3", "--to-version", "9", "--url", url)
    assert [line.split("\t")[1] for line in ranged.out.splitlines()] == [
        f"wide-1@{v}" for v in range(3, 10)
    ]
    backwards = piped("read", "wide-1", "--backwards", "--limit", "2", "--url", url)
    assert [line.split("\t")[1] for line in backwards.out.splitlines()] == [
        "wide-1@30",
        "wide-1@29",
    ]


def test_read_into_head_stops_quietly(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'big.db'}"
    with evstore.connect(url) as store:
        for _ in range(5):
            store.append("big-1", batch(2000))
    shell = f"{shlex.quote(EVSTORE)} read big-1 --url {shlex.quote(url)} | head -3"
    done = subprocess.run(
        ["bash", "-o", "pipefail", "-c", shell], capture_output=True, text=True, timeout=120
    )
    assert done.stdout.count("\n") == 3
    assert "Traceback" not in done.stderr and "Error" not in done.stderr, done.stderr


def test_read_streams_events_as_it_reads_them(db: str, monkeypatch: pytest.MonkeyPatch) -> None:
    def whole_list(*args: object, **kwargs: object) -> None:
        raise AssertionError("read must not load the whole stream")

    monkeypatch.setattr(evstore.EventStore, "get_events", whole_list)
    result = CliRunner().invoke(main, ["read", "user-1", "--url", db])
    assert result.exit_code == 0, result.output
    assert result.output.count("UserRegistered") == 3


@BOTH
def test_read_in_a_terminal_is_a_table(run: type[piped], db: str) -> None:
    result = run("read", "user-1", "--url", db)
    assert result.code == 0
    if run is in_terminal:
        assert "user-1 (version 3)" in result.out and "┃ position" in result.out
    else:
        assert "┃" not in result.out and len(result.out.splitlines()) == 3


@BOTH
def test_read_of_a_missing_or_deleted_stream_says_so(run: type[piped], db: str) -> None:
    missing = run("read", "nosuch-1", "--url", db)
    assert missing.code == 1 and "stream 'nosuch-1' does not exist" in missing.err
    deleted = run("read", "order-1", "--url", db)
    assert deleted.code == 0 and "stream 'order-1' was deleted at version 1" in deleted.err
    listed = piped("streams", "--url", db)
    assert "order-1\t1\tdeleted" in listed.out.splitlines()
    bad = run("read", "", "--url", db)
    assert bad.code == 1 and "InvalidInput" in bad.err


# -- tail ------------------------------------------------------------------------------------


@BOTH
def test_tail_says_what_it_follows_and_rejects_a_bad_position(run: type[piped], db: str) -> None:
    tail = ("tail", "--from-position", "0", "--limit", "2", "--type", "UserRegistered")
    result = run(*tail, "--url", db)
    assert result.code == 0
    assert f"following {db} (type 'UserRegistered') after position 0" in result.err
    assert result.out.count("user-1@") == 2
    one = run("tail", "--from-position", "0", "--limit", "1", "--stream", "odd-1", "--url", db)
    assert "(stream 'odd-1')" in one.err and "odd-1@1" in one.out
    odd = ("tail", "--from-position", "0", "--limit", "1", "--type-prefix", "Odd[")
    prefixed = run(*odd, "--url", db)
    assert "(types starting with 'Odd[')" in prefixed.err and "odd-1@1" in prefixed.out
    bad = run("tail", "--from-position", "abc", "--url", db)
    assert bad.code == 2 and "'abc' is not a position" in bad.err


def test_tail_follows_live_appends_until_interrupted(db: str) -> None:
    process = subprocess.Popen(
        [EVSTORE, "tail", "--json", "--url", db],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(None),
    )
    assert process.stderr is not None and process.stdout is not None
    first = process.stderr.readline()
    assert "following" in first and "(the end)" in first
    with evstore.connect(db) as store:
        result = store.append("live-1", [evstore.NewEvent("Live", {"n": 1})])
    record = json.loads(process.stdout.readline())
    assert (record["stream_id"], record["position"]) == ("live-1", result.positions[0])
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=60) == 0
    assert "Traceback" not in process.stderr.read()


# -- streams, stats, help ----------------------------------------------------------------------


@BOTH
def test_streams_pages_and_stats(run: type[piped], db: str) -> None:
    page = run("streams", "--limit", "2", "--url", db)
    assert page.code == 0
    assert f"more streams follow: evstore streams --after order-1 --url {db}" in page.err
    rest = piped("streams", "--after", "odd-1", "--json", "--url", db)
    assert [json.loads(line) for line in rest.out.splitlines()] == [
        {"stream_id": "order-1", "version": 1, "state": "deleted"},
        {"stream_id": "user-1", "version": 3, "state": "live"},
    ]
    assert "more streams" not in rest.err
    stats = run("stats", "--url", db)
    assert stats.code == 0 and "head_position" in stats.out
    assert json.loads(piped("stats", "--json", "--url", db).out)["head_position"] == 5


@BOTH
def test_help_shows_the_default_url_and_never_says_seed(run: type[piped]) -> None:
    for command in ("", "demo", "read", "tail", "streams", "stats", "migrate"):
        result = run(*command.split(), "--help")
        assert result.code == 0
        assert "seed" not in result.out.lower()
        if command not in ("", "demo"):
            assert "$EVSTORE_URL" in result.out and "sqlite:///evstore.db" in result.out
    version = run("--version")
    assert evstore.__version__ in version.out
