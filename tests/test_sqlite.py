"""SQLite-specific behaviour: durability settings, locking, other processes, the URL."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

import evstore
from evstore.backends.sqlite import SQLiteBackend, parse_url
from evstore.testing._base import batch, eventually

ROOT = Path(__file__).resolve().parent.parent


def _python(code: str, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_default_is_wal_with_synchronous_full(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    with evstore.connect(url) as store:
        store.append("s", batch(1))
        backend = store.backend
        assert isinstance(backend, SQLiteBackend)
        with backend._read() as db:
            assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
            assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    with (
        evstore.connect(url + "?synchronous=NORMAL") as store,
        store.backend._read() as db,  # type: ignore[attr-defined]
    ):
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 1


def test_writer_killed_inside_the_insert_of_a_1000_event_batch_leaves_nothing(
    tmp_path: Path,
) -> None:
    """Deterministic variant of the contract's kill test: SIGKILL at the 500th INSERT."""
    url = f"sqlite:///{tmp_path / 'k.db'}"
    with evstore.connect(url) as store:
        store.append("victim", batch(3))
    proc = _python(
        """
        import os, signal, sys
        import evstore
        from evstore.backends import sqlite as backend

        original = backend.SQLiteBackend._open
        count = 0

        def trace(statement):
            global count
            if statement.startswith("INSERT INTO events"):
                count += 1
                if count == 500:
                    os.kill(os.getpid(), signal.SIGKILL)

        def traced_open(self):
            db = original(self)
            db.set_trace_callback(trace)
            return db

        backend.SQLiteBackend._open = traced_open
        with evstore.connect(sys.argv[1]) as store:
            store.append("victim", [evstore.NewEvent("Bulk", {"i": i}) for i in range(1000)])
        print("not killed")
        """,
        url,
    )
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == -9, (out, err)
    with evstore.connect(url) as store:
        assert store.stream_version("victim") == 3
        assert len(store.read_all()) == 3
        assert store.append("victim", batch(1), expected_version=3).version == 4


def test_busy_writer_waits_instead_of_failing(tmp_path: Path) -> None:
    path = tmp_path / "busy.db"
    with evstore.connect(f"sqlite:///{path}") as store:
        blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        blocker.execute("BEGIN IMMEDIATE")
        threading.Timer(0.5, blocker.rollback).start()
        started = time.monotonic()
        assert store.append("s", batch(1)).version == 1
        assert time.monotonic() - started >= 0.3
        blocker.close()


def test_lock_held_past_busy_timeout_raises_backend_unavailable(tmp_path: Path) -> None:
    path = tmp_path / "locked.db"
    with evstore.connect(f"sqlite:///{path}?busy_timeout=0.2") as store:
        blocker = sqlite3.connect(path, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        try:
            with pytest.raises(evstore.BackendUnavailable, match="locked"):
                store.append("s", batch(1))
        finally:
            blocker.rollback()
            blocker.close()
        assert store.append("s", batch(1)).version == 1


def test_many_threads_on_many_streams_never_see_database_is_locked(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'threads.db'}"
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            with evstore.connect(url) as s:
                for i in range(40):
                    s.append(f"t{n}-{i % 5}", batch(2))
                    s.read_all(limit=10)
        except BaseException as e:
            errors.append(e)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with evstore.connect(url) as s:
        positions = [e.position for e in s.read_all()]
        assert len(positions) == 8 * 40 * 2
        assert positions == sorted(set(positions))


def test_subscription_sees_appends_from_another_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'xproc.db'}"
    with evstore.connect(url) as store:
        seen: list[int] = []
        with store.subscribe(lambda e: seen.append(e.data["i"]), from_position="end") as sub:
            sub.wait_caught_up(10)
            proc = _python(
                """
                import sys, evstore
                with evstore.connect(sys.argv[1]) as s:
                    s.append("remote", [evstore.NewEvent("T", {"i": i}) for i in range(3)])
                """,
                url,
            )
            assert proc.wait(60) == 0
            eventually(lambda: len(seen) == 3)
        assert seen == [0, 1, 2]


def test_another_processs_appends_wake_subscribers_without_waiting_for_the_poll(
    tmp_path: Path,
) -> None:
    # poll_interval of an hour: only the file watcher (PRAGMA data_version) can deliver.
    url = f"sqlite:///{tmp_path / 'watch.db'}"
    with evstore.connect(url, poll_interval=3600) as store:
        seen: list[int] = []
        with store.subscribe(lambda e: seen.append(e.data["i"]), from_position="end") as sub:
            sub.wait_caught_up(10)
            for i in range(3):  # one at a time: each append must wake the subscriber again
                proc = _python(
                    """
                    import sys, evstore
                    with evstore.connect(sys.argv[1]) as s:
                        s.append("remote", [evstore.NewEvent("T", {"i": int(sys.argv[2])})])
                    """,
                    url,
                    str(i),
                )
                assert proc.wait(60) == 0
                eventually(lambda i=i: len(seen) == i + 1, timeout=30)
        assert seen == [0, 1, 2]


