"""Contract: the asyncio face gives the same results as the sync one."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

import evstore
from evstore import NO_STREAM, Snapshot
from evstore.testing._base import ContractBase, batch, new, per_partition, unique
from evstore.testing._faces import Face, SyncOverAsync
from evstore.testing._factory import StoreFactory

T = TypeVar("T")


def _run(factory: StoreFactory, body: Callable[[evstore.AsyncEventStore], Awaitable[T]]) -> T:
    async def main() -> T:
        async with factory.connect_async() as store:
            return await asyncio.wait_for(body(store), 60)

    return asyncio.run(main())


async def _until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    async def poll() -> None:
        while not condition():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout)


class AsyncContract(ContractBase):
    """The async store on the same database as the sync one."""

    def test_each_face_drives_its_own_store(self, face: Face, store: evstore.EventStore) -> None:
        if face.name == "async":  # every call below reaches the asyncio source
            assert isinstance(store, SyncOverAsync)
            assert isinstance(store.target, evstore.AsyncEventStore)
            assert inspect.iscoroutinefunction(type(store.target.backend).append)
        else:
            assert isinstance(store, evstore.EventStore)
            assert not inspect.iscoroutinefunction(type(store.backend).append)

    def test_async_append_read_and_concurrency(self, store_factory: StoreFactory) -> None:
        sid = unique()

        async def body(store: evstore.AsyncEventStore) -> None:
            events = batch(3)
            result = await store.append(sid, events, expected_version=NO_STREAM)
            assert result.version == 3
            with pytest.raises(evstore.ConcurrencyError):
                await store.append(sid, batch(1), expected_version=2)
            assert await store.append(sid, events, expected_version=NO_STREAM) == result
            assert await store.stream_version(sid) == 3
            assert [e.version for e in await store.get_events(sid, 2)] == [2, 3]
            assert [e.version async for e in store.iter_events(sid, backwards=True)] == [3, 2, 1]
            assert len(await store.read_all(types=["Tested"])) == 3
            assert [e.position async for e in store.iter_all(limit=2)] == list(result.positions[:2])
            await store.save_snapshot(Snapshot(sid, 2, {"n": 2}))
            snap = await store.get_snapshot(sid)
            assert snap is not None and snap.data == {"n": 2}
            with pytest.raises(evstore.InvalidInput):
                await store.append("", batch(1))
            await store.delete_stream(sid)
            assert await store.get_events(sid) == []

        _run(store_factory, body)
        with store_factory.connect() as sync:
            assert sync.stream_version(sid) == 0
            assert len(sync.read_all()) == 3

    def test_async_appends_in_parallel_keep_versions_dense(
        self, store_factory: StoreFactory
    ) -> None:
        sid = unique()

        async def writer(store: evstore.AsyncEventStore, n: int) -> None:
            done = 0
            while done < n:
                version = await store.stream_version(sid)
                try:
                    await store.append(sid, [new()], expected_version=version)
                except evstore.ConcurrencyError:
                    continue
                done += 1

        async def body(store: evstore.AsyncEventStore) -> list[int]:
            await asyncio.gather(*(writer(store, 10) for _ in range(4)))
            return [e.version for e in await store.get_events(sid)]

        assert _run(store_factory, body) == list(range(1, 41))

    def test_async_subscription_catch_up_live_and_async_handler(
        self, store_factory: StoreFactory
    ) -> None:
        async def body(store: evstore.AsyncEventStore) -> None:
            await store.append(unique(), batch(5))
            seen: list[evstore.RecordedEvent] = []

            async def handler(event: evstore.RecordedEvent) -> None:
                await asyncio.sleep(0)
                seen.append(event)

            async with await store.subscribe(handler, name="async-sub", batch_size=2) as sub:
                await _until(lambda: len(seen) == 5)
                last = await store.append(unique(), batch(3))
                await _until(lambda: len(seen) == 8)
                assert sub.cursor[last.partition] == last.last_position == seen[-1].position
                assert sub.cursor == await store.head()
            assert per_partition(seen) == per_partition(await store.read_all())
            assert not sub.running

        _run(store_factory, body)

    def test_async_subscription_error_is_raised_when_awaited(
        self, store_factory: StoreFactory
    ) -> None:
        async def body(store: evstore.AsyncEventStore) -> None:
            await store.append(unique(), batch(3))

            def handler(event: evstore.RecordedEvent) -> None:
                if event.data["i"] == 1:
                    raise KeyError("boom")

            sub = await store.subscribe(handler)
            with pytest.raises(KeyError):
                await sub
            first = (await store.read_all())[0]
            assert sub.cursor[first.partition] == first.position

        _run(store_factory, body)

    def test_async_subscription_can_be_cancelled(self, store_factory: StoreFactory) -> None:
        async def body(store: evstore.AsyncEventStore) -> None:
            sub = await store.subscribe(lambda e: None, from_position="end")
            await sub.wait_caught_up(10)
            sub.cancel()
            await sub.wait(10)
            assert not sub.running

        _run(store_factory, body)
