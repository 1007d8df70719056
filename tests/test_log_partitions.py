"""Log partitions: P fixed at creation, streams placed by the stable hash, cursors, and the
one meaning of ``partition=`` in reads and subscriptions (issue 13).

The contract suite runs whole on stores of 16 partitions (tests/backends/*_p16.py); these
tests cover what is specific to choosing and addressing partitions.
"""

from __future__ import annotations

import importlib
import uuid
from pathlib import Path

import pytest

import evstore
from evstore import HashPartitioning, LogCursor, NewEvent
from evstore.spi import stable_hash


def _events(n: int) -> list[NewEvent]:
    return [NewEvent("T", {"i": i}) for i in range(n)]


@pytest.fixture(params=["sqlite", "memory"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'p.db'}"
    return f"memory://parts-{uuid.uuid4().hex}"


def test_partitions_are_recorded_and_another_count_is_refused(url: str) -> None:
    with evstore.connect(url, partitions=8) as store:
        assert store.partitions == 8
        store.append("a-1", _events(1))
    with evstore.connect(url) as reopened:  # without the option: the recorded count
        assert reopened.partitions == 8
        assert reopened.get_events("a-1")[0].partition == reopened.partition_of("a-1")
    with evstore.connect(url, partitions=8) as same:
        assert same.partitions == 8
    for other in (1, 4, 16):
        with pytest.raises(evstore.InvalidInput, match="partitions=8"):
            evstore.connect(url, partitions=other)


def test_a_store_of_one_partition_refuses_more_later(url: str) -> None:
    with evstore.connect(url) as store:
        assert store.partitions == 1
        store.append("a-1", _events(1))
    with pytest.raises(evstore.InvalidInput, match="partitions=1"):
        evstore.connect(url, partitions=16)


@pytest.mark.parametrize("bad", [0, -1, 1025, "many", 2.5, True])
def test_bad_partition_counts_are_invalid_input(url: str, bad: object) -> None:
    with pytest.raises(evstore.InvalidInput, match="partitions"):
        evstore.connect(url, partitions=bad)


def test_url_query_gives_the_count(tmp_path: Path) -> None:
    with evstore.connect(f"sqlite:///{tmp_path / 'q.db'}?partitions=4") as store:
        assert store.partitions == 4
    with evstore.connect(f"memory://q-{uuid.uuid4().hex}?partitions=4") as store:
        assert store.partitions == 4


def test_stream_partition_is_the_stable_hash_of_its_key_mod_p(url: str) -> None:
    with evstore.connect(url, partitions=16) as store:
        for i in range(50):
            sid = f"acct-{i}"
            result = store.append(sid, _events(2))
            assert result.partition == stable_hash(sid) % 16 == store.partition_of(sid)
            assert {e.partition for e in store.get_events(sid)} == {result.partition}


def test_hash_partitioning_shard_is_the_log_partition(tmp_path: Path) -> None:
    strategy = HashPartitioning(shards=16)
    url = f"sqlite:///{tmp_path / 'h.db'}"
    with evstore.connect(url, partitions=16, partitioning=strategy) as store:
        for i in range(20):
            sid = strategy.stream_id("order", str(i))
            shard = int(strategy.partition_key(sid).rsplit(strategy.separator, 1)[1])
            assert store.append(sid, _events(1)).partition == shard


def test_each_partition_is_gap_free_and_ordered(url: str) -> None:
    with evstore.connect(url, partitions=4) as store:
        for i in range(40):
            store.append(f"s-{i}", _events(1 + i % 3))
        total = 0
        for j in range(4):
            events = store.read_all(partition=j)
            assert [e.position for e in events] == list(range(1, len(events) + 1))
            assert {e.partition for e in events} == {j}
            assert store.head()[j] == len(events)
            total += len(events)
        assert total == len(store.read_all()) == store.head_position()


def test_partition_option_reads_one_partition_or_a_share(url: str) -> None:
    with evstore.connect(url, partitions=8) as store:
        for i in range(40):
            store.append(f"s-{i}", _events(1))
        one = store.read_all(partition=3)
        assert one == store.read_all(partition=(3, 8))
        share = store.read_all(partition=(1, 4))  # partitions 1 and 5
        assert {e.partition for e in share} <= {1, 5}
        assert sorted(e.stream_id for e in share) == sorted(
            e.stream_id for e in store.read_all(partition=1) + store.read_all(partition=5)
        )
        tail = store.read_all(2, partition=3)  # an int position within that one partition
        assert [e.position for e in tail] == [e.position for e in one][2:]
        with pytest.raises(evstore.InvalidInput, match="does not exist"):
            store.read_all(partition=8)
        with pytest.raises(evstore.InvalidInput, match="divisor"):
            store.read_all(partition=(0, 3))
        with pytest.raises(evstore.InvalidInput, match="LogCursor"):
            store.read_all(5)
        with pytest.raises(evstore.InvalidInput, match="cursor of 2"):
            store.read_all(LogCursor((0, 0)))


def test_cursors_resume_reads_exactly(url: str) -> None:
    with evstore.connect(url, partitions=4) as store:
        for i in range(30):
            store.append(f"s-{i}", _events(2))
        everything = store.read_all()
        cursor = LogCursor.start(4)
        seen = []
        while page := store.read_all(cursor, limit=7):
            seen += page
            for e in page:
                cursor = cursor.advanced(e)
            cursor = LogCursor.parse(str(cursor))  # cursors survive being stored as text
        assert seen == everything
        assert cursor == store.head()


def test_cursor_values() -> None:
    c = LogCursor((3, 0, 17))
    assert str(c) == "3,0,17" and LogCursor.parse("3,0,17") == c
    assert c.moved(1, 5) == LogCursor((3, 5, 17)) and c[2] == 17 and len(c) == 3
    assert c.covers(LogCursor((3, 0, 2))) and not c.covers(LogCursor((4, 0, 0)))
    for bad in ("", "a,b", "1,-2"):
        with pytest.raises(evstore.InvalidInput):
            LogCursor.parse(bad)
    for positions in ((), (1, -1), [1, 2]):
        with pytest.raises(evstore.InvalidInput):
            LogCursor(positions)  # type: ignore[arg-type]
    with pytest.raises(evstore.InvalidInput):
        c.moved(3, 1)


def test_one_partition_keeps_int_positions(url: str) -> None:
    with evstore.connect(url) as store:
        result = store.append("a-1", _events(3))
        assert result.partition == 0 and result.positions == (1, 2, 3)
        assert [e.partition for e in store.read_all()] == [0, 0, 0]
        assert store.read_all(1) == store.read_all(LogCursor((1,)))
        assert store.head() == LogCursor((3,)) and store.head_position() == 3
        assert store.read_all(partition=0) == store.read_all()
        with pytest.raises(evstore.InvalidInput, match="does not exist"):
            store.read_all(partition=1)


@pytest.mark.parametrize("backend", ["memory_p16", "sqlite_p16", "mongodb_p16"])
def test_append_many_spans_log_partitions_in_one_transaction(backend: str, tmp_path: Path) -> None:
    """memory, SQLite and MongoDB commit a multi-stream append across log partitions (one
    transaction covers them all); NATS refuses it (tests/test_nats.py) and PostgreSQL has
    one partition."""
    module = importlib.import_module(f"tests.backends.{backend}")
    with module.factory(tmp_path) as factory, factory.connect() as store:
        streams = [f"s-{i}" for i in range(40)]
        a = streams[0]
        b = next(s for s in streams if store.partition_of(s) != store.partition_of(a))
        results = store.append_many([(a, _events(2), 0), (b, _events(1), 0)])
        assert [r.partition for r in results] == [store.partition_of(a), store.partition_of(b)]
        for stream, result in zip((a, b), results, strict=True):
            got = store.read_all(partition=result.partition)
            assert [(e.stream_id, e.position) for e in got] == [
                (stream, p) for p in result.positions
            ]
