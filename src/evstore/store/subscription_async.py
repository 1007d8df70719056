"""Catch-up-then-live subscriptions; ``evstore.store.subscription`` is generated from this.

The read loop is :class:`~evstore.store.reader_async.AsyncLogFollower`'s; a subscription
calls its handler for each event of a page and then stores the checkpoint (when named).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from evstore import _aio
from evstore._types import RecordedEvent
from evstore.store.reader_async import AsyncLogFollower, AsyncLogReader
from evstore.store.records import record_to_event


class AsyncSubscription(AsyncLogFollower):
    """A running subscription: ``stop()`` it, read its ``position`` and ``lag``.

    A handler error stops it at that event (the checkpoint stays before it) and is raised
    from ``wait()``, ``stop()`` and the context exit.
    """

    def __init__(
        self,
        reader: AsyncLogReader,
        handler: Callable[[RecordedEvent], Any],
        *,
        from_position: int | Literal["end"],
        name: str | None,
        batch_size: int,
    ) -> None:
        super().__init__(reader, batch_size)
        self._handler = handler
        self._from = from_position
        self._name = name

    def __repr__(self) -> str:
        return f"<subscription {self._name or '(anonymous)'} at {self._position}>"

    @property
    def name(self) -> str | None:
        """The durable name, or None for an anonymous subscription."""
        return self._name

    async def start(self) -> None:
        """Resolve the start position and begin delivering in the background."""
        backend = self._backend
        stored = await backend.get_checkpoint(self._name) if self._name else None
        if stored is not None:
            self._position = stored
        elif self._from == "end":
            self._position = await backend.head_position()
        else:
            self._position = self._from
        self._head = await backend.head_position()
        self._launch(f"evstore-subscription-{self._name or ''}")

    async def _step(self) -> bool:
        page = await self._reader.read(self._position, self._batch_size)
        start = self._position
        try:
            for record in page.events:
                if self._stopping.is_set():
                    break
                await _aio.call(self._handler, record_to_event(record))
                self._position = record.position
            else:
                self._position = self._reader.next_position(self._position, page)
        finally:
            if self._name and self._position > start:
                await self._backend.set_checkpoint(self._name, self._position)
        self._head = max(self._head, page.scanned_to)
        return len(page.events) < self._batch_size
