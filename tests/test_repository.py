"""The repository: the seed's three bugs, concurrency, snapshots, schema changes, caching."""

from __future__ import annotations

import asyncio
import uuid
from dataclasses import dataclass, field
from typing import Any, ClassVar

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import evstore
from evstore import Aggregate, EventRegistry, applies
from evstore.testing import StoreFactory

REGISTRY = EventRegistry()


@REGISTRY.register
@dataclass(frozen=True)
class Added:
    n: int


@dataclass
class Tally(Aggregate):
    """Counts how often each event was applied, to catch double application."""

    applied: ClassVar[int] = 0
    seen: list[int] = field(default_factory=list)

    def add(self, *ns: int) -> None:
        for n in ns:
            self.trigger(Added(n))

    @applies(Added)
    def _added(self, event: Added) -> None:
        Tally.applied += 1
        self.seen.append(event.n)


class TallyV2(Tally):
    snapshot_schema = 2


class TallyV1(Tally):
    snapshot_schema = 1


def unique() -> str:
    return f"tally-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(store_factory: StoreFactory) -> Any:
    s = store_factory.connect()
    yield s
    s.close()


def repo(store: evstore.EventStore, cls: type[Tally] = Tally, **options: Any) -> Any:
    return evstore.Repository(store, cls, registry=REGISTRY, **options)


def test_a_brand_new_aggregate_saves_at_version_zero(store: evstore.EventStore) -> None:
    tally = Tally.create(unique())
    tally.add(1, 2)
    result = repo(store).save(tally)
    assert result is not None and result.version == 2
    assert store.stream_version(tally.id) == 2
    assert (tally.version, tally.pending_events) == (2, [])
    again = Tally.create(tally.id)
    again.add(3)
    with pytest.raises(evstore.ConcurrencyError):
        repo(store).save(again)  # a second "new" aggregate with a taken id
    assert store.stream_version(tally.id) == 2


def test_no_event_is_applied_twice_after_a_snapshot(store: evstore.EventStore) -> None:
    r = repo(store, snapshot_every=3, cache=False)
    tally = Tally.create(unique())
    tally.add(0, 1, 2)
    r.save(tally)
    snapshot = store.get_snapshot(tally.id)
    assert snapshot is not None and snapshot.version == 3
    tally.add(3, 4)
    r.save(tally)
    Tally.applied = 0
    loaded = r.load(tally.id)
    assert loaded.seen == [0, 1, 2, 3, 4]
    assert Tally.applied == 2  # only the events after the snapshot
    assert loaded.version == 5


def test_a_batch_crossing_the_snapshot_interval_snapshots(store: evstore.EventStore) -> None:
    r = repo(store, snapshot_every=100)
    tally = Tally.create(unique())
    tally.add(*range(98))
    r.save(tally)
    assert store.get_snapshot(tally.id) is None
    tally.add(*range(98, 103))  # 98 -> 103 never lands on 100
    r.save(tally)
    snapshot = store.get_snapshot(tally.id)
    assert snapshot is not None and snapshot.version == 103
    assert snapshot.data["seen"] == list(range(103))


def test_landing_exactly_on_a_multiple_snapshots_too(store: evstore.EventStore) -> None:
    r = repo(store, snapshot_every=5)
    tally = Tally.create(unique())
    tally.add(*range(4))
    r.save(tally)
    tally.add(4)
    r.save(tally)
    snapshot = store.get_snapshot(tally.id)
    assert snapshot is not None and snapshot.version == 5


def test_of_two_concurrent_saves_exactly_one_wins(store: evstore.EventStore) -> None:
    r = repo(store)
    tally = Tally.create(unique())
    tally.add(0)
    r.save(tally)
    first, second = r.load(tally.id), repo(store).load(tally.id)
    first.add(1)
    second.add(2)
    r.save(first)
    with pytest.raises(evstore.ConcurrencyError) as caught:
        repo(store).save(second)
    assert (caught.value.expected, caught.value.actual) == (1, 2)
    assert r.load(tally.id).seen == [0, 1]


def test_retry_reloads_and_runs_the_command_again(store: evstore.EventStore) -> None:
    r = repo(store)
    sid = unique()
    tally = Tally.create(sid)
    tally.add(0)
    r.save(tally)
    calls = []

    def command(t: Tally) -> None:
        calls.append(t.version)
        if len(calls) == 1:  # someone else saves in between, once
            other = repo(store, cache=False).load(sid)
            other.add(100)
            repo(store, cache=False).save(other)
        t.add(len(t.seen))

    result = r.retry(sid, command)
    assert calls == [1, 2]
    assert result.seen == [0, 100, 2]
    assert r.load(sid).seen == [0, 100, 2]


def test_get_is_none_and_load_raises_for_a_missing_aggregate(store: evstore.EventStore) -> None:
    assert repo(store).get(unique()) is None
    with pytest.raises(evstore.StreamNotFound):
        repo(store).load(unique())
    with pytest.raises(evstore.StreamNotFound):
        repo(store).retry(unique(), lambda t: t.add(1))


def test_saving_nothing_writes_nothing(store: evstore.EventStore) -> None:
    tally = Tally.create(unique())
    assert repo(store).save(tally) is None
    assert store.stream_version(tally.id) == 0


