"""PostgreSQL-specific behaviour: gap safety, held-back readers, LISTEN/NOTIFY, schema
versioning, partitioning, exactly-once projections, hostile names and a server restart.

Every test runs against the real server (``EVSTORE_POSTGRES_URL``, default the local one)
in a schema of its own; an unreachable server fails the tests.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

import evstore
from evstore.backends import postgresql
from evstore.backends.postgresql._sql import LOCK_CLASS
from tests.backends.postgresql import admin_connection, fresh_schema


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_schema() as u:
        yield u


def eventually(condition: Any, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} not met within {timeout}s")
        time.sleep(0.01)


def schema_of(url: str) -> str:
    return url.split("schema=", 1)[1].split("&", 1)[0]


# -- gap safety ----------------------------------------------------------------------------


@pytest.mark.parametrize("other_transaction", [False, True], ids=["alone", "held-back"])
def test_subscriber_sees_every_event_of_8_concurrent_writers_exactly_once_in_order(
    url: str, other_transaction: bool
) -> None:
    """``held-back``: an unrelated transaction stays open throughout, so every read has to
    go through the precise horizon (appends in flight), not the cluster's xmin."""
    writers, appends = 8, 60
    seen: list[evstore.RecordedEvent] = []
    with contextlib.ExitStack() as stack:
        if other_transaction:
            other = stack.enter_context(admin_connection())
            other.execute("BEGIN")
            other.execute("SELECT pg_current_xact_id()")
        store = stack.enter_context(evstore.connect(url, pool_max=12))
        sub = store.subscribe(seen.append, batch_size=50)
        errors: list[BaseException] = []

        def write(w: int) -> None:
            try:
                with evstore.connect(url) as own:
                    for i in range(appends):
                        size = 1 + (i % 3)  # singles and small batches
                        events = [
                            evstore.NewEvent("Wrote", {"w": w, "i": i, "k": k}) for k in range(size)
                        ]
                        own.append(f"writer-{w}", events)
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
        total = writers * sum(1 + (i % 3) for i in range(appends))
        # Readers may lag behind appends still in flight (even our own, when the writer
        # threads ended), so "all readable" is awaited, not assumed.
        eventually(lambda: len(store.read_all()) == total, what="all events readable")
        stored = store.read_all()
        eventually(lambda: len(seen) >= total, what="subscriber caught up")
        sub.stop()
    positions = [e.position for e in seen]
    assert positions == sorted(set(positions)), "duplicate or out-of-order delivery"
    assert [e.event_id for e in seen] == [e.event_id for e in stored]
    for w in range(writers):
        versions = [e.version for e in seen if e.stream_id == f"writer-{w}"]
        assert versions == list(range(1, len(versions) + 1))


def stuck_append(conn: psycopg.Connection[Any], store: evstore.EventStore) -> None:
    """Make ``conn`` look like an append stuck after it got its transaction id."""
    backend: Any = store.backend
    conn.execute("BEGIN")
    conn.execute("SELECT pg_advisory_xact_lock_shared(%s, %s)", (LOCK_CLASS, backend._lock_key))
    conn.execute("SELECT pg_current_xact_id()")


def test_append_in_flight_holds_readers_back_and_is_reported(url: str) -> None:
    with evstore.connect(url, stall_warning=0.0) as store, admin_connection() as blocker:
        first = store.append("a-1", [evstore.NewEvent("A", {})])
        stuck_append(blocker, store)  # from here on, later events wait for it
        later = store.append("b-1", [evstore.NewEvent("B", {})])
        assert later.last_position > first.last_position
        page = store.read_all(first.last_position)
        assert page == [], "an event above an open transaction was handed out"
        status = store.backend.gap_status()  # type: ignore[attr-defined]
        assert status["waiting_events"] == 1
        assert status["blocking_pid"] == blocker.info.backend_pid
        assert status["blocking_xact_age_ms"] >= 0
        assert store.stats()["waiting_events"] == 1
        # The stream itself reads its own committed event at once.
        assert [e.type for e in store.get_events("b-1")] == ["B"]
        blocker.execute("ROLLBACK")
        assert [e.stream_id for e in store.read_all(first.last_position)] == ["b-1"]
        assert store.backend.gap_status()["waiting_events"] == 0  # type: ignore[attr-defined]