def test_processes_creating_the_schema_at_once_all_succeed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}"
    procs = [
        _python(
            """
            import sys, evstore
            with evstore.connect(sys.argv[1]) as s:
                s.append("p", [evstore.NewEvent("T", {})])
            """,
            url,
        )
        for _ in range(4)
    ]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 0, err
    with evstore.connect(url) as s:
        assert s.stream_version("p") == 4


def test_newer_schema_is_refused_with_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    with evstore.connect(f"sqlite:///{path}"):
        pass
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 999")
    db.close()
    with pytest.raises(evstore.BackendUnavailable, match="upgrade evstore"):
        evstore.connect(f"sqlite:///{path}")


def test_a_file_that_is_not_a_database_is_not_an_evstore_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(evstore.InvalidInput, match="not an evstore database"):
        evstore.connect(f"sqlite:///{path}")
    assert path.read_bytes() == b"this is not sqlite" * 100


def test_an_sqlite_file_of_another_application_is_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "other.db"
    with contextlib.closing(sqlite3.connect(path)) as db:
        db.execute("CREATE TABLE notes (body TEXT)")
        db.execute("INSERT INTO notes VALUES ('keep me')")
        db.commit()
    with pytest.raises(evstore.InvalidInput, match=r"not an evstore database.*notes"):
        evstore.connect(f"sqlite:///{path}")
    with contextlib.closing(sqlite3.connect(path)) as db:
        names = [n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        assert names == ["notes"]  # no evstore table was added


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("sqlite:///rel.db", "rel.db"),
        ("sqlite:///dir/rel.db", "dir/rel.db"),
        ("sqlite:////abs/x.db", "/abs/x.db"),
        ("sqlite://", "evstore.db"),
        ("sqlite:///", "evstore.db"),
    ],
)
def test_url_paths(url: str, path: str) -> None:
    assert parse_url(url)[0] == path


def test_bad_urls_and_options_are_invalid_input(tmp_path: Path) -> None:
    for url in ("sqlite://host/x.db", "sqlite:///:memory:", "nosuch://x", "plain-path.db"):
        with pytest.raises(evstore.InvalidInput):
            evstore.connect(url)
    with pytest.raises(evstore.InvalidInput, match="unknown SQLite options"):
        evstore.connect(f"sqlite:///{tmp_path / 'o.db'}?journal=off")
    with pytest.raises(evstore.InvalidInput):
        evstore.connect(f"sqlite:///{tmp_path / 'o.db'}?synchronous=SOMETIMES")


def test_default_url_is_evstore_db_in_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("EVSTORE_URL", raising=False)
    with evstore.connect() as store:
        store.append("s", batch(1))
    assert (tmp_path / "evstore.db").exists()
    monkeypatch.setenv("EVSTORE_URL", f"sqlite:///{tmp_path / 'env.db'}")
    with evstore.connect() as store:
        store.append("s", batch(1))
    assert (tmp_path / "env.db").exists()


def test_closed_store_refuses_work(tmp_path: Path) -> None:
    store = evstore.connect(f"sqlite:///{tmp_path / 'c.db'}")
    store.close()
    store.close()
    with pytest.raises(evstore.BackendUnavailable, match="closed"):
        store.append("s", batch(1))


def test_bad_store_option_creates_no_database_file(tmp_path: Path) -> None:
    path = tmp_path / "never.db"
    for bad in (
        {"page_size": 0},
        {"poll_interval": -1},
        {"category_separator": ""},
        {"tenant": 5},
        {"partitioning": "hash"},
    ):
        with pytest.raises(evstore.InvalidInput):
            evstore.connect(f"sqlite:///{path}", **bad)
        with pytest.raises(evstore.InvalidInput):
            evstore.connect_async(f"sqlite:///{path}", **bad)
    assert not path.exists()


