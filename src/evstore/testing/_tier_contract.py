"""Contract: the tiers beside the event log - checkpoints, the transactional projection hook,
dead letters and operations - through the public API and through the backend methods that
the store's facade never calls (only projections and operators do).

``store.backend`` is the backend under test: the sync one on the sync face, the asyncio one
(driven from the test's thread) on the async face.
"""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest

import evstore
from evstore import Snapshot
from evstore.spi import (
    AsyncTransactionalCheckpoints,
    DeadLetter,
    TransactionalBackend,
    TransactionalCheckpoints,
)
from evstore.testing._base import ContractBase, batch, eventually, unique
from evstore.testing._base import after as after_position
from evstore.testing._faces import Face, SyncOverAsync


def transactional(backend: Any) -> TransactionalBackend | None:
    """``backend`` (a sync backend, or an asyncio one behind the async face) if it offers
    the transactional checkpoint tier, else None."""
    if isinstance(backend, SyncOverAsync):
        found = isinstance(backend.target, AsyncTransactionalCheckpoints)
    else:
        found = isinstance(backend, TransactionalCheckpoints)
    return cast(TransactionalBackend, backend) if found else None


def checkpoint_of(store: evstore.EventStore, name: str, result: evstore.AppendResult) -> str:
    """The stored checkpoint name of subscription ``name`` for ``result``'s log partition:
    the name itself in a store of one partition, else ``name#partition``."""
    stored = store.checkpoint_name(name)
    return stored if store.partitions == 1 else f"{stored}#{result.partition}"


def upto(store: evstore.EventStore, result: evstore.AppendResult) -> int | evstore.LogCursor:
    """``until=`` for a projection's ``catch_up``: the result's last position (a cursor at
    it in a store of several partitions)."""
    return after_position(store, result, -1)


def in_partition(store: evstore.EventStore, result: evstore.AppendResult) -> dict[str, int]:
    """``partition=`` for a projection's dead-letter calls (none with one partition)."""
    return {} if store.partitions == 1 else {"partition": result.partition}


class _Boom(Exception):
    """The error a test's ``work`` raises."""


class SnapshotStoreContract(ContractBase):
    """The snapshot tier's backend methods: one per stream, the newest kept, dropped on delete."""

    def test_backend_keeps_the_newest_snapshot_per_stream(self, store: evstore.EventStore) -> None:
        backend = store.backend
        a, b = unique(), unique()
        store.append(a, batch(3))
        store.append(b, batch(3))
        assert backend.get_snapshot(a) is None
        store.save_snapshot(Snapshot(a, 2, {"v": 2}))
        store.save_snapshot(Snapshot(b, 3, {"v": "b"}))
        store.save_snapshot(Snapshot(a, 1, {"v": 1}))  # older: ignored
        got = backend.get_snapshot(a)
        assert got is not None and (got.stream_id, got.version) == (a, 2)
        assert store.get_snapshot(b).data == {"v": "b"}  # type: ignore[union-attr]

    def test_deleting_a_stream_drops_its_snapshot_only(self, store: evstore.EventStore) -> None:
        soft, hard, kept = unique(), unique(), unique()
        for sid in (soft, hard, kept):
            store.append(sid, batch(2))
            store.save_snapshot(Snapshot(sid, 2, {}))
        store.delete_stream(soft)
        store.delete_stream(hard, hard=True)
        assert store.backend.get_snapshot(soft) is None
        with pytest.raises(evstore.StreamDeleted):
            store.get_snapshot(hard)
        assert store.get_snapshot(kept) is not None
        assert store.stats()["snapshots"] == 1  # the hard-deleted stream's is gone too


