"""Contract: subscriptions - catch-up to live hand-over, checkpoints, errors, filters."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest

import evstore
from evstore.testing._base import (
    ContractBase,
    after,
    batch,
    eventually,
    new,
    per_partition,
    unique,
)


class _Collector:
    """A handler that records what it is given, optionally failing on one event."""

    def __init__(self, fail_on: int | None = None) -> None:
        self.events: list[evstore.RecordedEvent] = []
        self.fail_on = fail_on
        self.lock = threading.Lock()

    def __call__(self, event: evstore.RecordedEvent) -> None:
        if self.fail_on is not None and event.data.get("i") == self.fail_on:
            raise RuntimeError(f"handler refuses event {self.fail_on}")
        with self.lock:
            self.events.append(event)

    @property
    def positions(self) -> list[int]:
        with self.lock:
            return [e.position for e in self.events]


class SubscriptionContract(ContractBase):
    """Catch-up then live, in position order, with no gap and no duplicate."""

    def test_catch_up_then_live_with_appends_racing_the_hand_over(
        self, store: evstore.EventStore
    ) -> None:
        for _ in range(20):
            store.append(unique(), batch(5))
        stop = threading.Event()

        def writer() -> None:
            for _ in range(40):
                if stop.is_set():
                    return
                store.append(unique(), batch(3))

        collector = _Collector()
        racer = threading.Thread(target=writer)
        racer.start()
        with store.subscribe(collector, batch_size=7) as sub:
            racer.join()
            expected = [e.position for e in store.read_all()]
            assert len(expected) == 100 + 120
            eventually(lambda: len(collector.positions) >= len(expected))
            store.append(unique(), batch(2))  # live, after the hand-over
            eventually(lambda: len(collector.positions) >= len(expected) + 2)
            assert sub.cursor == store.head()
            if store.partitions == 1:
                assert sub.position == store.head_position()
            assert sub.running
        stop.set()
        # In order within each partition (the whole log when there is one), no gap, no repeat.
        assert per_partition(collector.events) == per_partition(store.read_all())
        assert len(collector.events) == len(store.read_all())
        assert not sub.running

    def test_from_end_delivers_only_new_events(self, store: evstore.EventStore) -> None:
        store.append(unique(), batch(3))
        collector = _Collector()
        with store.subscribe(collector, from_position="end") as sub:
            sub.wait_caught_up(10)
            result = store.append(unique(), batch(2))
            eventually(lambda: len(collector.positions) == 2)
        assert collector.positions == list(result.positions)

    def test_from_position_starts_strictly_after_it(self, store: evstore.EventStore) -> None:
        result = store.append(unique(), batch(5))
        positions = result.positions
        collector = _Collector()
        with store.subscribe(collector, from_position=after(store, result, 1)):
            eventually(lambda: len(collector.positions) == 3)
        assert collector.positions == list(positions[2:])

    def test_handler_error_stops_and_surfaces_without_skipping(
        self, store: evstore.EventStore
    ) -> None:
        result = store.append(unique(), batch(6))
        positions = result.positions
        failing = _Collector(fail_on=3)
        sub = store.subscribe(failing, name="fragile", batch_size=10)
        with pytest.raises(RuntimeError, match="refuses event 3"):
            sub.wait(10)
        assert not sub.running
        assert isinstance(sub.error, RuntimeError)
        assert failing.positions == list(positions[:3])
        assert sub.cursor[result.partition] == positions[2]
        with pytest.raises(RuntimeError):
            sub.stop()
        # The failed event was not skipped: a new subscription starts at it.
        fixed = _Collector()
        with store.subscribe(fixed, name="fragile"):
            eventually(lambda: len(fixed.positions) == 3)
        assert fixed.positions == list(positions[3:])

    def test_filters_apply_to_subscriptions(self, store: evstore.EventStore) -> None:
        store.append("user-1", [new("A"), new("B")])
        store.append("order-1", [new("A"), new("B")])
        store.append("user-2", [new("B")])
        by_type, by_category = _Collector(), _Collector()
        with store.subscribe(by_type, types=["B"]), store.subscribe(by_category, category="user"):
            eventually(lambda: len(by_type.positions) == 3 and len(by_category.positions) == 3)
            store.append("user-3", [new("A")])
            eventually(lambda: len(by_category.positions) == 4)
        assert [e.type for e in by_type.events] == ["B", "B", "B"]
        assert {e.stream_id for e in by_category.events} == {"user-1", "user-2", "user-3"}

    def test_a_subscription_by_type_prefix(self, store: evstore.EventStore) -> None:
        sid = unique()
        store.append(sid, [new("OrderPlaced"), new("Shipped"), new("Order.Paid")])
        got = _Collector()
        with store.subscribe(got, type_prefix="Order"):
            eventually(lambda: len(got.positions) == 2)
            store.append(sid, [new("Orders"), new("xOrder"), new("OrderClosed")])
            eventually(lambda: len(got.positions) == 4)
        assert [e.type for e in got.events] == [
            "OrderPlaced",
            "Order.Paid",
            "Orders",
            "OrderClosed",
        ]

    def test_a_subscription_to_one_stream(self, store: evstore.EventStore) -> None:
        mine, theirs = unique("acct"), unique("acct")
        store.append(mine, batch(2))
        store.append(theirs, batch(3))
        collector = _Collector()
        with store.subscribe(collector, stream_id=mine, name="one-stream") as sub:
            eventually(lambda: len(collector.positions) == 2)
            store.append(theirs, batch(1))
            last = store.append(mine, batch(1))
            assert sub.wait_until(after(store, last, -1), timeout=10)
        assert {e.stream_id for e in collector.events} == {mine}
        assert [e.version for e in collector.events] == [1, 2, 3]

    def test_partitioned_subscriptions_see_every_event_exactly_once(
        self, store: evstore.EventStore
    ) -> None:
        for i in range(30):
            store.append(f"acct-{i}", batch(2))
        collectors = [_Collector() for _ in range(4)]
        subs = [store.subscribe(c, partition=(i, 4)) for i, c in enumerate(collectors)]
        try:
            for i in range(30, 40):
                store.append(f"acct-{i}", batch(2))
            eventually(lambda: sum(len(c.positions) for c in collectors) >= 80)
        finally:
            for s in subs:
                s.stop()
        seen = sorted((e.partition, e.position) for c in collectors for e in c.events)
        assert seen == sorted((e.partition, e.position) for e in store.read_all())
        for c in collectors:
            for positions in per_partition(c.events).values():
                assert positions == sorted(positions)
            streams = {e.stream_id for e in c.events}
            assert all(
                s not in {e.stream_id for o in collectors if o is not c for e in o.events}
                for s in streams
            )

    def test_many_subscriptions_with_racing_writers_each_see_every_event_once_in_order(
        self, store: evstore.EventStore
    ) -> None:
        # Many subscriptions of one store share one reader of the log (stores of one log
        # partition); each keeps its own filter, batch size, position and checkpoint.
        for _ in range(5):
            store.append(unique("early"), batch(4))
        kinds: list[dict[str, Any]] = [
            {},
            {"name": "many"},
            {"batch_size": 1},
            {"batch_size": 7, "name": "many"},
            {"types": ["Other"]},
            {"category": "late"},
            {"from_position": "end"},
        ]
        specs = [kinds[k % len(kinds)] for k in range(14)]
        # Each named one under a name of its own.
        specs = [{**s, "name": unique("many")} if "name" in s else s for s in specs]
        collectors = [_Collector() for _ in specs]
        subs = [store.subscribe(c, **spec) for c, spec in zip(collectors, specs, strict=True)]

        def writer(k: int) -> None:
            for j in range(12):
                store.append(unique("late"), batch(2, "Other" if j % 3 == k else "Tested"))

        try:
            for sub in subs:
                assert sub.wait_caught_up(10)
            starts = [sub.cursor for sub in subs]
            writers = [threading.Thread(target=writer, args=(k,)) for k in range(3)]
            for w in writers:
                w.start()
            for w in writers:
                w.join()
            head = store.head()
            for sub in subs:
                assert sub.wait_until(head, timeout=20)
        finally:
            for sub in subs:
                sub.stop()
        log = store.read_all()
        assert len(log) == 20 + 3 * 12 * 2
        for spec, collector, start in zip(specs, collectors, starts, strict=True):
            wanted = [
                e
                for e in log
                if ("types" not in spec or e.type in spec["types"])
                and ("category" not in spec or e.stream_id.startswith("late-"))
                and (spec.get("from_position") != "end" or e.position > start[e.partition])
            ]
            assert per_partition(collector.events) == per_partition(wanted), spec
        # The named ones stored their checkpoints (written in groups): they resume at the head.
        for spec in specs:
            if "name" in spec:
                resumed = _Collector()
                with store.subscribe(resumed, name=spec["name"]) as again:
                    assert again.wait_caught_up(10)
                    assert again.cursor == store.head()
                assert resumed.events == []

    def test_a_slow_subscription_does_not_hold_the_others_back(
        self, store: evstore.EventStore
    ) -> None:
        gate = threading.Event()
        entered = threading.Event()
        slow_events: list[evstore.RecordedEvent] = []

        def slow(event: evstore.RecordedEvent) -> Any:
            entered.set()
            try:
                asyncio.get_running_loop()
            except RuntimeError:  # a thread of the sync store: block it
                gate.wait(30)
                slow_events.append(event)
                return None

            async def later() -> None:  # on the asyncio store's loop: do not block it
                while not gate.is_set():
                    await asyncio.sleep(0.01)
                slow_events.append(event)

            return later()

        fast = [_Collector() for _ in range(3)]
        subs = [store.subscribe(c, name=unique("fast")) for c in fast]
        slow_sub = store.subscribe(slow, name=unique("slow"), batch_size=50)
        try:
            for sub in subs:
                assert sub.wait_caught_up(10)
            store.append(unique(), batch(1))
            assert entered.wait(10)  # the slow one holds the first event
            # Enough events for the slow one to fall behind the shared reader's window.
            for _ in range(25):
                store.append(unique(), batch(100))
            eventually(lambda: all(len(c.positions) == 2501 for c in fast), timeout=30)
            assert len(slow_events) == 0
            gate.set()
            eventually(lambda: len(slow_events) == 2501, timeout=30)
            store.append(unique(), batch(3))  # live again, for every subscription
            eventually(
                lambda: len(slow_events) == 2504 and all(len(c.positions) == 2504 for c in fast)
            )
        finally:
            gate.set()
            for sub in [*subs, slow_sub]:
                sub.stop()
        log = per_partition(store.read_all())
        for events in [slow_events, *(c.events for c in fast)]:
            assert per_partition(events) == log

    def test_lag_and_position_report_progress(self, store: evstore.EventStore) -> None:
        result = store.append(unique(), batch(10))
        last = result.last_position
        entered, gate = threading.Event(), threading.Event()

        def slow(event: evstore.RecordedEvent) -> None:
            entered.set()
            gate.wait(10)

        sub = store.subscribe(slow, batch_size=1)
        try:
            assert entered.wait(10)
            assert sub.cursor == evstore.LogCursor.start(store.partitions)
            assert sub.lag > 0
            gate.set()
            eventually(lambda: sub.cursor[result.partition] == last)
            assert sub.lag == 0
            if store.partitions == 1:
                assert sub.position == last
            else:
                with pytest.raises(evstore.InvalidInput, match="cursor"):
                    sub.position  # noqa: B018
        finally:
            gate.set()
            sub.stop()

    def test_bad_subscribe_arguments_raise_invalid_input(self, store: evstore.EventStore) -> None:
        bad: tuple[dict[str, Any], ...] = (
            {"from_position": -1},
            {"from_position": "start"},
            {"batch_size": 0},
            {"name": ""},
            {"partition": (1, 1)},
            {"types": []},
        )
        for kwargs in bad:
            with pytest.raises(evstore.InvalidInput):
                store.subscribe(lambda e: None, **kwargs)
        with pytest.raises(evstore.InvalidInput):
            store.subscribe("not callable")  # type: ignore[arg-type]
