"""Many live asyncio subscriptions on one store (over SQLite and memory they wait in threads)."""

from __future__ import annotations

import asyncio

from evstore.testing import StoreFactory
from evstore.testing._base import batch


def test_many_live_async_subscriptions_all_receive_while_appends_go_on(
    store_factory: StoreFactory,
) -> None:
    """More waiting subscriptions than worker threads must not starve the appends."""

    async def main() -> None:
        async with store_factory.connect_async() as store:
            seen: list[list[int]] = [[] for _ in range(20)]
            subs = [
                await store.subscribe(lambda e, box=box: box.append(e.position)) for box in seen
            ]
            positions: list[int] = []
            for _ in range(10):
                positions += (await store.append("live-1", batch(2))).positions

            async def everyone_has_all() -> None:
                while any(len(box) < len(positions) for box in seen):
                    await asyncio.sleep(0.01)

            await asyncio.wait_for(everyone_has_all(), 60)
            for sub in subs:
                await sub.stop()
            assert all(box == positions for box in seen)

    asyncio.run(main())
