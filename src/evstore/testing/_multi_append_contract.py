"""Contract: atomic multi-stream appends (``append_many``) - all or nothing, on every backend."""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import pytest

import evstore
from evstore import ANY, NO_STREAM, AppendRequest
from evstore.testing._base import ContractBase, eventually, neighbour, new, unique
from evstore.testing._faces import Face

ROUNDS = 8


def _streams(store: evstore.EventStore, n: int) -> list[str]:
    """``n`` new streams of one log partition: the case every backend commits atomically
    (NATS keeps an atomic batch within one partition; see the test across partitions)."""
    first = unique()
    return [first] + [neighbour(store, first) for _ in range(n - 1)]


def _state(store: evstore.EventStore, streams: list[str]) -> tuple[list[int], int]:
    return [store.stream_version(s) for s in streams], sum(store.head().positions)


class MultiAppendContract(ContractBase):
    """``append_many``: each stream with its own expected version, all or nothing."""

    def test_append_many_writes_every_stream_and_returns_a_result_each(
        self, store: evstore.EventStore
    ) -> None:
        a = unique()
        b = neighbour(store, a)
        store.append(a, [new(n=0)])
        results = store.append_many(
            [AppendRequest(a, [new(n=1), new(n=2)], 1), AppendRequest(b, [new(n=3)], NO_STREAM)]
        )
        assert [r.version for r in results] == [3, 1]
        events_a, events_b = store.get_events(a), store.get_events(b)
        assert [e.data["n"] for e in events_a] == [0, 1, 2]
        assert [e.data["n"] for e in events_b] == [3]
        assert results[0].positions == tuple(e.position for e in events_a[1:])
        assert results[1].positions == (events_b[0].position,)
        assert results[0].partition == store.partition_of(a)
        assert results[1].partition == store.partition_of(b)

    def test_append_many_takes_plain_tuples(self, store: evstore.EventStore) -> None:
        a, b = _streams(store, 2)
        results = store.append_many([(a, [new()]), (b, [new(), new()], 0)])
        assert [r.version for r in results] == [1, 2]

    def test_append_many_conflict_writes_nothing_and_names_the_stream(
        self, store: evstore.EventStore
    ) -> None:
        a, b, c = _streams(store, 3)
        store.append(b, [new()])
        before = _state(store, [a, b, c])
        with pytest.raises(evstore.ConcurrencyError) as caught:
            store.append_many(
                [
                    AppendRequest(a, [new()], NO_STREAM),
                    AppendRequest(b, [new()], 5),
                    AppendRequest(c, [new()], ANY),
                ]
            )
        assert (caught.value.stream_id, caught.value.expected, caught.value.actual) == (b, 5, 1)
        assert _state(store, [a, b, c]) == before

    def test_append_many_repeated_returns_the_original_results(
        self, store: evstore.EventStore
    ) -> None:
        a, b = _streams(store, 2)
        requests = [AppendRequest(a, [new(), new()], NO_STREAM), AppendRequest(b, [new()], 0)]
        first = store.append_many(requests)
        before = _state(store, [a, b])
        assert store.append_many(requests) == first
        assert _state(store, [a, b]) == before

    def test_append_many_mixing_stored_and_new_events_is_a_duplicate(
        self, store: evstore.EventStore
    ) -> None:
        a, b, c = _streams(store, 3)
        stored = new()
        store.append(a, [stored])
        before = _state(store, [a, b])
        with pytest.raises(evstore.DuplicateEventId):
            store.append_many([AppendRequest(a, [stored], 0), AppendRequest(b, [new()])])
        with pytest.raises(evstore.DuplicateEventId):
            store.append_many([AppendRequest(b, [new()]), AppendRequest(c, [stored])])
        assert _state(store, [a, b]) == before

    def test_append_many_with_a_tombstoned_stream_writes_nothing(
        self, store: evstore.EventStore
    ) -> None:
        a, b = _streams(store, 2)
        store.append(a, [new()])
        store.delete_stream(a, hard=True)
        before = _state(store, [b])
        with pytest.raises(evstore.StreamDeleted):
            store.append_many([AppendRequest(b, [new()]), AppendRequest(a, [new()])])
        assert _state(store, [b]) == before

    @pytest.mark.parametrize(
        "bad",
        [
            "empty",
            "not-a-list",
            "not-a-request",
            "stream-twice",
            "event-id-twice",
            "no-events",
            "bad-expected",
            "bad-stream-id",
            "bad-data",
        ],
    )
    def test_append_many_refuses_bad_input_before_writing(
        self, store: evstore.EventStore, bad: str
    ) -> None:
        a, b = _streams(store, 2)
        event = new()
        good = AppendRequest(a, [new()])
        cases: dict[str, object] = {
            "empty": [],
            "not-a-list": good,
            "not-a-request": [good, "b"],
            "stream-twice": [good, AppendRequest(a, [new()])],
            "event-id-twice": [AppendRequest(a, [event]), AppendRequest(b, [event])],
            "no-events": [good, AppendRequest(b, [])],
            "bad-expected": [good, AppendRequest(b, [new()], -1)],
            "bad-stream-id": [good, AppendRequest("", [new()])],
            "bad-data": [good, AppendRequest(b, [evstore.NewEvent("T", {"x": object()})])],
        }
        before = _state(store, [a, b])
        with pytest.raises(evstore.InvalidInput):
            store.append_many(cases[bad])  # type: ignore[arg-type]
        assert _state(store, [a, b]) == before

    def test_append_many_across_log_partitions_is_all_or_nothing(
        self, store: evstore.EventStore
    ) -> None:
        a = unique()
        b = unique()
        while store.partitions > 1 and store.partition_of(b) == store.partition_of(a):
            b = unique()
        try:
            results = store.append_many([AppendRequest(a, [new()]), AppendRequest(b, [new()])])
        except evstore.InvalidInput:
            # A backend that cannot commit across partitions refuses before writing.
            assert store.partitions > 1
            assert [store.stream_version(a), store.stream_version(b)] == [0, 0]
        else:
            assert [r.version for r in results] == [1, 1]
            assert [r.partition for r in results] == [
                store.partition_of(a),
                store.partition_of(b),
            ]

    def test_racing_multi_appends_on_overlapping_streams_one_wins_none_partial(
        self, face: Face
    ) -> None:
        """Two multi-appends contend for a shared stream: exactly one wins each round, and
        a reader of the log or a subscriber never sees part of one."""
        writers = [face.connect() for _ in range(2)]
        reader = face.connect()
        category = f"m{uuid.uuid4().hex[:10]}"
        seen: list[evstore.RecordedEvent] = []
        partial: list[str] = []
        stop = threading.Event()

        def read_whole_calls() -> None:
            while not stop.is_set():
                counts = Counter(
                    e.data["call"]
                    for part in _partitions_of(reader, first)
                    for e in reader.read_all(partition=part, category=category)
                )
                partial.extend(call for call, n in counts.items() if n != 2)

        try:
            first = unique(category)
            sub = reader.subscribe(seen.append, category=category)
            with sub:
                watcher = threading.Thread(target=read_whole_calls)
                watcher.start()
                won: list[str] = []
                for _ in range(ROUNDS):
                    a = neighbour(reader, first, category)
                    b = neighbour(reader, first, category)
                    c = neighbour(reader, first, category)
                    barrier = threading.Barrier(2)
                    outcome: dict[int, object] = {}

                    def race(i: int, parts: list[str], barrier: threading.Barrier = barrier,
                             outcome: dict[int, object] = outcome) -> None:  # fmt: skip
                        call = uuid.uuid4().hex
                        requests = [AppendRequest(s, [new(call=call)], NO_STREAM) for s in parts]
                        barrier.wait()
                        try:
                            writers[i].append_many(requests)
                            outcome[i] = call
                        except evstore.ConcurrencyError as e:
                            outcome[i] = e

                    threads = [
                        threading.Thread(target=race, args=(0, [a, b])),
                        threading.Thread(target=race, args=(1, [b, c])),
                    ]
                    for t in threads:
                        t.start()
                    for t in threads:
                        t.join()
                    calls = [v for v in outcome.values() if isinstance(v, str)]
                    errors = [v for v in outcome.values() if not isinstance(v, str)]
                    assert len(calls) == 1 and len(errors) == 1, outcome
                    assert isinstance(errors[0], evstore.ConcurrencyError)
                    assert errors[0].stream_id == b
                    winner = 0 if isinstance(outcome[0], str) else 1
                    expected = [1, 1, 0] if winner == 0 else [0, 1, 1]
                    assert [reader.stream_version(s) for s in (a, b, c)] == expected
                    won.extend(calls)
                stop.set()
                watcher.join()
                eventually(lambda: len(seen) >= 2 * ROUNDS)
            assert partial == []
            by_call = Counter(e.data["call"] for e in seen)
            assert by_call == dict.fromkeys(won, 2)
        finally:
            stop.set()
            for s in (*writers, reader):
                s.close()


def _partitions_of(store: evstore.EventStore, stream_id: str) -> list[int | None]:
    """What to read to see ``stream_id``'s partition: itself, or the whole log when P = 1."""
    return [store.partition_of(stream_id)] if store.partitions > 1 else [None]
