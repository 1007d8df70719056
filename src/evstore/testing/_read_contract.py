"""Contract: reading streams and the global log, snapshots, deleting streams."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

import evstore
from evstore import NO_STREAM, Snapshot
from evstore.errors import ConcurrencyError, InvalidInput, StreamDeleted, StreamNotFound
from evstore.testing._base import ContractBase, batch, neighbour, new, per_partition, unique
from evstore.testing._faces import Face


class StreamReadContract(ContractBase):
    """get_events / iter_events: ranges, limits, backwards, paging."""

    @pytest.fixture
    def ten(self, store: evstore.EventStore) -> str:
        sid = unique()
        store.append(sid, batch(10))
        store.append(unique(), batch(3))  # another stream in between must not leak in
        return sid

    def test_from_version_is_inclusive(self, store: evstore.EventStore, ten: str) -> None:
        assert [e.version for e in store.get_events(ten, 4)] == [4, 5, 6, 7, 8, 9, 10]
        assert [e.version for e in store.get_events(ten, 0)] == list(range(1, 11))
        assert store.get_events(ten, 11) == []

    def test_to_version_and_limit(self, store: evstore.EventStore, ten: str) -> None:
        assert [e.version for e in store.get_events(ten, 3, to_version=5)] == [3, 4, 5]
        assert [e.version for e in store.get_events(ten, 2, limit=3)] == [2, 3, 4]
        assert [e.version for e in store.get_events(ten, 2, to_version=3, limit=5)] == [2, 3]

    def test_backwards_reads_newest_first(self, store: evstore.EventStore, ten: str) -> None:
        assert [e.version for e in store.get_events(ten, backwards=True)] == list(range(10, 0, -1))
        assert [e.version for e in store.get_events(ten, backwards=True, limit=1)] == [10]
        assert [
            e.version for e in store.get_events(ten, 3, to_version=6, backwards=True, limit=2)
        ] == [6, 5]

    def test_events_keep_data_in_order(self, store: evstore.EventStore, ten: str) -> None:
        assert [e.data["i"] for e in store.get_events(ten)] == list(range(10))

    def test_iter_events_pages_match_get_events(self, face: Face) -> None:
        with face.connect(page_size=3) as small:
            sid = unique()
            small.append(sid, batch(11))
            assert list(small.iter_events(sid)) == small.get_events(sid)
            assert [e.version for e in small.iter_events(sid, 2, limit=7)] == list(range(2, 9))
            assert [e.version for e in small.iter_events(sid, backwards=True, limit=5)] == [
                11,
                10,
                9,
                8,
                7,
            ]
            assert [e.version for e in small.iter_events(sid, 3, to_version=9, backwards=True)] == (
                list(range(9, 2, -1))
            )

    def test_iter_events_is_lazy(self, store: evstore.EventStore, ten: str) -> None:
        iterator: Iterator[evstore.RecordedEvent] = store.iter_events(ten)
        assert next(iterator).version == 1


class GlobalLogContract(ContractBase):
    """read_all / iter_all: strictly after a position, in order, with filters."""

    def test_read_all_is_strictly_after_position_in_order(self, store: evstore.EventStore) -> None:
        a, b = unique("user"), unique("order")
        results = [store.append(a if i % 2 else b, batch(2)) for i in range(5)]
        expected: dict[int, list[int]] = {}
        for r in results:
            expected.setdefault(r.partition, []).extend(r.positions)
        events = store.read_all()
        assert per_partition(events) == expected
        first = {(r.partition, p) for r in results[:2] for p in r.positions}
        cursor = evstore.LogCursor.start(store.partitions)
        for e in events:
            if (e.partition, e.position) in first:
                cursor = cursor.advanced(e)
        rest = [(r.partition, p) for r in results[2:] for p in r.positions]
        assert sorted((e.partition, e.position) for e in store.read_all(cursor)) == sorted(rest)
        assert len(store.read_all(cursor, limit=2)) == 2
        assert store.read_all(store.head()) == []
        head = evstore.LogCursor.start(store.partitions)
        for e in events:
            head = head.advanced(e)
        assert store.head() == head
        assert store.head_position() == sum(store.head().positions)
        if store.partitions == 1:
            positions = [p for r in results for p in r.positions]
            assert [e.position for e in events] == positions
            assert [e.position for e in store.read_all(positions[3])] == positions[4:]
            assert [e.position for e in store.read_all(positions[3], limit=2)] == positions[4:6]
            assert store.read_all(positions[-1]) == []
            assert store.head_position() == positions[-1]

    def test_read_all_filters_by_type(self, store: evstore.EventStore) -> None:
        sid = unique()
        store.append(sid, [new("A"), new("B"), new("C"), new("A")])
        assert [e.type for e in store.read_all(types=["A"])] == ["A", "A"]
        assert [e.type for e in store.read_all(types="B")] == ["B"]
        assert [e.type for e in store.read_all(types=["B", "C"])] == ["B", "C"]
        assert store.read_all(types=["Z"]) == []

    def test_read_all_filters_by_type_prefix(self, store: evstore.EventStore) -> None:
        sid = unique()
        names = ["OrderPlaced", "Ord", "Order.Paid", "Order%x", "Order_y", "xOrder", "Orders"]
        store.append(sid, [new(n) for n in names])
        assert [e.type for e in store.read_all(type_prefix="Order")] == [
            "OrderPlaced",
            "Order.Paid",
            "Order%x",
            "Order_y",
            "Orders",
        ]
        # prefixes are literal text: no LIKE wildcards, no regular expressions
        assert [e.type for e in store.read_all(type_prefix="Order.")] == ["Order.Paid"]
        assert [e.type for e in store.read_all(type_prefix="Order%")] == ["Order%x"]
        assert [e.type for e in store.read_all(type_prefix="Order_")] == ["Order_y"]
        assert [e.type for e in store.iter_all(type_prefix="Ord", types=["Ord", "xOrder"])] == [
            "Ord"
        ]
        assert store.read_all(type_prefix="Order", stream_id=unique()) == []
        for bad in ("", 5, ["Order"]):
            with pytest.raises(evstore.InvalidInput):
                store.read_all(type_prefix=bad)  # type: ignore[arg-type]

    def test_read_all_filters_by_category(self, store: evstore.EventStore) -> None:
        store.append("user-1", batch(2))
        store.append("order-1", batch(1))
        store.append("user-2", batch(1))
        store.append("user", batch(1))
        store.append("userx-1", batch(1))
        assert [e.stream_id for e in store.read_all(category="user")] == [
            "user-1",
            "user-1",
            "user-2",
            "user",
        ]
        assert [e.stream_id for e in store.read_all(category="order", types=["Tested"])] == [
            "order-1"
        ]

    def test_read_all_filters_by_stream(self, store: evstore.EventStore) -> None:
        one, other = unique("acct"), unique("acct")
        wanted = list(store.append(one, batch(2)).positions)
        store.append(other, batch(2))
        wanted += list(store.append(one, [new("A"), new("B")]).positions)
        assert [e.position for e in store.read_all(stream_id=one)] == wanted
        assert [e.type for e in store.read_all(stream_id=one, types=["B"])] == ["B"]
        assert [e.position for e in store.iter_all(wanted[0], stream_id=one)] == wanted[1:]
        assert store.read_all(stream_id=unique("none")) == []
        assert store.read_all(stream_id=one + "x") == []  # the id, not a prefix
        with pytest.raises(evstore.InvalidInput):
            store.read_all(stream_id="")

    def test_category_separator_is_configurable(self, face: Face) -> None:
        with face.connect(category_separator=":") as s:
            s.append("user:1", batch(1))
            s.append("user-2", batch(1))
            assert s.category_of("user:1") == "user"
            assert [e.stream_id for e in s.read_all(category="user")] == ["user:1"]

    def test_partitions_split_the_log_without_overlap(self, store: evstore.EventStore) -> None:
        for i in range(40):
            store.append(f"acct-{i}", batch(2))
        everything = sorted((e.partition, e.position) for e in store.read_all())
        seen: list[tuple[int, int]] = []
        for slot in range(4):
            part = store.read_all(partition=(slot, 4))
            streams = {e.stream_id for e in part}
            assert streams, "40 streams should land in every one of 4 slots"
            seen += [(e.partition, e.position) for e in part]
        assert sorted(seen) == everything

    def test_iter_all_pages_with_filters(self, face: Face) -> None:
        with face.connect(page_size=4) as small:
            for i in range(9):
                small.append(unique("cat" if i % 3 else "dog"), [new("A"), new("B")])
            assert list(small.iter_all()) == small.read_all()
            assert len(small.read_all()) == 18
            dogs = list(small.iter_all(category="dog", types=["B"]))
            assert len(dogs) == 3
            assert all(e.type == "B" and e.stream_id.startswith("dog-") for e in dogs)
            assert len(list(small.iter_all(limit=10))) == 10
            assert len(list(small.iter_all(types="A", limit=5))) == 5


class SnapshotContract(ContractBase):
    """save_snapshot / get_snapshot: the newest wins."""

    def test_snapshot_round_trip(self, store: evstore.EventStore) -> None:
        sid = unique()
        store.append(sid, batch(5))
        assert store.get_snapshot(sid) is None
        snap = Snapshot(sid, 3, {"total": 3}, schema_version=2)
        store.save_snapshot(snap)
        got = store.get_snapshot(sid)
        assert got is not None
        assert (got.stream_id, got.version, got.data, got.schema_version) == (
            sid,
            3,
            {"total": 3},
            2,
        )
        assert got.taken_at == snap.taken_at

    def test_older_snapshot_is_ignored_and_newer_replaces(self, store: evstore.EventStore) -> None:
        sid = unique()
        store.append(sid, batch(9))
        store.save_snapshot(Snapshot(sid, 5, {"v": 5}))
        store.save_snapshot(Snapshot(sid, 4, {"v": 4}))
        assert store.get_snapshot(sid).data == {"v": 5}  # type: ignore[union-attr]
        store.save_snapshot(Snapshot(sid, 5, {"v": "5b"}, schema_version=2))
        assert store.get_snapshot(sid).data == {"v": "5b"}  # type: ignore[union-attr]
        store.save_snapshot(Snapshot(sid, 9, {"v": 9}))
        assert store.get_snapshot(sid).version == 9  # type: ignore[union-attr]

    def test_snapshot_ahead_of_stream_is_invalid(self, store: evstore.EventStore) -> None:
        sid = unique()
        store.append(sid, batch(2))
        with pytest.raises(InvalidInput, match="ahead"):
            store.save_snapshot(Snapshot(sid, 3, {}))
        with pytest.raises(InvalidInput):
            Snapshot(sid, 0, {})
        assert store.get_snapshot(sid) is None


class DeleteContract(ContractBase):
    """Soft delete hides a stream and keeps numbering; hard delete tombstones it."""

    def test_soft_delete_reads_empty_and_version_continues(self, store: evstore.EventStore) -> None:
        sid = unique()
        store.append(sid, batch(3))
        store.save_snapshot(Snapshot(sid, 3, {}))
        store.delete_stream(sid)
        assert store.get_events(sid) == []
        assert store.stream_version(sid) == 0
        assert store.get_snapshot(sid) is None
        result = store.append(sid, batch(2), expected_version=NO_STREAM)
        assert result.version == 5
        assert [e.version for e in store.get_events(sid)] == [4, 5]
        assert store.stream_version(sid) == 5

    def test_soft_deleted_stream_accepts_expected_0(self, store: evstore.EventStore) -> None:
        sid = unique()
        store.append(sid, batch(2))
        store.delete_stream(sid)
        with pytest.raises(ConcurrencyError):
            store.append(sid, batch(1), expected_version=1)
        assert store.append(sid, batch(1), expected_version=0).version == 3

    def test_soft_delete_keeps_events_in_the_global_log(self, store: evstore.EventStore) -> None:
        sid = unique()
        store.append(sid, batch(2))
        store.delete_stream(sid)
        assert [e.stream_id for e in store.read_all()] == [sid, sid]

    def test_soft_delete_of_missing_stream_raises_not_found(
        self, store: evstore.EventStore
    ) -> None:
        with pytest.raises(StreamNotFound):
            store.delete_stream(unique())
        sid = unique()
        store.append(sid, batch(1))
        store.delete_stream(sid)
        with pytest.raises(StreamNotFound):
            store.delete_stream(sid)

    def test_delete_checks_expected_version(self, store: evstore.EventStore) -> None:
        sid = unique()
        store.append(sid, batch(2))
        with pytest.raises(ConcurrencyError):
            store.delete_stream(sid, expected_version=1)
        store.delete_stream(sid, expected_version=2)
        assert store.stream_version(sid) == 0

    def test_hard_delete_tombstones_the_stream(self, store: evstore.EventStore) -> None:
        sid, other = unique(), unique()
        store.append(sid, batch(3))
        store.append(other, batch(1))
        store.save_snapshot(Snapshot(sid, 2, {}))
        store.delete_stream(sid, hard=True)
        for call in (
            lambda: store.get_events(sid),
            lambda: store.stream_version(sid),
            lambda: store.append(sid, batch(1)),
            lambda: store.append(sid, batch(1), expected_version=NO_STREAM),
            lambda: store.get_snapshot(sid),
            lambda: store.delete_stream(sid),
            lambda: store.delete_stream(sid, hard=True),
        ):
            with pytest.raises(StreamDeleted):
                call()
        assert [e.stream_id for e in store.read_all()] == [other]
        assert store.get_events(other)[0].version == 1

    def test_positions_of_hard_deleted_events_are_not_reused(
        self, store: evstore.EventStore
    ) -> None:
        sid = unique()
        gone = store.append(sid, batch(2))
        store.delete_stream(sid, hard=True)
        fresh = store.append(neighbour(store, sid), batch(1))  # the same log partition
        assert fresh.partition == gone.partition
        assert fresh.first_position > gone.last_position
