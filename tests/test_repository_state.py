"""The repository's cache and snapshots give the state a full replay gives, deletes included.

Runs on every backend (``store_factory``): a soft delete hides a cached aggregate as it
hides the stream, and a state read back from a snapshot or the cache equals the replayed
one for every type the codec round-trips (a property over generated values).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, timedelta, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evstore
from evstore import Aggregate, EventRegistry, applies
from evstore.testing import StoreFactory

REGISTRY = EventRegistry()


@REGISTRY.register
@dataclass(frozen=True)
class ValueSet:
    value: Any


@REGISTRY.register
@dataclass(frozen=True)
class Tagged:
    tag: str


@dataclass
class Holder(Aggregate):
    value: Any = None
    tags: tuple[str, ...] = ()

    @applies(ValueSet)
    def _set(self, event: ValueSet) -> None:
        self.value = event.value

    @applies(Tagged)
    def _tagged(self, event: Tagged) -> None:
        self.tags = self.tags + (event.tag,)  # noqa: RUF005 - raises if tags came back a list


@pytest.fixture
def store(store_factory: StoreFactory) -> Any:
    s = store_factory.connect()
    yield s
    s.close()


def unique() -> str:
    return f"holder-{uuid.uuid4().hex[:12]}"


def test_a_cached_aggregate_is_gone_after_a_soft_delete(store: evstore.EventStore) -> None:
    repo = evstore.Repository(store, Holder, registry=REGISTRY, snapshot_every=2)
    hid = unique()
    holder = Holder.create(hid)
    holder.trigger(Tagged("a"))
    holder.trigger(Tagged("b"))
    holder.trigger(Tagged("c"))
    repo.save(holder)  # cached at 3, snapshot at 2 (also cached)
    assert repo.get(hid) is not None
    store.delete_stream(hid)  # not through the repository
    fresh = evstore.Repository(store, Holder, registry=REGISTRY)
    assert fresh.get(hid) is None and store.get_events(hid) == []
    assert repo.get(hid) is None  # the cached one agrees
    with pytest.raises(evstore.StreamNotFound):
        repo.load(hid)
    # Re-created: only the visible events count, in the cache as in a fresh repository.
    store.append(hid, [REGISTRY.encode(Tagged("d"))])
    again = repo.load(hid)
    assert again.tags == ("d",) and again.version == 4
    assert (fresh.load(hid).tags, fresh.load(hid).version) == (("d",), 4)
    again.trigger(Tagged("e"))
    repo.save(again)
    store.delete_stream(hid)
    store.append(hid, [REGISTRY.encode(Tagged("f"))])
    assert repo.load(hid).tags == ("f",)


def test_tuple_state_survives_snapshot_and_cache(store: evstore.EventStore) -> None:
    hid = unique()
    repo = evstore.Repository(store, Holder, registry=REGISTRY, snapshot_every=1)
    holder = Holder.create(hid)
    holder.trigger(Tagged("a"))
    repo.save(holder)
    from_cache = repo.load(hid)
    from_snapshot = evstore.Repository(store, Holder, registry=REGISTRY).load(hid)
    for loaded in (from_cache, from_snapshot):
        assert loaded.tags == ("a",)
        loaded.trigger(Tagged("b"))  # self.tags + (t,) works on every path
        assert loaded.tags == ("a", "b")


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (a tuple is not a list, 1 not 1.0)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if hasattr(a, "tzinfo"):
        return bool(a == b) and a.utcoffset() == b.utcoffset()
    return bool(a == b)


ZONES = st.sampled_from([None, UTC, timezone(timedelta(hours=5, minutes=30))])
TEXT = st.text(st.characters(blacklist_categories=["Cs"]), max_size=8)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
    | st.binary(max_size=8)
    | st.uuids()
    | st.decimals(allow_nan=False, allow_infinity=False)
    | st.datetimes(timezones=ZONES)
    | st.dates()
    | st.times(timezones=ZONES)
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.lists(inner, max_size=3).map(tuple)
        | st.dictionaries(TEXT.filter(lambda k: not k.startswith("__evstore__")), inner, max_size=3)
    ),
    max_leaves=8,
)


def test_state_from_snapshot_cache_and_replay_is_equal_for_every_codec_type(
    store: evstore.EventStore,
) -> None:
    cached = evstore.Repository(store, Holder, registry=REGISTRY, snapshot_every=1)
    checked = []

    @settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
    @given(value=VALUES)
    def prop(value: Any) -> None:
        hid = unique()
        holder = Holder.create(hid)
        holder.trigger(ValueSet(value))
        holder.trigger(Tagged("t"))
        cached.save(holder)  # snapshot at 2, state cached
        store_snapshot = store.get_snapshot(hid)
        assert store_snapshot is not None
        from_replay = Holder.create(hid)  # a full replay, no snapshot
        for event in store.get_events(hid):
            from_replay.apply(REGISTRY.decode(event))
        from_cache = cached.load(hid)
        from_snapshot = evstore.Repository(store, Holder, registry=REGISTRY, cache=False).load(hid)
        for loaded in (from_cache, from_snapshot, from_replay):
            assert same(loaded.value, value), (loaded.value, value)
            assert same(loaded.tags, ("t",))
        checked.append(value)

    prop()
    assert len(checked) >= 30