def test_other_open_transactions_do_not_hold_readers_back(url: str) -> None:
    with evstore.connect(url) as store, admin_connection() as other:
        other.execute("BEGIN")
        other.execute("SELECT pg_current_xact_id()")  # an xid, but no append
        result = store.append("o-1", [evstore.NewEvent("O", {})])
        assert [e.position for e in store.read_all()] == list(result.positions)
        assert [e.position for e in store.read_all(limit=1)] == list(result.positions)
        assert store.head_position() == result.last_position
        other.execute("ROLLBACK")


def test_held_back_reader_logs_a_warning(url: str, caplog: pytest.LogCaptureFixture) -> None:
    with evstore.connect(url, stall_warning=0.0) as store, admin_connection() as blocker:
        stuck_append(blocker, store)
        store.append("c-1", [evstore.NewEvent("C", {})])
        with caplog.at_level("WARNING", logger="evstore.postgresql"):
            store.read_all()
        blocker.execute("ROLLBACK")
    assert any("held back" in r.getMessage() for r in caplog.records)


def test_positions_of_one_stream_follow_its_versions_under_racing_writers(url: str) -> None:
    def race(_: int) -> None:
        with evstore.connect(url) as s:
            for i in range(40):
                s.append("hot-1", [evstore.NewEvent("Hot", {"i": i})])

    threads = [threading.Thread(target=race, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with evstore.connect(url) as store:
        events = store.get_events("hot-1")
        assert [e.version for e in events] == list(range(1, 161))
        assert [e.position for e in events] == sorted(e.position for e in events)
        assert [e.position for e in store.read_all()] == [e.position for e in events]


# -- live delivery -------------------------------------------------------------------------


def test_notification_wakes_a_subscriber_long_before_its_poll_interval(url: str) -> None:
    seen: list[evstore.RecordedEvent] = []
    with evstore.connect(url, poll_interval=600) as reader, evstore.connect(url) as writer:
        sub = reader.subscribe(seen.append)
        backend: Any = reader.backend
        eventually(lambda: backend.listening, what="LISTEN connection up")
        writer.append("n-1", [evstore.NewEvent("N", {})])
        eventually(lambda: len(seen) == 1, timeout=60, what="notified delivery")
        backend._wake()  # let the subscription notice stop() without waiting 600 s
        sub.stop(timeout=30)


def test_listener_reconnects_and_polling_covers_the_gap(url: str) -> None:
    seen: list[evstore.RecordedEvent] = []
    with evstore.connect(url, poll_interval=0.2) as reader, evstore.connect(url) as writer:
        sub = reader.subscribe(seen.append)
        backend: Any = reader.backend
        eventually(lambda: backend.listening, what="LISTEN connection up")
        channel = f"evstore_{schema_of(url)}"
        with admin_connection() as admin:
            admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = %s",
                (f'LISTEN "{channel}"',),
            )
        writer.append("r-1", [evstore.NewEvent("R", {})])
        eventually(lambda: len(seen) == 1, what="delivery while the listener is down")
        eventually(lambda: backend.listening, what="listener reconnected")
        writer.append("r-1", [evstore.NewEvent("R", {})])
        eventually(lambda: len(seen) == 2, what="delivery after reconnect")
        sub.stop(timeout=30)


def test_async_store_appends_reads_and_subscribes(url: str) -> None:
    async def main() -> list[int]:
        seen: list[int] = []
        async with evstore.connect_async(url) as store:
            results = await asyncio.gather(
                *(store.append(f"as-{i}", [evstore.NewEvent("A", {"i": i})]) for i in range(20))
            )
            sub = await store.subscribe(lambda e: seen.append(e.position))
            await sub.wait_caught_up(30)
            await store.append("as-x", [evstore.NewEvent("A", {})])
            deadline = time.monotonic() + 30
            while len(seen) < 21 and time.monotonic() < deadline:
                await asyncio.sleep(0.01)
            await sub.stop()
            assert sorted(p for r in results for p in r.positions) == seen[:20]
        return seen

    assert len(asyncio.run(main())) == 21


# -- schema --------------------------------------------------------------------------------


def test_schema_is_versioned_and_migrate_creates_it_explicitly(url: str) -> None:
    with pytest.raises(evstore.InvalidInput, match=r"no evstore database.*evstore migrate"):
        evstore.connect(url, create_schema=False)
    assert postgresql.migrate(url) == (0, postgresql.SCHEMA_VERSION)
    assert postgresql.migrate(url) == (postgresql.SCHEMA_VERSION, postgresql.SCHEMA_VERSION)
    with evstore.connect(url, create_schema=False) as store:
        store.append("m-1", [evstore.NewEvent("M", {})])
    with admin_connection() as admin:
        admin.execute(f"UPDATE {schema_of(url)}.evstore_schema SET version = 99")
    with pytest.raises(evstore.BackendUnavailable, match="upgrade evstore"):
        evstore.connect(url)


def test_a_version_1_schema_is_upgraded_keeping_its_events(url: str) -> None:
    with evstore.connect(url) as store:
        store.append("u-1", [evstore.NewEvent("U", {})])
    schema = schema_of(url)
    with admin_connection() as admin:  # back to what version 1 had
        admin.execute(f"DROP FUNCTION {schema}.append_gate(text)")
        admin.execute(f"UPDATE {schema}.evstore_schema SET version = 1")
    with pytest.raises(evstore.BackendUnavailable, match="evstore migrate"):
        evstore.connect(url, create_schema=False)
    assert postgresql.migrate(url) == (1, postgresql.SCHEMA_VERSION)
    with evstore.connect(url, create_schema=False) as store:
        store.append("u-1", [evstore.NewEvent("U", {})], expected_version=1)
        assert [e.version for e in store.get_events("u-1")] == [1, 2]


def test_hard_delete_racing_appends_leaves_no_event_behind(url: str) -> None:
    stop = threading.Event()
    outcomes: Counter[str] = Counter()

    def append_forever() -> None:
        with evstore.connect(url) as s:
            while not stop.is_set():
                try:
                    s.append("doomed-1", [evstore.NewEvent("D", {})])
                    outcomes["appended"] += 1
                except evstore.StreamDeleted:
                    outcomes["refused"] += 1

    with evstore.connect(url) as store:
        store.append("doomed-1", [evstore.NewEvent("D", {})])
        threads = [threading.Thread(target=append_forever) for _ in range(3)]
        for t in threads:
            t.start()
        eventually(lambda: outcomes["appended"] > 30, what="appends before the delete")
        store.delete_stream("doomed-1", hard=True)
        eventually(lambda: outcomes["refused"] > 30, what="appends refused after it")
        stop.set()
        for t in threads:
            t.join()
        eventually(lambda: store.stats()["waiting_events"] == 0, what="nothing in flight")
        assert [e for e in store.read_all() if e.stream_id == "doomed-1"] == []
        assert store.stats()["events"] == 0
        with pytest.raises(evstore.StreamDeleted):
            store.get_events("doomed-1")


def test_cli_migrate_creates_the_schema(url: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "evstore.cli", "migrate", "--url", url + "&create_schema=false"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    with evstore.connect(url, create_schema=False) as store:
        assert store.stream_version("x-1") == 0


def test_processes_creating_the_schema_at_once_all_succeed(url: str) -> None:
    code = (
        "import sys, evstore\n"
        "with evstore.connect(sys.argv[1]) as s:\n"
        "    s.append('p-' + sys.argv[2], [evstore.NewEvent('P', {})])\n"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, url, str(i)], env=dict(os.environ))
        for i in range(4)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    with evstore.connect(url) as store:
        assert store.stats()["events"] == 4
        eventually(lambda: len(store.read_all()) == 4, what="all events readable")


def test_positions_from_another_cluster_are_refused(url: str) -> None:
    with evstore.connect(url) as store:
        store.append("d-1", [evstore.NewEvent("D", {})])
    with admin_connection() as admin:
        # As after a restore into a cluster whose transaction ids start lower.
        admin.execute(f"UPDATE {schema_of(url)}.events SET position = (1::bigint << 60) + 1")
    with pytest.raises(evstore.BackendUnavailable, match="pg_resetwal"):
        evstore.connect(url)


def test_options_are_checked(url: str) -> None:
    for bad in (
        {"pool_max": 0},
        {"schema": "Robert'); DROP"},
        {"partitions": "many"},
        {"table_partitions": "many"},
    ):
        with pytest.raises(evstore.InvalidInput):
            evstore.connect(url.split("?")[0], **bad)
    with pytest.raises(evstore.InvalidInput, match="unknown PostgreSQL options"):
        evstore.connect(url, colour="blue")


def test_unreachable_server_is_backend_unavailable() -> None:
    with pytest.raises(evstore.BackendUnavailable):
        evstore.connect("postgresql://postgres@127.0.0.1:1/postgres?pool_timeout=1")


def test_partitioned_table_is_hash_partitioned(url: str) -> None:
    with evstore.connect(url, table_partitions=16) as store:
        assert store.partitions == 1  # table partitions are storage, not log partitions
        for i in range(50):
            store.append(f"part-{i}", [evstore.NewEvent("P", {"i": i})])
        assert len(store.read_all()) == 50
    with admin_connection() as admin:
        row = admin.execute(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = %s::regclass",
            (f"{schema_of(url)}.events",),
        ).fetchone()
        assert row is not None and row[0] == 16
    with pytest.raises(evstore.InvalidInput, match="table_partitions=16"):
        evstore.connect(url, table_partitions=4)


def test_log_partitions_are_refused_with_the_new_name_for_table_partitions(url: str) -> None:
    for bad in (16, "4", 2):
        with pytest.raises(evstore.InvalidInput, match="table_partitions=") as caught:
            evstore.connect(url, partitions=bad)
        assert "one log" in str(caught.value)
    with pytest.raises(evstore.InvalidInput, match="one log"):
        evstore.connect(url + "&partitions=16" if "?" in url else url + "?partitions=16")
    with evstore.connect(url, partitions=1) as store:
        assert store.partitions == 1
        assert store.append("a-1", [evstore.NewEvent("P", {})]).partition == 0


# -- exactly-once projections --------------------------------------------------------------


def test_projection_writes_its_read_model_and_checkpoint_in_one_transaction(url: str) -> None:
    table = f"{schema_of(url)}.counts"

    def setup(tx: psycopg.Connection[Any]) -> None:
        tx.execute(f"CREATE TABLE IF NOT EXISTS {table} (stream text PRIMARY KEY, n int)")

    def count(event: evstore.RecordedEvent, tx: psycopg.Connection[Any]) -> None:
        tx.execute(
            f"INSERT INTO {table} VALUES (%s, 1) "
            "ON CONFLICT (stream) DO UPDATE SET n = counts.n + 1",
            (event.stream_id,),
        )
        if event.data.get("poison"):
            raise RuntimeError("poison")

    with evstore.connect(url) as store:
        for i in range(30):
            store.append(f"c-{i % 3}", [evstore.NewEvent("C", {"i": i})])
        projection = evstore.Projection(store, "counts", count, setup=setup, on_error="stop")
        assert projection.exactly_once
        assert projection.catch_up() == 30
        store.append("c-0", [evstore.NewEvent("C", {"poison": True})])
        with pytest.raises(RuntimeError, match="poison"):
            evstore.Projection(store, "counts", count, setup=setup, on_error="stop").catch_up()
    with admin_connection() as admin:
        rows = dict(admin.execute(f"SELECT stream, n FROM {table}").fetchall())
    assert rows == {"c-0": 10, "c-1": 10, "c-2": 10}  # the poisoned write was rolled back


# -- hostile input -------------------------------------------------------------------------

HOSTILE = [
    "it's",
    'say "hi"',
    "a;b",
    "$1",
    "$$x$$",
    "'); DROP TABLE events; --",
    "x' OR '1'='1",
    "\\x00",
    "\u2400nul\u2400",
    "\ufeffbom",
    "zero\u200bwidth",
    "\U0010fffd-max",
    "-- comment",
    "%s %(name)s {0}",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_stream_ids_and_types_are_stored_literally(url: str, name: str) -> None:
    with evstore.connect(url) as store:
        data = {"v": name, name: "\u0000" + name}
        result = store.append(name, [evstore.NewEvent(name, data, metadata={"m": name})])
        (event,) = store.get_events(name)
        assert (event.stream_id, event.type, event.data, event.metadata) == (
            name,
            name,
            data,
            {"m": name},
        )
        assert [e.position for e in store.read_all(types=[name])] == list(result.positions)
        store.delete_stream(name)
        assert store.get_events(name) == []
        assert store.stream_version(name) == 0


# -- faults --------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.serial
def test_server_restart_loses_nothing_acknowledged_and_delivers_nothing_twice(url: str) -> None:
    if os.environ.get("EVSTORE_ALLOW_SERVER_RESTART") != "1":
        pytest.skip("restarting the shared server needs EVSTORE_ALLOW_SERVER_RESTART=1")
    url = url + "&retry_timeout=60"
    delivered: Counter[str] = Counter()
    acknowledged: set[str] = set()
    stop = threading.Event()
    failures: list[BaseException] = []

    def write(w: int) -> None:
        with evstore.connect(url) as s:
            i = 0
            while not stop.is_set():
                event = evstore.NewEvent("W", {"w": w, "i": i})
                try:
                    s.append(f"w-{w}", [event])
                except evstore.BackendUnavailable:
                    continue  # not acknowledged: the retry below uses a new event
                except BaseException as e:
                    failures.append(e)
                    return
                acknowledged.add(str(event.event_id))
                i += 1

    with evstore.connect(url) as store:
        sub = store.subscribe(lambda e: delivered.update([str(e.event_id)]), name="restart")
        writers = [threading.Thread(target=write, args=(w,)) for w in range(3)]
        for t in writers:
            t.start()
        eventually(lambda: len(acknowledged) > 50, what="writes before the restart")
        subprocess.run(
            ["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "restart"],
            check=True,
            timeout=120,
        )
        before = len(acknowledged)
        eventually(lambda: len(acknowledged) > before + 50, timeout=120, what="writes after")
        stop.set()
        for t in writers:
            t.join()
        assert failures == []
        eventually(
            lambda: acknowledged <= set(delivered) or not sub.running,
            timeout=120,
            what="delivery of every acknowledged event",
        )
        assert sub.running, f"subscription stopped: {sub.error!r}"
        sub.stop(timeout=30)
        assert acknowledged <= set(delivered)
        assert max(delivered.values()) == 1
        checkpoint = store.backend.get_checkpoint("restart")
        # A new subscription with the same name resumes after the checkpoint.
        store.append("after-1", [evstore.NewEvent("After", {"id": uuid.uuid4().hex})])
        resumed: list[evstore.RecordedEvent] = []
        sub2 = store.subscribe(resumed.append, name="restart")
        eventually(lambda: any(e.stream_id == "after-1" for e in resumed), what="resumed")
        sub2.stop(timeout=30)
        assert checkpoint is not None
        assert all(e.position > checkpoint for e in resumed)
        assert not {str(e.event_id) for e in resumed} & set(delivered)


def test_an_emission_after_read_model_writes_never_sits_below_an_earlier_version(
    url: str,
) -> None:
    """A process manager's handler writes its read model first (its transaction takes an
    id), then a younger transaction appends to the stream it emits to and commits: the
    emitted event would get a lower position than that earlier version. The backend
    notices, rolls the batch back and runs it again; the stream's positions follow its
    versions."""
    with evstore.connect(url) as store, evstore.connect(url) as other:
        store.append("order-1", [evstore.NewEvent("Placed", {})])
        attempts: list[int] = []

        def setup(tx: Any) -> None:
            tx.execute("CREATE TABLE IF NOT EXISTS seen (id text PRIMARY KEY)")

        def handle(event: evstore.RecordedEvent, outbox: evstore.Outbox) -> None:
            attempts.append(1)
            outbox.tx.execute(  # the read model first: the transaction gets its id here
                "INSERT INTO seen VALUES (%s) ON CONFLICT DO NOTHING", (str(event.event_id),)
            )
            if len(attempts) == 1:  # a younger transaction appends and commits meanwhile
                other.append("ship-1", [evstore.NewEvent("Requested", {"by": "other"})])
            outbox.append("ship-1", [evstore.NewEvent("Requested", {"by": "manager"})])

        manager = evstore.ProcessManager(store, "shipper", handle, setup=setup, category="order")
        assert manager.catch_up() == 1
        assert len(attempts) == 2  # the first batch was rolled back and run again
        events = store.get_events("ship-1")
        assert [(e.version, e.data["by"]) for e in events] == [(1, "other"), (2, "manager")]
        assert events[0].position < events[1].position
