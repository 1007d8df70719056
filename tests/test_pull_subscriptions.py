"""Subscriptions iterated instead of given a handler (``for event in store.subscribe()``),
the ways to start an asyncio one, and waiting for a position - on every backend."""

from __future__ import annotations

import asyncio
import threading
import warnings

import pytest

import evstore
from evstore.testing import StoreFactory
from evstore.testing._base import batch, unique


def test_iterating_catches_up_then_goes_live_in_position_order(
    store_factory: StoreFactory,
) -> None:
    with store_factory.connect() as store:
        stored = store.append(unique("pull"), batch(5))
        writer_done = threading.Event()

        def write_later() -> None:
            store.append(unique("pull"), batch(3))
            writer_done.set()

        seen: list[int] = []
        for event in store.subscribe(batch_size=2):
            seen.append(event.position)
            if len(seen) == 5:  # caught up: the rest arrives live
                threading.Thread(target=write_later).start()
            if len(seen) == 8:
                break
        assert writer_done.wait(10)
        head = store.head_position()
        assert seen == [e.position for e in store.read_all()][:8]
        assert seen[:5] == list(stored.positions) and seen[-1] == head


def test_a_named_loop_resumes_with_the_event_it_was_handling(
    store_factory: StoreFactory,
) -> None:
    with store_factory.connect() as store:
        positions = store.append(unique("pull"), batch(6)).positions
        handled: list[int] = []
        with store.subscribe(name="puller", batch_size=2) as sub:
            for event in sub:
                if event.position == positions[3]:
                    break  # the loop leaves while handling the 4th event
                handled.append(event.position)
        assert handled == list(positions[:3])
        assert not sub.running
        again = []
        for event in store.subscribe(name="puller"):
            again.append(event.position)
            if event.position == positions[-1]:
                break
        assert again == list(positions[3:])  # at least once: the 4th again, no gap


def test_filters_are_those_of_the_callback_form(store_factory: StoreFactory) -> None:
    with store_factory.connect() as store:
        stream = unique("pull")
        store.append(stream, [evstore.NewEvent(t, {}) for t in ("A", "B", "A", "C", "A")])
        by_callback: list[int] = []
        with store.subscribe(by_callback.append, types=["A"]) as sub:
            assert sub.wait_until(store.head_position(), timeout=10)
        pulled = []
        for event in store.subscribe(types=["A"]):
            pulled.append(event)
            if len(pulled) == 3:
                break
        assert [e.position for e in pulled] == [e.position for e in by_callback]
        assert {e.type for e in pulled} == {"A"}


def test_a_callback_subscription_cannot_be_iterated(store_factory: StoreFactory) -> None:
    with (
        store_factory.connect() as store,
        store.subscribe(lambda e: None) as sub,
        pytest.raises(evstore.InvalidInput, match="without a handler"),
    ):
        next(iter(sub))


def test_wait_until_a_position_and_wait_caught_up(store_factory: StoreFactory) -> None:
    with store_factory.connect() as store:
        store.append(unique("w"), batch(3))
        got: list[evstore.RecordedEvent] = []
        with store.subscribe(got.append) as sub:
            assert sub.wait_caught_up(timeout=10)
            assert len(got) == 3
            result = store.append(unique("w"), batch(2))
            assert sub.wait_until(result.positions[-1], timeout=10)
            assert [e.position for e in got][-2:] == list(result.positions)
        assert not sub.wait_until(result.positions[-1] + 1, timeout=10)  # stopped: False


def test_asyncio_subscriptions_start_with_await_async_with_or_async_for(
    store_factory: StoreFactory,
) -> None:
    async def main() -> None:
        async with store_factory.connect_async() as store:
            result = await store.append(unique("a"), batch(3))
            last = result.positions[-1]
            got: list[int] = []
            async with store.subscribe(lambda e: got.append(e.position)) as sub:
                assert await sub.wait_until(last, timeout=10)
            sub2 = await store.subscribe(lambda e: got.append(e.position))
            assert await sub2.wait_until(last, timeout=10)
            await sub2.stop()
            assert got == list(result.positions) * 2
            pulled = []
            # `async with` stops it when the loop is left (asyncio finalizes a left async
            # generator only later).
            async with store.subscribe(name="async-puller") as puller:
                async for event in puller:
                    pulled.append(event.position)
                    if event.position == last:
                        break
            assert pulled == list(result.positions)
            async with store.subscribe(name="async-puller", from_position=0) as puller:
                async for event in puller:
                    assert event.position == last  # the checkpoint stayed before the last
                    break
            async for event in store.subscribe(from_position=0):  # no await needed
                assert event.position == result.positions[0]
                break

    asyncio.run(main())


def test_a_subscription_never_started_warns() -> None:
    async def main() -> None:
        async with evstore.connect_async("memory://") as store:
            store.subscribe(lambda e: None)  # the await forgotten

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncio.run(main())
        import gc

        gc.collect()
    assert any("never started" in str(w.message) for w in caught)