class CheckpointStoreContract(ContractBase):
    """Named positions: stored, overwritten, independent per name, resumed from."""

    def test_backend_stores_and_overwrites_checkpoints_per_name(
        self, store: evstore.EventStore
    ) -> None:
        backend = store.backend
        a, b = unique("cp"), unique("cp/ünï code")
        assert backend.get_checkpoint(a) is None
        backend.set_checkpoint(a, 5)
        backend.set_checkpoint(b, 7)
        assert backend.get_checkpoint(a) == 5
        backend.set_checkpoint(a, 12)
        assert (backend.get_checkpoint(a), backend.get_checkpoint(b)) == (12, 7)
        backend.set_checkpoint(a, 0)
        assert backend.get_checkpoint(a) == 0
        listed = backend.list_checkpoints()
        assert {a: 0, b: 7}.items() <= listed.items()
        assert list(listed) == sorted(listed)

    def test_optional_set_checkpoints_stores_every_name(self, store: evstore.EventStore) -> None:
        # The optional CheckpointBatches tier (the store groups subscriptions' checkpoints).
        backend = store.backend
        if not hasattr(backend, "set_checkpoints"):
            assert not isinstance(backend, evstore.spi.CheckpointBatches)
            return
        backend.set_checkpoint("kept", 4)
        backend.set_checkpoints({"kept": 9, "new/ünï": 2, "other": 0})
        backend.set_checkpoints({"other": 11})
        assert backend.list_checkpoints() == {"kept": 9, "new/ünï": 2, "other": 11}

    def test_list_checkpoints_returns_every_name_in_order(self, store: evstore.EventStore) -> None:
        assert store.backend.list_checkpoints() == {}
        store.append(unique(), batch(1))
        store.backend.set_checkpoint("b-projection", 7)
        store.backend.set_checkpoint("a-projection", 3)
        store.backend.set_checkpoint("b-projection", 9)
        listed = store.backend.list_checkpoints()
        assert listed == {"a-projection": 3, "b-projection": 9}
        assert list(listed) == ["a-projection", "b-projection"]

    def test_checkpoint_is_seen_by_another_store(self, face: Face) -> None:
        name = unique("cp")
        with face.connect() as one, face.connect() as two:
            one.backend.set_checkpoint(name, 42)
            assert two.backend.get_checkpoint(name) == 42

    def test_named_subscription_resumes_after_its_checkpoint(self, face: Face) -> None:
        seen: list[int] = []
        lock = threading.Lock()

        def collect(event: evstore.RecordedEvent) -> None:
            with lock:
                seen.append(event.position)

        with face.connect() as store:
            appended = store.append(unique(), batch(4))
            first = appended.positions
            with store.subscribe(collect, name="projector", batch_size=2):
                eventually(lambda: len(seen) == 4)
            stored = store.backend.get_checkpoint(checkpoint_of(store, "projector", appended))
            assert stored == first[-1]
            appended = store.append(unique(), batch(3))
            second = appended.positions
        with face.connect() as reopened:
            with reopened.subscribe(collect, name="projector", from_position=0) as sub:
                eventually(lambda: len(seen) == 7)
                assert sub.cursor[appended.partition] == second[-1]
            other: list[evstore.RecordedEvent] = []
            with reopened.subscribe(other.append, name="another"):
                eventually(lambda: len(other) == 7)
        assert seen == list(first) + list(second)

    def test_filtered_named_subscription_checkpoints_past_unwanted_events(
        self, store: evstore.EventStore
    ) -> None:
        store.append(unique(), [evstore.NewEvent("Wanted", {})])
        unwanted = store.append(unique(), batch(5, "Unwanted"))
        head = store.head()
        seen: list[evstore.RecordedEvent] = []
        with store.subscribe(seen.append, name="picky", types=["Wanted"]) as sub:
            eventually(lambda: sub.cursor == head)
        assert len(seen) == 1
        stored = store.backend.get_checkpoint(checkpoint_of(store, "picky", unwanted))
        assert stored == unwanted.last_position

    def test_at_least_once_projection_resumes_from_its_checkpoint(
        self, face: Face, store: evstore.EventStore
    ) -> None:
        first = store.append(unique(), batch(3))
        seen: list[tuple[int, int]] = []

        def handle(e: evstore.RecordedEvent, tx: Any) -> None:
            seen.append((e.partition, e.position))

        projection = face.projection(store, "alo", handle, exactly_once=False)
        assert not projection.exactly_once
        projection.catch_up(until=upto(store, first))
        stored = store.backend.get_checkpoint(checkpoint_of(store, "alo", first))
        assert stored == first.last_position
        second = store.append(unique(), batch(2))
        again = face.projection(store, "alo", handle, exactly_once=False)
        again.catch_up(until=upto(store, second))
        assert seen == [(r.partition, p) for r in (first, second) for p in r.positions]


