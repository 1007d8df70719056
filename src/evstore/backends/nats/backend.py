"""The sync face of the NATS backend: the asyncio backend run on an event loop of its own.

nats-py has only an asyncio client, so there is nothing to generate a sync twin *for*
(``tools/async_to_sync.py`` maps asyncio names to a blocking driver's names). Instead of a
second implementation, each sync call is handed to one private event-loop thread that runs
:class:`~evstore.backends.nats.backend_async.AsyncNatsBackend` - the one source - and the
calling thread waits for the result. Many threads may call at once: their requests are
multiplexed over the one connection.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, TypeVar

from evstore._types import AppendResult, ExpectedVersion
from evstore.backends.nats.backend_async import AsyncNatsBackend
from evstore.errors import BackendUnavailable
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
)
from evstore.spi.backend import (
    CheckpointStore,
    DeadLetterStore,
    EventLog,
    Operations,
    PartitionedLog,
    SnapshotStore,
    TruncatableLog,
)

T = TypeVar("T")


class NatsBackend(
    EventLog,
    SnapshotStore,
    CheckpointStore,
    DeadLetterStore,
    Operations,
    TruncatableLog,
    PartitionedLog,
):
    """A sync ``Backend`` over :class:`AsyncNatsBackend` on a private event-loop thread.

    It connects at once (:meth:`AsyncNatsBackend.open`), so that the store's number of
    partitions is known, and a count other than the recorded one refused, when it opens.
    """

    # A stream id becomes one subject token (3 characters a byte outside [A-Za-z0-9_-]):
    # 1,020 bytes (255 four-byte characters) is the length tested to fit a subject.
    max_name_bytes = 1_020

    def __init__(self, backend: AsyncNatsBackend) -> None:
        self.backend = backend
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="evstore-nats", daemon=True
        )
        self._thread.start()
        self._closed = False
        try:
            self._call(backend.open())
        except BaseException:
            self.close()
            raise

    @property
    def log_partitions(self) -> int:  # type: ignore[override]
        """The store's number of log partitions (one JetStream stream each)."""
        return self.backend.log_partitions

    @property
    def event_ids_unique_in(self) -> str:
        """See :attr:`AsyncNatsBackend.event_ids_unique_in`."""
        return self.backend.event_ids_unique_in

    def locate_with(self, placement_of: Callable[[str], Placement]) -> None:
        """See :meth:`AsyncNatsBackend.locate_with`."""
        self.backend.locate_with(placement_of)

    def leaders(self) -> list[str | None]:
        """See :meth:`AsyncNatsBackend.leaders`."""
        return self._call(self.backend.leaders())

    def read_partition(self, partition: int, after: int, limit: int, where: LogFilter) -> LogPage:
        return self._call(self.backend.read_partition(partition, after, limit, where))

    def partition_heads(self) -> list[int]:
        return self._call(self.backend.partition_heads())

    def _call(self, coroutine: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coroutine.close()
            raise BackendUnavailable("the store is closed")
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    def append(
        self,
        stream_id: str,
        events: Sequence[PendingEvent],
        expected: ExpectedVersion,
        placement: Placement,
    ) -> AppendResult:
        return self._call(self.backend.append(stream_id, events, expected, placement))

    def append_many(self, appends: Sequence[PendingAppend]) -> list[AppendResult]:
        return self._call(self.backend.append_many(appends))

    def read_stream(
        self,
        stream_id: str,
        from_version: int,
        to_version: int | None,
        limit: int | None,
        backwards: bool,
    ) -> list[EventRecord]:
        return self._call(
            self.backend.read_stream(stream_id, from_version, to_version, limit, backwards)
        )

    def read_all(self, after: int, limit: int, where: LogFilter) -> LogPage:
        return self._call(self.backend.read_all(after, limit, where))

    def stream_version(self, stream_id: str) -> int:
        return self._call(self.backend.stream_version(stream_id))

    def head_position(self) -> int:
        return self._call(self.backend.head_position())

    def get_snapshot(self, stream_id: str) -> SnapshotRecord | None:
        return self._call(self.backend.get_snapshot(stream_id))

    def save_snapshot(self, snapshot: SnapshotRecord) -> None:
        self._call(self.backend.save_snapshot(snapshot))

    def delete_stream(self, stream_id: str, hard: bool, expected: ExpectedVersion) -> None:
        self._call(self.backend.delete_stream(stream_id, hard, expected))

    def truncate_stream(self, stream_id: str, before: int) -> int:
        return self._call(self.backend.truncate_stream(stream_id, before))

    def get_checkpoint(self, name: str) -> int | None:
        return self._call(self.backend.get_checkpoint(name))

    def set_checkpoint(self, name: str, position: int) -> None:
        self._call(self.backend.set_checkpoint(name, position))

    def list_checkpoints(self) -> dict[str, int]:
        return self._call(self.backend.list_checkpoints())

    def compare_and_set_checkpoint(self, name: str, expected: int | None, position: int) -> bool:
        return self._call(self.backend.compare_and_set_checkpoint(name, expected, position))

    def delete_checkpoint(self, name: str) -> bool:
        return self._call(self.backend.delete_checkpoint(name))

    def park(self, letter: DeadLetter) -> None:
        self._call(self.backend.park(letter))

    def dead_letters(self, name: str, after: int, limit: int) -> list[DeadLetter]:
        return self._call(self.backend.dead_letters(name, after, limit))

    def unpark(self, name: str, position: int) -> bool:
        return self._call(self.backend.unpark(name, position))

    def wait_for_events(self, after: int, timeout: float) -> None:
        self._call(self.backend.wait_for_events(after, timeout))

    def list_streams(self, after: str | None, limit: int) -> list[StreamSummary]:
        return self._call(self.backend.list_streams(after, limit))

    def stats(self) -> dict[str, int]:
        return self._call(self.backend.stats())

    def close(self) -> None:
        if self._closed:
            return
        try:
            self._call(self.backend.close())
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            if not self._thread.is_alive():
                self._loop.close()