# The events table of schema versions 1 and 2: event ids as text, a (type, occurred_at) index.
_OLD_EVENTS = """
CREATE TABLE events (
    position INTEGER PRIMARY KEY AUTOINCREMENT, stream_id TEXT NOT NULL,
    version INTEGER NOT NULL, event_id TEXT NOT NULL UNIQUE, type TEXT NOT NULL,
    data BLOB NOT NULL, metadata BLOB NOT NULL, schema_version INTEGER NOT NULL,
    occurred_at INTEGER NOT NULL, recorded_at INTEGER NOT NULL, category TEXT NOT NULL,
    partition_key TEXT NOT NULL, partition_hash INTEGER NOT NULL);
CREATE UNIQUE INDEX events_stream_version ON events (stream_id, version);
CREATE INDEX events_type_occurred ON events (type, occurred_at);
CREATE INDEX events_category ON events (category, position);
CREATE TABLE deleted_streams (stream_id TEXT PRIMARY KEY, last_version INTEGER NOT NULL,
    tombstoned INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE snapshots (stream_id TEXT PRIMARY KEY, version INTEGER NOT NULL,
    data BLOB NOT NULL, schema_version INTEGER NOT NULL, taken_at INTEGER NOT NULL) WITHOUT ROWID;
CREATE TABLE checkpoints (name TEXT PRIMARY KEY, position INTEGER NOT NULL) WITHOUT ROWID;
"""
_OLD_DEAD_LETTERS = """
CREATE TABLE dead_letters (name TEXT NOT NULL, position INTEGER NOT NULL,
    stream_id TEXT NOT NULL, version INTEGER NOT NULL, type TEXT NOT NULL,
    event_id TEXT NOT NULL, error TEXT NOT NULL, attempts INTEGER NOT NULL,
    parked_at INTEGER NOT NULL, PRIMARY KEY (name, position)) WITHOUT ROWID;
"""


@pytest.mark.parametrize("old_version", [1, 2])
def test_files_of_older_schemas_are_upgraded_keeping_every_event(
    tmp_path: Path, old_version: int
) -> None:
    import uuid
    from datetime import UTC, datetime

    path = tmp_path / f"v{old_version}.db"
    ids = [uuid.uuid4() for _ in range(5)]
    at = 1_700_000_000_123_456
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.executescript(_OLD_EVENTS + (_OLD_DEAD_LETTERS if old_version == 2 else ""))
        rows = [
            ("acct-a", 1, ids[0]), ("acct-a", 2, ids[1]), ("acct-a", 3, ids[2]),
            ("acct-b", 1, ids[3]), ("acct-b", 2, ids[4]),
        ]  # fmt: skip
        for stream, version, ident in rows:
            db.execute(
                "INSERT INTO events (stream_id, version, event_id, type, data, metadata, "
                "schema_version, occurred_at, recorded_at, category, partition_key, "
                "partition_hash) VALUES (?, ?, ?, 'T', ?, '{}', 1, ?, ?, 'acct', ?, 7)",
                (stream, version, str(ident), f'{{"n": {version}}}'.encode(), at, at, stream),
            )
        # acct-b was hard-deleted: its events are gone, the counter stays at 5.
        db.execute("DELETE FROM events WHERE stream_id = 'acct-b'")
        db.execute("INSERT INTO deleted_streams VALUES ('acct-b', 2, 1)")
        db.execute("INSERT INTO checkpoints VALUES ('proj', 3)")
        db.execute(f"PRAGMA user_version = {old_version}")

    with evstore.connect(f"sqlite:///{path}") as store:
        events = store.get_events("acct-a")
        assert [(e.version, e.position, e.event_id, e.data) for e in events] == [
            (1, 1, ids[0], {"n": 1}),
            (2, 2, ids[1], {"n": 2}),
            (3, 3, ids[2], {"n": 3}),
        ]
        expected_at = datetime.fromtimestamp(at / 1e6, UTC).replace(microsecond=123_456)
        assert events[0].occurred_at == expected_at
        # The counter survived the rebuild: no position of a deleted event is reused.
        assert store.append("acct-c", [evstore.NewEvent("T", {})]).positions == (6,)
        # Stored ids still make repeats idempotent and duplicates an error.
        repeat = [evstore.NewEvent("T", {"n": v}, event_id=ids[v - 1]) for v in (1, 2, 3)]
        assert store.append("acct-a", repeat, expected_version=0).positions == (1, 2, 3)
        with pytest.raises(evstore.DuplicateEventId):
            store.append("acct-d", [evstore.NewEvent("T", {}, event_id=ids[1])])
        with pytest.raises(evstore.StreamDeleted):
            store.append("acct-b", [evstore.NewEvent("T", {})])
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (3,)
        indexes = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='index'")}
        assert "events_type_occurred" not in indexes
        assert {"events_stream_version", "events_category"} <= indexes
        kinds = db.execute("SELECT DISTINCT typeof(event_id), length(event_id) FROM events")
        assert kinds.fetchall() == [("blob", 16)]
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert db.execute("SELECT position FROM checkpoints").fetchall() == [(3,)]
        tables = {n for (n,) in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert "dead_letters" in tables and "events_v3" not in tables