class TransactionalCheckpointsContract(ContractBase):
    """``run_with_checkpoint``: compare-and-set, work and checkpoint in one transaction.

    On a backend without the tier, projections must say they are at-least-once and refuse
    ``exactly_once=True``.
    """

    def test_without_the_tier_projections_are_at_least_once(
        self, face: Face, store: evstore.EventStore
    ) -> None:
        projection = face.projection(store, "tier", lambda e, tx: None)
        assert projection.exactly_once == (transactional(store.backend) is not None)
        if transactional(store.backend) is None:
            with pytest.raises(evstore.InvalidInput):
                face.projection(store, "tier", lambda e, tx: None, exactly_once=True)
        else:
            assert face.projection(store, "tier", lambda e, tx: None, exactly_once=True)

    def test_compare_and_set_runs_work_only_when_the_checkpoint_matches(
        self, store: evstore.EventStore
    ) -> None:
        backend = transactional(store.backend)
        if backend is None:
            return  # covered by test_without_the_tier_projections_are_at_least_once
        name, calls = unique("cas"), list[Any]()
        assert backend.run_with_checkpoint(name, None, 5, calls.append) is True
        assert len(calls) == 1 and calls[0] is not None  # the transaction's handle
        assert backend.get_checkpoint(name) == 5
        assert backend.run_with_checkpoint(name, 4, 9, calls.append) is False  # stale
        assert backend.run_with_checkpoint(name, None, 9, calls.append) is False  # exists
        assert len(calls) == 1 and backend.get_checkpoint(name) == 5
        assert backend.run_with_checkpoint(name, 5, 5, calls.append) is True  # stays
        assert len(calls) == 2 and backend.get_checkpoint(name) == 5
        assert backend.run_with_checkpoint(name, 5, 11, calls.append) is True
        assert backend.get_checkpoint(name) == 11
        assert store.backend.get_checkpoint(unique("cas")) is None

    def test_compare_and_set_sees_set_checkpoint(self, store: evstore.EventStore) -> None:
        backend = transactional(store.backend)
        if backend is None:
            return
        name, calls = unique("cas"), list[Any]()
        backend.set_checkpoint(name, 3)
        assert backend.run_with_checkpoint(name, None, 4, calls.append) is False
        assert backend.run_with_checkpoint(name, 3, 4, calls.append) is True
        assert len(calls) == 1 and backend.get_checkpoint(name) == 4

    def test_work_raising_rolls_back_and_reraises_the_same_exception(
        self, store: evstore.EventStore
    ) -> None:
        backend = transactional(store.backend)
        if backend is None:
            return
        name = unique("cas")
        boom = _Boom("the read model failed")

        def fail(tx: Any) -> None:
            raise boom

        with pytest.raises(_Boom) as raised:
            backend.run_with_checkpoint(name, None, 3, fail)
        assert raised.value is boom
        assert backend.get_checkpoint(name) is None  # not even created
        assert backend.run_with_checkpoint(name, None, 3, lambda tx: None) is True
        with pytest.raises(_Boom) as raised:
            backend.run_with_checkpoint(name, 3, 8, fail)
        assert raised.value is boom
        assert backend.get_checkpoint(name) == 3
        assert backend.run_with_checkpoint(name, 3, 8, lambda tx: None) is True  # not stuck

    def test_async_work_is_awaited_inside_the_transaction(
        self, face: Face, store: evstore.EventStore
    ) -> None:
        backend = transactional(store.backend)
        if backend is None or face.name != "async":
            return  # awaitable work is an asyncio-face feature
        name, done = unique("cas"), []

        async def work(tx: Any) -> None:
            await asyncio.sleep(0.01)
            done.append(tx)

        async def fail(tx: Any) -> None:
            await asyncio.sleep(0)
            raise _Boom()

        assert backend.run_with_checkpoint(name, None, 2, work) is True
        assert len(done) == 1 and backend.get_checkpoint(name) == 2
        with pytest.raises(_Boom):
            backend.run_with_checkpoint(name, 2, 6, fail)
        assert backend.get_checkpoint(name) == 2

    def test_racing_compare_and_set_has_exactly_one_winner(self, face: Face) -> None:
        writers = 4
        with face.connect() as probe:
            if transactional(probe.backend) is None:
                return
        name = unique("race")
        ran: list[int] = []
        results: dict[int, bool] = {}
        errors: list[BaseException] = []
        barrier = threading.Barrier(writers)

        def racer(i: int) -> None:
            try:
                with face.connect() as s:
                    barrier.wait(30)
                    backend = transactional(s.backend)
                    assert backend is not None
                    results[i] = backend.run_with_checkpoint(name, None, 100 + i, ran.append)
            except BaseException as e:  # surfaced below
                errors.append(e)

        threads = [threading.Thread(target=racer, args=(i,)) for i in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        winners = [i for i, won in results.items() if won]
        assert len(winners) == 1 and len(ran) == 1
        with face.connect() as s:
            assert s.backend.get_checkpoint(name) == 100 + winners[0]

    def test_exactly_once_projection_commits_its_checkpoint_with_the_work(
        self, face: Face, store: evstore.EventStore
    ) -> None:
        if transactional(store.backend) is None:
            return
        result = store.append(unique(), batch(4))
        handles: list[Any] = []
        projection = face.projection(
            store, "eo", lambda e, tx: handles.append(tx), exactly_once=True, batch_size=3
        )
        assert projection.catch_up(until=upto(store, result)) == 4
        assert all(tx is not None for tx in handles)
        stored = store.backend.get_checkpoint(checkpoint_of(store, "eo", result))
        assert stored == result.last_position


def _letter(name: str, position: int, error: str = "e", when: datetime | None = None) -> DeadLetter:
    return DeadLetter(
        name,
        position,
        f"s-{position}",
        position + 1,
        "Tested",
        f"id-{name}-{position}",
        error,
        2,
        when or datetime.now(UTC),
    )


class DeadLetterStoreContract(ContractBase):
    """park / dead_letters / unpark, directly and through a projection."""

    def test_letters_are_stored_listed_and_removed_per_name(
        self, store: evstore.EventStore
    ) -> None:
        backend = store.backend
        a, b = unique("dl"), unique("dl")
        assert backend.dead_letters(a, 0, 10) == []
        for position in (9, 3, 5):
            backend.park(_letter(a, position))
        backend.park(_letter(b, 4))
        backend.park(_letter(a, 5, "again"))  # same (name, position): replaced
        listed = backend.dead_letters(a, 0, 10)
        assert [x.position for x in listed] == [3, 5, 9]
        assert listed[1].error == "again"
        assert [x.position for x in backend.dead_letters(a, 3, 1)] == [5]
        assert [x.position for x in backend.dead_letters(a, 9, 10)] == []
        assert backend.unpark(a, 5) is True
        assert backend.unpark(a, 5) is False
        assert backend.unpark(unique("dl"), 3) is False
        assert [x.position for x in backend.dead_letters(a, 0, 10)] == [3, 9]
        assert [x.position for x in backend.dead_letters(b, 0, 10)] == [4]
        assert backend.dead_letters(unique("dl"), 0, 10) == []

    def test_every_field_round_trips(self, store: evstore.EventStore) -> None:
        name = unique("dl")
        when = datetime(2024, 2, 29, 23, 59, 58, 123000, tzinfo=UTC)
        letter = _letter(name, 17, 'Traceback: "ünïcødé" \\ \n\t✓ ' + "x" * 2000, when)
        store.backend.park(letter)
        (got,) = store.backend.dead_letters(name, 0, 10)
        assert got._replace(parked_at=when) == letter
        assert got.parked_at.utcoffset() == timedelta(0)
        assert abs(got.parked_at - when) < timedelta(milliseconds=1)

    def test_letters_outlive_their_stream(self, store: evstore.EventStore) -> None:
        sid, name = unique(), unique("dl")
        (position,) = store.append(sid, batch(1)).positions
        store.backend.park(_letter(name, position)._replace(stream_id=sid, version=1))
        store.delete_stream(sid, hard=True)
        assert [x.position for x in store.backend.dead_letters(name, 0, 10)] == [position]

    def test_projection_parks_lists_replays_and_discards(
        self, face: Face, store: evstore.EventStore
    ) -> None:
        result = store.append(unique(), batch(4))
        positions, part = result.positions, in_partition(store, result)
        broken = {1, 2}
        handled: list[int] = []

        def handle(event: evstore.RecordedEvent, tx: Any) -> None:
            if event.data["i"] in broken:
                raise ValueError(f"cannot handle {event.data['i']}")
            handled.append(event.data["i"])

        name = unique("poison")
        projection = face.projection(store, name, handle, max_attempts=2, retry_delay=0)
        assert projection.catch_up(until=upto(store, result)) == 2
        letters = projection.dead_letters()
        assert [x.position for x in letters] == list(positions[1:3])
        assert projection.dead_letters(**part) == letters
        assert "ValueError: cannot handle 1" in letters[0].error
        assert store.backend.dead_letters(checkpoint_of(store, name, result), 0, 10) == letters
        if store.partitions > 1:  # a position alone is ambiguous: each partition has its own
            with pytest.raises(evstore.InvalidInput, match="partition="):
                projection.discard(positions[2])
        broken.clear()
        assert projection.replay(positions[1], **part) == 1
        assert projection.discard(positions[2], **part) is True
        assert projection.discard(positions[2], **part) is False
        assert projection.dead_letters() == []
        # An exactly-once backend may run a handler again after rolling its batch back.
        assert set(handled) == {0, 1, 3} and handled.count(1) == 1


class OperationsContract(ContractBase):
    """list_streams and stats: what operators see, with the meaning of every count pinned."""

    def test_list_streams_and_stats(self, store: evstore.EventStore) -> None:
        store.append("b-1", batch(2))
        store.append("a-1", batch(1))
        store.append("c-1", batch(1))
        store.delete_stream("c-1")
        store.append("d-1", batch(1))
        store.delete_stream("d-1", hard=True)
        listed = store.list_streams()
        assert [(s.stream_id, s.version, s.state) for s in listed] == [
            ("a-1", 1, "live"),
            ("b-1", 2, "live"),
            ("c-1", 1, "deleted"),
            ("d-1", 1, "tombstoned"),
        ]
        assert [s.stream_id for s in store.list_streams(after="a-1", limit=2)] == ["b-1", "c-1"]
        stats = store.stats()
        assert set(evstore.spi.STATS_KEYS) <= set(stats)
        assert stats["events"] == 4  # c-1's event stays in the log, d-1's is gone
        assert stats["streams"] == 2  # the live ones: a-1 and b-1
        assert stats["snapshots"] == 0
        assert stats["checkpoints"] == 0
        assert stats["head_position"] == store.head_position()
        assert stats["head_position"] >= max(e.position for e in store.read_all())

    def test_stats_count_what_each_tier_stores(self, store: evstore.EventStore) -> None:
        empty = store.stats()
        assert {k: dict(empty)[k] for k in evstore.spi.STATS_KEYS} == dict.fromkeys(
            evstore.spi.STATS_KEYS, 0
        )
        store.append("s-1", batch(3))
        store.append("s-2", batch(1))
        store.save_snapshot(Snapshot("s-1", 2, {}))
        store.backend.set_checkpoint("c", 1)
        store.backend.set_checkpoint("c", 2)  # the same checkpoint
        store.backend.park(_letter("p", 1))  # letters are not counted
        store.delete_stream("s-2")
        store.append("s-2", batch(1), expected_version=0)  # live again
        stats = store.stats()
        assert (stats["events"], stats["streams"]) == (5, 2)
        assert (stats["snapshots"], stats["checkpoints"]) == (1, 1)

    def test_list_streams_pages_through_every_stream(self, store: evstore.EventStore) -> None:
        ids = sorted(f"page-{i:02d}" for i in range(7))
        for sid in reversed(ids):
            store.append(sid, batch(1))
        seen: list[str] = []
        after: str | None = None
        while page := store.list_streams(after=after, limit=3):
            assert len(page) <= 3
            seen += [s.stream_id for s in page]
            after = page[-1].stream_id
        assert seen == ids
