"""Run a blocking backend (SQLite, memory) under asyncio, on a small thread pool.

The async store needs an :class:`~evstore.spi.backend_async.AsyncBackend`; a backend whose
driver only blocks is wrapped here once instead of being written twice.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar, cast

from evstore._types import AppendResult, ExpectedVersion
from evstore.spi._model import (
    DeadLetter,
    EventRecord,
    LogFilter,
    LogPage,
    PendingAppend,
    PendingEvent,
    Placement,
    SnapshotRecord,
    StreamSummary,
    TagQuery,
)
from evstore.spi.backend import (
    Backend,
    CheckpointedAppends,
    TaggedLog,
    TransactionalBackend,
    TransactionalCheckpoints,
    TruncatableLog,
)
from evstore.spi.backend_async import (
    AsyncBackend,
    AsyncCheckpointedAppends,
    AsyncCheckpointStore,
    AsyncDeadLetterStore,
    AsyncEventLog,
    AsyncOperations,
    AsyncSnapshotStore,
    AsyncTransactionalCheckpoints,
    AsyncTruncatableLog,
)

T = TypeVar("T")


def threaded(backend: Backend, *, workers: int = 8) -> AsyncBackend:
    """The asyncio face of ``backend``, with the optional tiers it has."""
    truncates = isinstance(backend, TruncatableLog)
    cls: type[ThreadedBackend]
    if isinstance(backend, TransactionalCheckpoints):
        cls = ThreadedTransactionalTruncatableBackend if truncates else ThreadedTransactionalBackend
    else:
        cls = ThreadedTruncatableBackend if truncates else ThreadedBackend
    if isinstance(backend, CheckpointedAppends):
        cls = _with_checkpointed_appends(cls)
    return cls(backend, workers=workers)


class ThreadedBackend(
    AsyncEventLog, AsyncSnapshotStore, AsyncCheckpointStore, AsyncDeadLetterStore, AsyncOperations
):
    """An ``AsyncBackend`` that runs each call of a sync ``Backend`` in a worker thread."""

    def __init__(self, backend: Backend, *, workers: int = 8) -> None:
        self.sync = backend
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="evstore")
        # Live subscriptions block a thread while they wait for the next append; they get
        # threads of their own, so that many of them can never starve appends and reads.
        self._waiters = ThreadPoolExecutor(64, thread_name_prefix="evstore-wait")

    async def _run(self, fn: Callable[..., T], *args: Any, pool: Any = None) -> T:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool or self._pool, functools.partial(fn, *args))

    async def append(
        self,
        stream_id: str,
        events: Sequence[PendingEvent],
        expected: ExpectedVersion,
        placement: Placement,
    ) -> AppendResult:
        return await self._run(self.sync.append, stream_id, events, expected, placement)

    async def append_many(self, appends: Sequence[PendingAppend]) -> list[AppendResult]:
        return await self._run(self.sync.append_many, appends)

    @property
    def max_name_bytes(self) -> int | None:
        """The wrapped backend's limit of stream ids and event types (None: none stated)."""
        limit = getattr(self.sync, "max_name_bytes", None)
        return limit if isinstance(limit, int) else None

    @property
    def supports_tags(self) -> bool:
        """Whether the wrapped backend has the ``TaggedLog`` tier."""
        return bool(getattr(self.sync, "supports_tags", False))

    async def read_tagged(self, query: TagQuery, after: int, limit: int) -> LogPage:
        tagged = cast(TaggedLog, self.sync)
        return await self._run(tagged.read_tagged, query, after, limit)

    async def append_unless(
        self,
        stream_id: str,
        events: Sequence[PendingEvent],
        expected: ExpectedVersion,
        placement: Placement,
        query: TagQuery,
        after: int,
    ) -> AppendResult:
        tagged = cast(TaggedLog, self.sync)
        return await self._run(
            tagged.append_unless, stream_id, events, expected, placement, query, after
        )

    async def read_stream(
        self,
        stream_id: str,
        from_version: int,
        to_version: int | None,
        limit: int | None,
        backwards: bool,
    ) -> list[EventRecord]:
        return await self._run(
            self.sync.read_stream, stream_id, from_version, to_version, limit, backwards
        )

    async def read_all(self, after: int, limit: int, where: LogFilter) -> LogPage:
        return await self._run(self.sync.read_all, after, limit, where)

    @property
    def log_partitions(self) -> int:
        """The sync backend's number of log partitions (1 without the partitioned tier)."""
        return int(getattr(self.sync, "log_partitions", 1))

    async def read_partition(
        self, partition: int, after: int, limit: int, where: LogFilter
    ) -> LogPage:
        read = self.sync.read_partition  # type: ignore[attr-defined]
        return await self._run(read, partition, after, limit, where)

    async def partition_heads(self) -> list[int]:
        return await self._run(self.sync.partition_heads)  # type: ignore[attr-defined]

    async def stream_version(self, stream_id: str) -> int:
        return await self._run(self.sync.stream_version, stream_id)

    async def head_position(self) -> int:
        return await self._run(self.sync.head_position)

    async def get_snapshot(self, stream_id: str) -> SnapshotRecord | None:
        return await self._run(self.sync.get_snapshot, stream_id)

    async def save_snapshot(self, snapshot: SnapshotRecord) -> None:
        await self._run(self.sync.save_snapshot, snapshot)

    async def delete_stream(self, stream_id: str, hard: bool, expected: ExpectedVersion) -> None:
        await self._run(self.sync.delete_stream, stream_id, hard, expected)

    async def get_checkpoint(self, name: str) -> int | None:
        return await self._run(self.sync.get_checkpoint, name)

    async def set_checkpoint(self, name: str, position: int) -> None:
        await self._run(self.sync.set_checkpoint, name, position)

    async def set_checkpoints(self, positions: dict[str, int]) -> None:
        batch = getattr(self.sync, "set_checkpoints", None)
        if batch is None:
            for name, position in positions.items():
                await self._run(self.sync.set_checkpoint, name, position)
        else:
            await self._run(batch, positions)

    async def list_checkpoints(self) -> dict[str, int]:
        return await self._run(self.sync.list_checkpoints)

    async def compare_and_set_checkpoint(
        self, name: str, expected: int | None, position: int
    ) -> bool:
        return await self._run(self.sync.compare_and_set_checkpoint, name, expected, position)

    async def delete_checkpoint(self, name: str) -> bool:
        return await self._run(self.sync.delete_checkpoint, name)

    async def park(self, letter: DeadLetter) -> None:
        await self._run(self.sync.park, letter)

    async def dead_letters(self, name: str, after: int, limit: int) -> list[DeadLetter]:
        return await self._run(self.sync.dead_letters, name, after, limit)

    async def unpark(self, name: str, position: int) -> bool:
        return await self._run(self.sync.unpark, name, position)

    async def wait_for_events(self, after: int, timeout: float) -> None:
        await self._run(self.sync.wait_for_events, after, timeout, pool=self._waiters)

    async def list_streams(self, after: str | None, limit: int) -> list[StreamSummary]:
        return await self._run(self.sync.list_streams, after, limit)

    async def stats(self) -> dict[str, int]:
        return await self._run(self.sync.stats)

    async def close(self) -> None:
        await self._run(self.sync.close)
        self._pool.shutdown(wait=False)
        self._waiters.shutdown(wait=False)


