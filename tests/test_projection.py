"""Projections: checkpoints, exactly-once on SQLite (also across SIGKILL), poison events."""

from __future__ import annotations

import asyncio
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

import evstore
from evstore import NewEvent, Projection
from evstore.testing import StoreFactory


def fill(store: evstore.EventStore, n: int, type_: str = "Item") -> list[int]:
    """Append n one-event streams; return the events' positions."""
    return [
        store.append(f"item-{uuid.uuid4().hex[:10]}", [NewEvent(type_, {"i": i})]).last_position
        for i in range(n)
    ]


def eventually(condition: Any, timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout  # generous: the machines are shared
    while not condition():
        if time.monotonic() > end:
            pytest.fail(f"not reached within {timeout}s")
        time.sleep(0.01)


@pytest.fixture
def store(store_factory: StoreFactory) -> Any:
    s = store_factory.connect()
    yield s
    s.close()


def test_a_projection_handles_the_log_and_resumes_after_its_checkpoint(
    store: evstore.EventStore,
) -> None:
    fill(store, 5)
    last = fill(store, 2, "Other")[-1]
    seen: list[int] = []
    txs: list[Any] = []

    def handle(event: evstore.RecordedEvent, tx: Any) -> None:
        seen.append(event.data["i"])
        txs.append(tx)

    first = Projection(store, "items", handle, types="Item", batch_size=2)
    assert first.catch_up(until=last) == 5
    assert seen == [0, 1, 2, 3, 4]
    assert first.position >= last
    assert all((tx is not None) == first.exactly_once for tx in txs)
    last = fill(store, 3)[-1]
    again = Projection(store, "items", handle, types="Item")
    assert again.catch_up(until=last) == 3
    assert seen == [0, 1, 2, 3, 4, 0, 1, 2]


def test_memory_is_at_least_once_and_refuses_exactly_once() -> None:
    with evstore.connect("memory://") as store:
        assert not Projection(store, "p", lambda e, tx: None).exactly_once
        with pytest.raises(evstore.InvalidInput, match="exactly_once"):
            Projection(store, "p", lambda e, tx: None, exactly_once=True)


def test_sqlite_is_exactly_once_and_a_failed_attempt_leaves_no_trace(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p.db'}"
    failures = {3: 1, 7: 2}  # event i -> how many times it fails before succeeding

    def setup(tx: sqlite3.Connection) -> None:
        tx.execute("CREATE TABLE IF NOT EXISTS seen (i INTEGER NOT NULL)")

    def handle(event: evstore.RecordedEvent, tx: sqlite3.Connection) -> None:
        tx.execute("INSERT INTO seen VALUES (?)", (event.data["i"],))
        if failures.get(event.data["i"], 0) > 0:
            failures[event.data["i"]] -= 1
            raise RuntimeError("flaky")  # after writing: the write must be rolled back

    with evstore.connect(url) as store:
        fill(store, 10)
        projection = Projection(
            store, "seen", handle, setup=setup, batch_size=4, retry_delay=0, max_attempts=3
        )
        assert projection.exactly_once
        assert projection.catch_up() == 10
        assert projection.dead_letters() == []
    with sqlite3.connect(tmp_path / "p.db") as db:
        assert [i for (i,) in db.execute("SELECT i FROM seen ORDER BY i")] == list(range(10))


def test_a_poison_event_is_retried_parked_listed_and_replayed(
    store: evstore.EventStore,
) -> None:
    positions = fill(store, 5)
    attempts: dict[int, int] = {}
    broken = {"yes": True}
    handled: list[int] = []

    def handle(event: evstore.RecordedEvent, tx: Any) -> None:
        i = event.data["i"]
        attempts[i] = attempts.get(i, 0) + 1
        if i == 2 and broken["yes"]:
            raise ValueError("cannot handle item 2")
        handled.append(i)

    projection = Projection(store, "poison", handle, max_attempts=3, retry_delay=0)
    assert projection.catch_up(until=positions[-1]) == 4
    assert attempts[2] == 3 if not projection.exactly_once else attempts[2] == 4
    assert sorted(set(handled)) == [0, 1, 3, 4]
    assert projection.position >= positions[-1]  # it moved on
    (letter,) = projection.dead_letters()
    (poison,) = store.get_events(letter.stream_id)
    assert poison.data == {"i": 2}
    assert (letter.position, letter.version, letter.type) == (poison.position, 1, "Item")
    assert letter.attempts == 3 and "ValueError: cannot handle item 2" in letter.error
    assert letter.event_id == str(poison.event_id)
    assert projection.replay() == 0  # still broken: stays parked, one more attempt
    assert projection.dead_letters()[0].attempts == 4
    broken["yes"] = False
    assert projection.replay() == 1
    assert handled.count(2) == 1
    assert projection.dead_letters() == []
    with pytest.raises(evstore.InvalidInput):
        projection.replay(poison.position)  # no longer parked
    assert not projection.discard(poison.position)


def test_on_error_stop_stops_before_the_poison_event(store: evstore.EventStore) -> None:
    positions = fill(store, 4)
    seen: list[int] = []

    def fail_on_two(event: evstore.RecordedEvent, tx: Any) -> None:
        if event.data["i"] == 2:
            raise ValueError("stop here")
        seen.append(event.data["i"])

    stopper = Projection(store, "stopper", fail_on_two, on_error="stop", retry_delay=0)
    with pytest.raises(ValueError, match="stop here"):
        stopper.catch_up(until=positions[-1])
    assert stopper.dead_letters() == []
    assert store.backend.get_checkpoint("stopper") == positions[1]
    resumed = Projection(store, "stopper", lambda e, tx: seen.append(e.data["i"]))
    assert resumed.catch_up(until=positions[-1]) == 2
    assert seen[-2:] == [2, 3]


def test_a_background_projection_follows_live_appends(store: evstore.EventStore) -> None:
    seen: list[int] = []
    projection = Projection(store, "live", lambda e, tx: seen.append(e.data["i"]))
    with projection:
        fill(store, 3)
        eventually(lambda: len(seen) == 3)
        fill(store, 2)
        eventually(lambda: len(seen) == 5)
    assert not projection.running
    assert seen == [0, 1, 2, 0, 1]
    assert projection.lag == 0


def test_a_background_projection_that_must_stop_reports_the_error(
    store: evstore.EventStore,
) -> None:
    def boom(event: evstore.RecordedEvent, tx: Any) -> None:
        raise KeyError("boom")

    projection = Projection(store, "bg-stop", boom, on_error="stop", retry_delay=0)
    projection.start()
    fill(store, 1)
    eventually(lambda: not projection.running)
    with pytest.raises(KeyError):
        projection.stop()


def test_partitioned_projections_split_the_log_exactly(store: evstore.EventStore) -> None:
    appended = fill(store, 40)
    seen: list[list[int]] = [[] for _ in range(4)]
    for slot in range(4):
        projection = Projection(
            store, f"split-{slot}of4", lambda e, tx, s=slot: seen[s].append(e.position),
            partition=(slot, 4),
        )  # fmt: skip
        projection.catch_up(until=appended[-1])
    positions = [p for s in seen for p in s]
    assert sorted(positions) == appended
    assert all(seen)  # every consumer got a share


def test_the_async_projection_awaits_async_handlers(store_factory: StoreFactory) -> None:
    async def scenario() -> None:
        async with store_factory.connect_async() as store:
            for i in range(6):
                last = await store.append(f"a-{i}", [NewEvent("Item", {"i": i})])
            seen: list[int] = []

            async def handle(event: evstore.RecordedEvent, tx: Any) -> None:
                await asyncio.sleep(0)
                seen.append(event.data["i"])

            projection = evstore.AsyncProjection(store, "async", handle, batch_size=4)
            assert await projection.catch_up(until=last.last_position) == 6
            async with projection:
                await store.append("a-x", [NewEvent("Item", {"i": 6})])
                for _ in range(6000):
                    if len(seen) == 7:
                        break
                    await asyncio.sleep(0.01)
            assert seen == list(range(7))

    asyncio.run(scenario())


WORKER = """
import os, signal, sys, time, evstore

url, kill_at = sys.argv[1], int(sys.argv[2])

def setup(tx):
    tx.execute("CREATE TABLE IF NOT EXISTS totals (id INTEGER PRIMARY KEY, n INTEGER, s INTEGER)")
    tx.execute("INSERT OR IGNORE INTO totals VALUES (1, 0, 0)")
    tx.execute("CREATE TABLE IF NOT EXISTS applied (position INTEGER NOT NULL)")

def handle(event, tx):
    tx.execute("UPDATE totals SET n = n + 1, s = s + ?", (event.data["i"],))
    tx.execute("INSERT INTO applied VALUES (?)", (event.position,))
    if event.position == kill_at:  # die in the middle of a batch, its writes half done
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(0.002)  # keep transactions open long enough to be killed inside them

with evstore.connect(url) as store:
    projection = evstore.Projection(
        store, "totals", handle, setup=setup, batch_size=10, exactly_once=True
    )
    projection.catch_up()
"""


@pytest.mark.slow
def test_a_projection_killed_with_sigkill_resumes_with_the_read_model_exactly_right(
    tmp_path: Path,
) -> None:
    path = tmp_path / "kill.db"
    url = f"sqlite:///{path}"
    total = 1500
    rng = random.Random(1234)
    with evstore.connect(url) as store:
        positions: list[int] = []
        for start in range(0, total, 100):
            batch = [NewEvent("Number", {"i": i}) for i in range(start, start + 100)]
            positions.extend(store.append(f"n-{start}", batch).positions)

        def checkpoint() -> int:
            return store.backend.get_checkpoint("totals") or 0

        # 1. The handler kills its own process in the middle of a batch.
        worker = subprocess.run([sys.executable, "-c", WORKER, url, str(positions[104])])
        assert worker.returncode == -signal.SIGKILL
        assert 0 < checkpoint() < positions[104]
        # 2. Killed from outside at arbitrary moments while it runs.
        kills = 0
        for _ in range(6):
            last = checkpoint()
            worker = subprocess.Popen([sys.executable, "-c", WORKER, url, "0"])
            eventually(lambda last=last: checkpoint() > last)
            time.sleep(rng.uniform(0, 0.05))
            if worker.poll() is None:
                worker.send_signal(signal.SIGKILL)
                kills += 1
            worker.wait(60)
        assert kills >= 1 and checkpoint() < positions[-1]
        # 3. A last run to the end.
        subprocess.run([sys.executable, "-c", WORKER, url, "0"], check=True, timeout=300)
        assert checkpoint() == positions[-1]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT n, s FROM totals").fetchone() == (total, sum(range(total)))
        assert db.execute("SELECT count(*), count(DISTINCT position) FROM applied").fetchone() == (
            total,
            total,
        )


def test_replaying_an_event_whose_stream_was_deleted_keeps_the_letter(
    store: evstore.EventStore,
) -> None:
    positions = fill(store, 2)

    def reject(event: evstore.RecordedEvent, tx: Any) -> None:
        raise ValueError("no")

    projection = Projection(store, "gone", reject, max_attempts=1, retry_delay=0)
    projection.catch_up(until=positions[-1])
    letters = projection.dead_letters()
    assert len(letters) == 2
    store.delete_stream(letters[0].stream_id, hard=True)
    assert projection.replay() == 0
    first, second = projection.dead_letters()
    assert "StreamDeleted" in first.error and first.attempts == 2
    assert "ValueError: no" in second.error


def test_two_instances_of_one_projection_never_apply_an_event_twice(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'twins.db'}"

    def setup(tx: sqlite3.Connection) -> None:
        tx.execute("CREATE TABLE IF NOT EXISTS applied (position INTEGER NOT NULL)")

    def handle(event: evstore.RecordedEvent, tx: sqlite3.Connection) -> None:
        tx.execute("INSERT INTO applied VALUES (?)", (event.position,))
        time.sleep(0.001)  # let the twins overlap

    with evstore.connect(url) as store:
        last = fill(store, 300)[-1]
    errors: list[BaseException] = []
    both_ready = threading.Barrier(2)

    def run() -> None:
        try:
            with evstore.connect(url) as own:
                twin = Projection(own, "twins", handle, setup=setup, batch_size=7)
                both_ready.wait(60)
                twin.catch_up(until=last)
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert errors == []
    with sqlite3.connect(tmp_path / "twins.db") as db:
        assert db.execute("SELECT count(*), count(DISTINCT position) FROM applied").fetchone() == (
            300,
            300,
        )


def test_group_member_sigkilled_mid_batch_resumes_with_nothing_skipped_or_applied_twice(
    tmp_path: Path,
) -> None:
    """SQLite, 16 partitions: member 1 of a group of 4 exactly-once projections, its read
    model in the store's own file, killed with SIGKILL in the middle of a batch, then run
    again: every event of its share applied once, none of another member's."""
    from evstore.testing._concurrency_contract import _worker_env

    url = f"sqlite:///{tmp_path / 'group.db'}?partitions=16"
    member, members = 1, 4
    with evstore.connect(url) as store:
        for k in range(120):
            store.append(f"acct-{k}", [NewEvent("G", {"j": j}) for j in range(3)])
        share = [(e.partition, e.position) for e in store.read_all(partition=(member, members))]
    assert len(share) > 60 and {p % members for p, _ in share} == {member}

    def applied() -> list[tuple[int, int]]:
        with sqlite3.connect(tmp_path / "group.db") as db:
            try:
                return [tuple(r) for r in db.execute("SELECT partition, position FROM applied")]
            except sqlite3.OperationalError:  # no table yet
                return []

    command = [
        sys.executable, "-m", "evstore.testing._worker", "projection-member", url, "billing",
        f"{member}/{members}",
    ]  # fmt: skip
    first = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=_worker_env())
    try:
        assert first.stdout is not None and first.stdout.readline().strip() == "ready"
        eventually(lambda: len(applied()) >= 25)
        first.send_signal(signal.SIGKILL)  # batches are 10 events of 2 ms each
        first.wait(30)
    finally:
        if first.poll() is None:
            first.kill()
    before = applied()
    assert 25 <= len(before) < len(share), "the member finished before it was killed"
    second = subprocess.run(command, capture_output=True, text=True, env=_worker_env(), timeout=120)
    assert second.returncode == 0, second.stderr
    after = applied()
    assert sorted(after) == sorted(share)  # nothing skipped, nothing applied twice
    assert after[: len(before)] == before