def test_a_snapshot_of_another_schema_is_ignored_and_replaced(
    store: evstore.EventStore,
) -> None:
    sid = unique()
    tally = TallyV1.create(sid)
    tally.add(0, 1, 2)
    repo(store, TallyV1, snapshot_every=3).save(tally)
    old = store.get_snapshot(sid)
    assert old is not None and (old.version, old.schema_version) == (3, 1)
    Tally.applied = 0
    loaded = repo(store, TallyV2, snapshot_every=3, cache=False).load(sid)
    assert Tally.applied == 3  # rebuilt from the events, not from the v1 snapshot
    loaded.add(3)  # 3 -> 4 crosses nothing, but the stale snapshot is replaced
    repo(store, TallyV2, snapshot_every=3, cache=False).save(loaded)
    new = store.get_snapshot(sid)
    assert new is not None and (new.version, new.schema_version) == (4, 2)
    Tally.applied = 0
    assert repo(store, TallyV2, cache=False).load(sid).seen == [0, 1, 2, 3]
    assert Tally.applied == 0


def test_the_cache_serves_state_and_never_misses_other_writers(
    store_factory: StoreFactory, store: evstore.EventStore
) -> None:
    r = repo(store, snapshot_every=None)
    tally = Tally.create(unique())
    tally.add(0, 1)
    r.save(tally)
    Tally.applied = 0
    assert r.load(tally.id).seen == [0, 1]
    assert Tally.applied == 0  # served from the cache
    with store_factory.connect() as other_store:  # another writer, another connection
        other = repo(other_store, cache=False).load(tally.id)
        other.add(2)
        repo(other_store, cache=False).save(other)
    Tally.applied = 0
    assert r.load(tally.id).seen == [0, 1, 2]
    assert Tally.applied == 1  # only the new event was read and applied
    assert r.states is not None and r.states.stats.hits >= 2


def test_the_cache_can_be_switched_off(store: evstore.EventStore) -> None:
    r = repo(store, cache=False)
    assert r.states is None and r.snapshots is None
    tally = Tally.create(unique())
    tally.add(0)
    r.save(tally)
    Tally.applied = 0
    r.load(tally.id)
    assert Tally.applied == 1


def test_a_repeated_save_after_an_unknown_outcome_is_not_stored_twice(
    store: evstore.EventStore,
) -> None:
    tally = Tally.create(unique())
    tally.add(0, 1)
    # The first attempt reached the store, but the caller never heard back.
    sent = [REGISTRY.encode(e, event_id=i) for e, i in tally._pending]
    store.append(tally.id, sent, expected_version=0)
    result = repo(store).save(tally)
    assert result is not None and result.version == 2
    assert len(store.get_events(tally.id)) == 2


def test_metadata_is_stored_with_each_event(store: evstore.EventStore) -> None:
    tally = Tally.create(unique())
    tally.add(0, 1)
    repo(store).save(tally, metadata={"user": "ada"})
    assert [e.metadata for e in store.get_events(tally.id)] == [{"user": "ada"}] * 2


def test_bad_arguments_are_refused(store: evstore.EventStore) -> None:
    with pytest.raises(evstore.InvalidInput):
        evstore.Repository(store, object, registry=REGISTRY)  # type: ignore[type-var]
    with pytest.raises(evstore.InvalidInput):
        repo(store, snapshot_every=0)
    with pytest.raises(evstore.InvalidInput):
        repo(store).save(object())


def test_the_async_repository_does_the_same(store_factory: StoreFactory) -> None:
    async def scenario() -> None:
        async with store_factory.connect_async() as store:
            r = evstore.AsyncRepository(store, Tally, registry=REGISTRY, snapshot_every=2)
            tally = Tally.create(unique())
            tally.add(0, 1, 2)
            await r.save(tally)
            assert (await store.get_snapshot(tally.id)) is not None
            loaded = await r.load(tally.id)
            assert loaded.seen == [0, 1, 2]
            stale = await evstore.AsyncRepository(store, Tally, registry=REGISTRY).load(tally.id)
            loaded.add(3)
            await r.save(loaded)
            stale.add(4)
            with pytest.raises(evstore.ConcurrencyError):
                await evstore.AsyncRepository(store, Tally, registry=REGISTRY).save(stale)

            async def command(t: Tally) -> None:
                t.add(5)

            done = await r.retry(tally.id, command)
            assert done.seen == [0, 1, 2, 3, 5]

    asyncio.run(scenario())


@settings(max_examples=60, deadline=None)
@given(
    every=st.integers(min_value=1, max_value=12),
    batches=st.lists(st.integers(min_value=1, max_value=30), min_size=1, max_size=8),
)
def test_a_snapshot_is_taken_exactly_when_a_save_crosses_a_multiple(
    every: int, batches: list[int]
) -> None:
    with evstore.connect("memory://") as store:
        r = repo(store, snapshot_every=every, cache=False)
        tally = Tally.create(unique())
        expected = None
        for size in batches:
            before = tally.version
            tally.add(*range(before, before + size))
            r.save(tally)
            if before // every != tally.version // every:
                expected = tally.version
            snapshot = store.get_snapshot(tally.id)
            assert (snapshot.version if snapshot else None) == expected
        assert r.load(tally.id).seen == list(range(sum(batches)))
