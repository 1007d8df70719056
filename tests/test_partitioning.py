"""Partitioning strategies, partitioned consumers, tenant stores, and the LRU cache."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

import evstore
from evstore import (
    HashPartitioning,
    LRUCache,
    NewEvent,
    TemporalPartitioning,
    TenantPartitioning,
)
from evstore.testing import StoreFactory


def test_tenant_partitioning_builds_seed_ids_and_keys_by_tenant() -> None:
    p = TenantPartitioning()
    assert p.stream_id("acme", "user", "12345") == "acme_user_12345"
    assert p.partition_key("acme_user_12345") == "acme"
    assert p.prefix("acme") == "acme_"
    with pytest.raises(evstore.InvalidInput):
        p.stream_id("ac_me", "user", 1)
    with pytest.raises(evstore.InvalidInput):
        p.partition_key("nounderscore")


def test_temporal_partitioning_uses_the_creation_month_in_utc() -> None:
    p = TemporalPartitioning()
    created = datetime(2025, 1, 31, 23, 30, tzinfo=timezone(timedelta(hours=-2)))
    assert p.stream_id("order", 54321, created) == "order_2025_02_54321"
    assert p.stream_id("order", "54321", datetime(2025, 1, 5, tzinfo=UTC)) == (
        "order_2025_01_54321"
    )
    assert p.partition_key("order_2025_01_54321") == "order_2025_01"
    with pytest.raises(evstore.InvalidInput):
        p.stream_id("order", 1, datetime(2025, 1, 5))  # naive
    with pytest.raises(evstore.InvalidInput):
        p.partition_key("order_54321")


def test_hash_partitioning_gives_every_id_a_shard_in_range() -> None:
    p = HashPartitioning(shards=16)
    shards = Counter(p.shard(f"id-{i}") for i in range(1600))
    assert set(shards) == set(range(16))
    assert min(shards.values()) > 50  # spread, not piled into a few shards
    assert p.stream_id("user", 42) == "user_42"
    assert p.partition_key("user_42") == f"user_{p.shard('42'):02d}"
    assert p.partition_hash(p.partition_key("user_42")) == p.shard("42")
    with pytest.raises(evstore.InvalidInput):
        HashPartitioning(shards=0)


def test_hash_shards_are_the_same_in_every_python_process() -> None:
    ids = [f"customer-{i}" for i in range(50)]
    expected = [HashPartitioning(16).shard(i) for i in ids]
    code = (
        "import sys, json; from evstore import HashPartitioning; "
        "print(json.dumps([HashPartitioning(16).shard(i) for i in sys.argv[1:]]))"
    )
    for seed in ("1", "2", "random"):
        out = subprocess.run(
            [sys.executable, "-c", code, *ids],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert [int(x) for x in out.strip()[1:-1].split(",")] == expected


def test_the_store_stores_each_streams_key_and_splits_the_log_by_it(
    store_factory: StoreFactory,
) -> None:
    p = HashPartitioning(16)
    with store_factory.connect(partitioning=p) as store:
        appended = [
            store.append(p.stream_id("user", i), [NewEvent("Seen", {"i": i})]).last_position
            for i in range(64)
        ]
        readable(store, appended[-1])
        slots = [store.read_all(partition=(slot, 4)) for slot in range(4)]
        assert sorted(e.position for s in slots for e in s) == appended
        for slot, events in enumerate(slots):
            for e in events:  # the shard number is the partition hash: 16 shards, 4 each
                assert p.shard(e.stream_id.split("_", 1)[1]) % 4 == slot
        with pytest.raises(evstore.InvalidInput):
            store.append("not-partitioned", [NewEvent("Seen", {})])  # no key derivable


def test_four_partitioned_consumers_see_every_event_exactly_once(
    store_factory: StoreFactory,
) -> None:
    streams = [f"order-{uuid.uuid4().hex[:8]}" for _ in range(40)]
    with store_factory.connect() as store:
        appended: list[int] = []
        for i, sid in enumerate(streams[:20]):
            result = store.append(sid, [NewEvent("Placed", {"i": i}), NewEvent("Paid", {"i": i})])
            appended.extend(result.positions)
        seen: list[list[evstore.RecordedEvent]] = [[] for _ in range(4)]
        lock = threading.Lock()

        def consumer(slot: int) -> Any:
            def handle(event: evstore.RecordedEvent) -> None:
                with lock:
                    seen[slot].append(event)

            return handle

        subs = [
            store.subscribe(consumer(i), partition=(i, 4), name=f"orders-{i}of4") for i in range(4)
        ]
        for i, sid in enumerate(streams[20:], start=20):  # more while they run
            appended.extend(store.append(sid, [NewEvent("Placed", {"i": i})]).positions)
        total = len(appended)
        end = time.monotonic() + 60  # generous: machines are shared
        while sum(len(s) for s in seen) < total and time.monotonic() < end:
            time.sleep(0.02)
        for sub in subs:
            sub.stop()
        positions = [e.position for s in seen for e in s]
        assert len(positions) == total == len(set(positions))
        assert sorted(positions) == sorted(appended)
        owner = {}
        for slot, events in enumerate(seen):
            assert [e.position for e in events] == sorted(e.position for e in events)
            for e in events:
                assert owner.setdefault(e.stream_id, slot) == slot  # a stream has one consumer


def test_a_tenant_store_only_sees_and_writes_its_tenants_streams(
    store_factory: StoreFactory,
) -> None:
    with (
        store_factory.connect() as admin,
        store_factory.connect(tenant="acme") as acme,
        store_factory.connect(tenant="globex") as globex,
    ):
        p = TenantPartitioning()
        mine, theirs = p.stream_id("acme", "user", 1), p.stream_id("globex", "user", 1)
        acme.append(mine, [NewEvent("Registered", {})])
        readable(admin, globex.append(theirs, [NewEvent("Registered", {})]).last_position)
        acme.save_snapshot(evstore.Snapshot(mine, 1, {"x": 1}))
        for attempt in (
            lambda: acme.append(theirs, [NewEvent("Hacked", {})]),
            lambda: acme.get_events(theirs),
            lambda: acme.stream_version(theirs),
            lambda: acme.get_snapshot(theirs),
            lambda: acme.delete_stream(theirs),
            lambda: acme.save_snapshot(evstore.Snapshot(theirs, 1, {})),
            lambda: acme.append("acme_", [NewEvent("X", {})]),
            lambda: acme.append("user-1", [NewEvent("X", {})]),
        ):
            with pytest.raises(evstore.InvalidInput, match="tenant"):
                attempt()
        assert [e.type for e in admin.get_events(theirs)] == ["Registered"]
        assert [e.stream_id for e in acme.read_all()] == [mine]
        assert [s.stream_id for s in acme.list_streams()] == [mine]
        assert [e.stream_id for e in globex.read_all()] == [theirs]
        got: list[str] = []
        with acme.subscribe(lambda e: got.append(e.stream_id), name="audit") as sub:
            sub.wait_caught_up(30)
        assert got == [mine]
        with pytest.raises(evstore.InvalidInput):
            store_factory.connect(tenant="acme", partitioning=HashPartitioning())


def readable(store: evstore.EventStore, position: int) -> None:
    """Wait until the global log can be read up to ``position``.

    Some backends hold readers back while other transactions are open (PostgreSQL).
    """
    end = time.monotonic() + 60
    while store.head_position() < position:
        if time.monotonic() > end:
            pytest.fail(f"position {position} not readable within 60s")
        time.sleep(0.01)


# -- cache ------------------------------------------------------------------------------------


def test_lru_cache_is_bounded_by_entries_and_bytes_and_counts() -> None:
    cache: LRUCache[str, str] = LRUCache(max_entries=3, max_bytes=100)
    for key in "abc":
        cache.put(key, key, 10)
    assert cache.get("a") == "a"  # a is now the most recent
    cache.put("d", "d", 10)  # evicts b, the least recently used
    assert "b" not in cache and len(cache) == 3
    cache.put("big", "x", 75)  # 30 + 75 > 100: evicts until it fits
    assert cache.stats.bytes <= 100
    cache.put("huge", "x", 101)  # larger than the whole cache: not kept
    assert "huge" not in cache
    assert cache.get("nope") is None
    stats = cache.stats
    assert (stats.hits, stats.misses) == (1, 1) and stats.evictions >= 2
    assert 0 < stats.hit_rate < 1
    cache.clear()
    assert len(cache) == 0 and cache.stats.bytes == 0
    with pytest.raises(evstore.InvalidInput):
        LRUCache(max_entries=0)


def test_an_async_tenant_store_is_limited_the_same_way(store_factory: StoreFactory) -> None:
    async def scenario() -> None:
        async with store_factory.connect_async(tenant="acme") as acme:
            result = await acme.append("acme_order_1", [NewEvent("Placed", {})])
            with pytest.raises(evstore.InvalidInput, match="tenant"):
                await acme.append("globex_order_1", [NewEvent("Placed", {})])
            assert acme.tenant == "acme"
            assert [e.stream_id for e in await acme.get_events("acme_order_1")] == ["acme_order_1"]
            assert result.version == 1

    asyncio.run(scenario())