class ThreadedTransactionalBackend(ThreadedBackend, AsyncTransactionalCheckpoints):
    """A threaded backend whose sync backend commits read models with checkpoints."""

    def __init__(self, backend: TransactionalBackend, *, workers: int = 8) -> None:
        super().__init__(backend, workers=workers)
        self.transactional = backend

    async def run_with_checkpoint(
        self, name: str, expected: int | None, position: int, work: Callable[[Any], Any]
    ) -> bool:
        return await self._run(
            self.transactional.run_with_checkpoint,
            name,
            expected,
            position,
            _in_thread(work),
        )


class _Truncation(ThreadedBackend, AsyncTruncatableLog):
    """``truncate_stream`` of a sync backend that has the tier, in a worker thread."""

    async def truncate_stream(self, stream_id: str, before: int) -> int:
        truncate = self.sync.truncate_stream  # type: ignore[attr-defined]
        removed: int = await self._run(truncate, stream_id, before)
        return removed


class ThreadedTruncatableBackend(_Truncation):
    """A threaded backend with the ``TruncatableLog`` tier."""


class ThreadedTransactionalTruncatableBackend(_Truncation, ThreadedTransactionalBackend):
    """A threaded backend with the transactional and the ``TruncatableLog`` tiers."""


class _CheckpointedAppends(ThreadedBackend, AsyncCheckpointedAppends):
    """``append_with_checkpoint`` of a sync backend that has the tier, in a worker thread."""

    async def append_with_checkpoint(
        self, name: str, expected: int | None, position: int, work: Callable[[Any], Any]
    ) -> list[AppendResult] | None:
        emit = self.sync.append_with_checkpoint  # type: ignore[attr-defined]
        results: list[AppendResult] | None = await self._run(
            emit, name, expected, position, _in_thread(work)
        )
        return results


@functools.cache
def _with_checkpointed_appends(cls: type[ThreadedBackend]) -> type[ThreadedBackend]:
    """``cls`` with the ``CheckpointedAppends`` tier added."""
    return type(f"{cls.__name__}WithAppends", (_CheckpointedAppends, cls), {})


def _in_thread(work: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``work`` for a worker thread that holds a transaction: an async ``work`` runs on the
    event loop (which is free: it only awaits this thread) and its result comes back."""
    loop = asyncio.get_running_loop()

    def run(tx: Any) -> Any:
        result = work(tx)
        if inspect.isawaitable(result):
            return asyncio.run_coroutine_threadsafe(_awaited(result), loop).result()
        return result

    return run


async def _awaited(awaitable: Any) -> Any:
    return await awaitable
