"""Catch-up-then-live subscriptions; ``evstore._sync.subscription`` is generated from this.

There is one delivery path, not two: the subscription always reads the global log from
its position, and when it has read everything it waits for the backend to say the head
may have moved (an in-process wake-up, a notification, or a poll). The hand-over from
catch-up to live is therefore not a switch between mechanisms, and cannot lose or repeat
an event: both phases are the same ordered read ``position > last``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from evstore import _aio
from evstore._codec import record_to_event
from evstore._spi import LogFilter
from evstore._types import RecordedEvent

if TYPE_CHECKING:
    from evstore._async.store import AsyncEventStore

log = logging.getLogger("evstore.subscription")


class AsyncSubscription:
    """A running subscription: ``stop()`` it, read its ``position`` and ``lag``.

    Use it as a context manager to stop it on exit; a handler error is raised from
    ``wait()``, ``stop()`` and the context exit.
    """

    def __init__(
        self,
        store: AsyncEventStore,
        handler: Callable[[RecordedEvent], Any],
        *,
        from_position: int | Literal["end"],
        name: str | None,
        where: LogFilter,
        batch_size: int,
        poll_interval: float,
    ) -> None:
        self._store = store
        self._handler = handler
        self._from = from_position
        self._name = name
        self._where = where
        self._batch_size = batch_size
        self._poll_interval = poll_interval
        self._position = 0
        self._head = 0
        self._stopping = _aio.Event()
        self._caught_up = _aio.Event()
        self._runner: _aio.Runner | None = None
        self.error: BaseException | None = None
        """The exception that stopped the subscription, if any."""

    @property
    def name(self) -> str | None:
        """The durable name, or None for an anonymous subscription."""
        return self._name

    @property
    def position(self) -> int:
        """The position of the last event handled (or skipped by the filter)."""
        return self._position

    @property
    def lag(self) -> int:
        """How many positions the subscription is behind the head it last saw."""
        return max(0, self._head - self._position)

    @property
    def running(self) -> bool:
        """Whether the subscription is still delivering."""
        return self._runner is not None and not self._runner.done()

    async def start(self) -> None:
        """Resolve the start position and begin delivering in the background."""
        backend = self._store.backend
        stored = await backend.get_checkpoint(self._name) if self._name else None
        if stored is not None:
            self._position = stored
        elif self._from == "end":
            self._position = await backend.head_position()
        else:
            self._position = self._from
        self._head = await backend.head_position()
        self._runner = _aio.Runner(self._run, name=f"evstore-subscription-{self._name or ''}")

    async def _run(self) -> None:
        backend = self._store.backend
        try:
            while not self._stopping.is_set():
                page = await backend.read_all(self._position, self._batch_size, self._where)
                start = self._position
                try:
                    for record in page.events:
                        if self._stopping.is_set():
                            break
                        await _aio.call(self._handler, record_to_event(record))
                        self._position = record.position
                    else:
                        self._position = max(self._position, page.scanned_to)
                finally:
                    if self._name and self._position > start:
                        await backend.set_checkpoint(self._name, self._position)
                self._head = max(self._head, page.scanned_to)
                if len(page.events) < self._batch_size:
                    self._caught_up.set()
                    self._head = await backend.head_position()
                    if self._head <= self._position:
                        await backend.wait_for_events(self._position, self._poll_interval)
        except Exception as e:
            self.error = e
            log.error("subscription %s stopped by an error: %r", self._name or "", e)
        finally:
            self._caught_up.set()

    async def wait_caught_up(self, timeout: float | None = None) -> bool:
        """Wait until the subscription has delivered everything stored when it started."""
        return await self._caught_up.wait(timeout)

    async def wait(self, timeout: float | None = None) -> None:
        """Wait for the subscription to end; raise the handler's error if it failed."""
        if self._runner is not None:
            await self._runner.join(timeout)
        if self.error is not None:
            raise self.error

    async def stop(self, timeout: float | None = 10.0) -> None:
        """Stop delivering (after the event being handled) and wait for the worker to end.

        Raises the error that stopped the subscription, if one did.
        """
        self._stopping.set()
        if self._runner is not None:
            await self._runner.join(timeout)
        if self.error is not None:
            raise self.error

    # async-only: begin
    def cancel(self) -> None:
        """Cancel the subscription's task at once (the checkpoint keeps the last batch)."""
        self._stopping.set()
        if self._runner is not None:
            self._runner.cancel()

    def __await__(self) -> Any:
        return self.wait().__await__()

    # async-only: end

    async def __aenter__(self) -> AsyncSubscription:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
