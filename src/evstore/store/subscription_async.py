"""Catch-up-then-live subscriptions; ``evstore.store.subscription`` is generated from this.

The read loop is :class:`~evstore.store.reader_async.AsyncLogFollower`'s; a subscription
calls its handler for each event of a page and then stores the checkpoint (when named).

Without a handler a subscription is iterated (``for event in store.subscribe(...)``): the
loop is the handler. An event counts as handled when the loop asks for the next one, so the
checkpoint never passes an event the loop has not finished; leaving the loop stops the
subscription, and a named one later resumes with the event the loop was handling.
"""

from __future__ import annotations

import warnings
from collections.abc import AsyncIterator, Callable, Generator
from typing import Any, Literal, Self

from evstore import _aio
from evstore._types import LogCursor, RecordedEvent
from evstore.errors import InvalidInput
from evstore.observability import active, system_name, track_follower
from evstore.spi._model import LogPage
from evstore.store.reader_async import AsyncLogFollower, AsyncLogReader
from evstore.store.records import record_to_event
from evstore.store.shared_log_async import AsyncCheckpointGroup, AsyncSharedLog

_HANDOFF_POLL = 0.1  # how often a waiting hand-over checks whether it was stopped


class AsyncSubscription(AsyncLogFollower):
    """A running subscription: ``stop()`` it, read its ``position`` and ``lag``, wait for it
    with ``wait_caught_up()`` or ``wait_until(position)``; without a handler, iterate it.

    A handler error stops it at that event (the checkpoint stays before it) and is raised
    from ``wait()``, ``stop()`` and the context exit.
    """

    def __init__(
        self,
        reader: AsyncLogReader,
        handler: Callable[[RecordedEvent], Any] | None,
        *,
        from_position: int | LogCursor | Literal["end"],
        name: str | None,
        batch_size: int,
        shared: AsyncSharedLog | None = None,
        checkpoints: AsyncCheckpointGroup | None = None,
    ) -> None:
        super().__init__(reader, batch_size)
        self._shared = shared
        self._checkpoints = checkpoints
        # Served from the shared reader once caught up on its own; the mark to wait from.
        self._joined = False
        self._from_shared = False
        self._since = 0
        self._handler = handler
        self._from = from_position
        self._name = name
        self._started = False
        # The hand-over to an iterating loop (no handler): one event at a time.
        self._slot: RecordedEvent | None = None
        self._ready = _aio.Event()  # an event is in the slot
        self._taken = _aio.Event()  # the loop has finished with it

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped" if self._started else "not started"
        return (
            f"<{type(self).__name__} {self._name or '(anonymous)'} at position "
            f"{self.cursor if self._reader.count > 1 else self._position}, {state}>"
        )

    @property
    def name(self) -> str | None:
        """The durable name, or None for an anonymous subscription."""
        return self._name

    def _checkpoint(self, partition: int) -> str:
        """The stored name of this subscription's checkpoint of ``partition``: its name
        when the store has one partition, else ``name#partition`` (one per partition)."""
        assert self._name is not None
        return self._name if self._reader.count == 1 else f"{self._name}#{partition}"

    async def start(self) -> None:
        """Resolve the start position and begin delivering in the background (once)."""
        if self._started:
            return
        self._started = True
        reader = self._reader
        self._heads = await reader.heads()
        start = self._from
        for j in reader.parts:
            stored = await self._backend.get_checkpoint(self._checkpoint(j)) if self._name else None
            if stored is not None:
                self._cursor[j] = stored
            elif start == "end":
                self._cursor[j] = self._heads[j]
            elif isinstance(start, LogCursor):
                self._cursor[j] = start[j]
            else:
                self._cursor[j] = start
        track_follower(self, "subscription", self._name)
        self._launch(f"evstore-subscription-{self._name or ''}")

    async def _step(self) -> bool:
        exhausted = True
        for j in self._reader.parts:
            if self._stopping.is_set():
                return False
            exhausted = await self._step_partition(j) and exhausted
        return exhausted

    async def _read(self, j: int) -> LogPage:
        """The next page of partition ``j``: from the store's shared reader when this
        subscription has caught up and is inside its window, else read on its own."""
        after = self._cursor[j]
        shared = self._shared
        self._from_shared = False
        if shared is not None and self._joined:
            served = await shared.read(after, self._batch_size, self._reader.where, self._since)
            if served is not None:
                page, self._since = served
                self._from_shared = True
                return page
        return await self._reader.read(after, self._batch_size, j)

    async def _store_checkpoint(self, name: str, position: int) -> None:
        if self._checkpoints is None:
            await self._backend.set_checkpoint(name, position)
        else:
            await self._checkpoints.store(name, position)

    async def _wait_for_more(self) -> None:
        shared = self._shared
        if shared is None:
            await super()._wait_for_more()
        elif self._from_shared:
            await shared.wait(self._position, self._since)
        else:  # caught up on its own: wait as before, then join the shared reader
            self._since = shared.mark()
            self._joined = True
            await super()._wait_for_more()

    async def _step_partition(self, j: int) -> bool:
        """Handle one page of partition ``j``; return whether the partition is exhausted."""
        page = await self._read(j)
        otel = active() if page.events else None
        if otel is None:
            return await self._handle_page(j, page)
        self._heads[j] = max(self._heads[j], page.scanned_to)
        with otel.batch(
            "subscription", self._name, system_name(self._backend), len(page.events), self.lag
        ):
            return await self._handle_page(j, page)

    async def _handle_page(self, j: int, page: LogPage) -> bool:
        start = self._cursor[j]
        try:
            for record in page.events:
                if self._stopping.is_set():
                    break
                if not await self._deliver(record_to_event(record)):
                    break
                self._cursor[j] = record.position
            else:
                self._cursor[j] = self._reader.next_position(self._cursor[j], page)
        finally:
            if self._name and self._cursor[j] > start:
                await self._store_checkpoint(self._checkpoint(j), self._cursor[j])
        self._heads[j] = max(self._heads[j], page.scanned_to)
        return len(page.events) < self._batch_size

    async def _deliver(self, event: RecordedEvent) -> bool:
        """Hand one event to the handler or the loop; whether it was handled."""
        if self._handler is not None:
            await _aio.call(self._handler, event)
            return True
        self._taken.clear()
        self._slot = event
        self._ready.set()
        while not self._taken.is_set():
            if self._stopping.is_set():
                return False
            await self._taken.wait(_HANDOFF_POLL)
        return True

    async def _next(self) -> RecordedEvent | None:
        """The next event for the loop; None once stopped."""
        self._taken.set()  # the loop asks for the next one: the previous one is handled
        while not self._ready.is_set():
            if not self.running:
                break
            await self._ready.wait(_HANDOFF_POLL)
        if self._ready.is_set():
            self._ready.clear()
            return self._slot
        if self.error is not None:
            raise self.error
        return None

    async def __aiter__(self) -> AsyncIterator[RecordedEvent]:
        """The events, catch-up then live, until stopped; leaving the loop stops it."""
        if self._handler is not None:
            raise InvalidInput(
                "this subscription delivers to its handler; call subscribe() without a "
                "handler to iterate over the events"
            )
        await self.start()
        try:
            while True:
                event = await self._next()
                if event is None:
                    return
                yield event
        finally:
            await self.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    # async-only: begin
    def __await__(self) -> Generator[Any, None, Self]:
        """``await store.subscribe(...)`` starts the subscription and returns it; awaiting
        a started one waits for it to end, like ``wait()``."""
        return self._awaited().__await__()

    async def _awaited(self) -> Self:
        if self._started:
            await self.wait()
        else:
            await self.start()
        return self

    def __del__(self) -> None:
        if not getattr(self, "_started", True):
            warnings.warn(
                "a subscription was never started: use `await store.subscribe(...)`, "
                "`async with store.subscribe(...)` or `async for event in "
                "store.subscribe(...)`",
                RuntimeWarning,
                stacklevel=1,
            )

    # async-only: end
