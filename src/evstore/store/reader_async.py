"""The one log reader behind ``iter_all``, subscriptions and projections.

:class:`AsyncLogReader` reads the global log after a position through one filter, with one
rule for advancing past what the filter skipped, and knows how to wait for more (the
wake-up policy). :class:`AsyncLogFollower` is the background loop of subscriptions and
projections over it.

There is one delivery path, not two: a follower always reads the global log after its
position, and when it has read everything it waits for the backend to say the head may
have moved (an in-process wake-up, a notification, or a poll). The hand-over from
catch-up to live is therefore not a switch between mechanisms and cannot lose or repeat
an event: both phases are the same ordered read ``position > last``.

A store of ``P > 1`` log partitions is the same, once per partition: a reader reads the
partitions in ``parts`` (all of them, or one consumer's share), each from its own position,
and a follower's state is a vector of per-partition positions (a
:class:`~evstore._types.LogCursor`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Any, Self

from evstore import _aio, observability
from evstore._types import LogCursor
from evstore.errors import InvalidInput
from evstore.observability import active, system_name
from evstore.spi._model import EventRecord, LogFilter, LogPage
from evstore.spi.backend_async import AsyncBackend
from evstore.store.retention_async import AsyncRetentionView

log = logging.getLogger("evstore.subscription")


class AsyncLogReader:
    """Reads the global log through one filter; the only code that pages the log.

    The rule for advancing is written once, in :meth:`next_position`: after a page has been
    handled entirely, a reader continues from the page's ``scanned_to``, so the events the
    filter skipped are never read again.
    """

    def __init__(
        self,
        backend: AsyncBackend,
        where: LogFilter,
        poll_interval: float,
        *,
        count: int = 1,
        parts: tuple[int, ...] = (0,),
        retention: AsyncRetentionView | None = None,
    ) -> None:
        self.backend = backend
        self.where = where
        self.poll_interval = poll_interval
        self.count = count
        """The store's number of log partitions ``P``."""
        self.parts = parts
        """The log partitions this reader reads (``(0,)`` when ``P == 1``)."""
        self.retention = retention
        """The store's retention metadata: expired events are never returned."""

    async def read(self, after: int, limit: int, partition: int = 0) -> LogPage:
        """Up to ``limit`` wanted events of ``partition`` with position > ``after``.

        Expired events (retention) are left out, and the page is filled from further on
        in their place: a page shorter than ``limit`` still means the log was read to its
        head, and ``scanned_to`` passes the expired events left out.
        """
        retention = self.retention
        if retention is None:
            return await self._read(after, limit, partition)
        kept: list[EventRecord] = []
        while True:
            want = limit - len(kept)
            page = await self._read(after, want, partition)
            kept.extend(await retention.keep(page.events))
            following = self.next_position(after, page)
            if len(page.events) < want or len(kept) == limit or following == after:
                return LogPage(kept, following)
            after = following

    async def _read(self, after: int, limit: int, partition: int) -> LogPage:
        if self.count == 1:
            return await self.backend.read_all(after, limit, self.where)
        read = self.backend.read_partition  # type: ignore[attr-defined]
        page: LogPage = await read(partition, after, limit, self.where)
        return page

    @staticmethod
    def next_position(after: int, page: LogPage) -> int:
        """Where to continue once every event of ``page`` (read after ``after``) is handled."""
        return max(after, page.scanned_to)

    async def records(
        self, after: int, limit: int | None, page_size: int, partition: int = 0
    ) -> AsyncIterator[EventRecord]:
        """Every wanted event of ``partition`` after ``after`` (at most ``limit``), in pages."""
        remaining = limit
        while remaining is None or remaining > 0:
            size = page_size if remaining is None else min(remaining, page_size)
            page = await self._read_traced(after, size, partition)
            for record in page.events:
                yield record
            if remaining is not None:
                remaining -= len(page.events)
            following = self.next_position(after, page)
            if len(page.events) < size or following == after:
                return
            after = following

    async def _read_traced(self, after: int, limit: int, partition: int) -> LogPage:
        otel = active()
        if otel is None:
            return await self.read(after, limit, partition)
        with otel.operation("read_all", system_name(self.backend)) as op:
            page = await self.read(after, limit, partition)
            op.count = len(page.events)
            return page

    async def head(self) -> int:
        """The newest position readers can see (with ``P > 1``: the sum over partitions)."""
        return await self.backend.head_position()

    async def heads(self) -> list[int]:
        """The newest visible position of every partition."""
        if self.count == 1:
            return [await self.backend.head_position()]
        heads: list[int] = await self.backend.partition_heads()  # type: ignore[attr-defined]
        return heads

    async def wait(self, after: int) -> None:
        """Return once the head may be past ``after``, or after the poll interval."""
        await self.backend.wait_for_events(after, self.poll_interval)


class AsyncLogFollower:
    """Follows the global log in the background; subclasses say how a page is handled.

    Use it as a context manager to stop it on exit; the error that stopped it is raised
    from ``wait()``, ``stop()`` and the context exit.
    """

    def __init__(self, reader: AsyncLogReader, batch_size: int) -> None:
        self._reader = reader
        self._backend = reader.backend
        self._batch_size = batch_size
        self._cursor = [0] * reader.count  # per partition; [position] when P == 1
        self._heads = [0] * reader.count
        self._stopping = _aio.Event()
        self._caught_up = _aio.Event()
        self._progress = _aio.Event()
        self._runner: _aio.Runner | None = None
        self.error: BaseException | None = None
        """The exception that stopped the follower, if any."""

    @property
    def _position(self) -> int:
        return self._cursor[0]

    @_position.setter
    def _position(self, value: int) -> None:
        self._cursor[0] = value

    @property
    def _head(self) -> int:
        return self._heads[0]

    @_head.setter
    def _head(self, value: int) -> None:
        self._heads[0] = value

    @property
    def position(self) -> int:
        """The position up to which the log has been handled (or skipped by the filter).

        A store of several log partitions has a position per partition: use ``cursor``.
        """
        if self._reader.count > 1:
            raise InvalidInput(
                f"this store has {self._reader.count} log partitions, each with its own "
                "positions: read .cursor"
            )
        return self._cursor[0]

    @property
    def cursor(self) -> LogCursor:
        """Per partition, the position up to which the log has been handled."""
        return LogCursor(tuple(self._cursor))

    @property
    def lag(self) -> int:
        """How many positions this follower is behind the heads it last saw."""
        return sum(max(0, self._heads[j] - self._cursor[j]) for j in self._reader.parts)

    @property
    def running(self) -> bool:
        """Whether the background runner is delivering."""
        return self._runner is not None and not self._runner.done()

    async def _step(self) -> bool:
        """Handle one page after ``self._position``; return whether the log is exhausted."""
        raise NotImplementedError

    def _launch(self, name: str) -> None:
        self._stopping = _aio.Event()
        self._caught_up = _aio.Event()
        self.error = None
        self._runner = _aio.Runner(self._run, name=name)

    async def _run(self) -> None:
        try:
            while not self._stopping.is_set():
                began = time.monotonic()
                exhausted = await self._step()
                took = time.monotonic() - began
                if took > observability.STALL_SECONDS:
                    log.warning("%s: one batch took %.1fs (a slow handler or backend)", self, took)
                self._progressed()
                if exhausted:
                    self._caught_up.set()
                    await self._wait_for_more()
        except Exception as e:
            self.error = e
            log.error("%s stopped by an error: %r", self, e)
        finally:
            self._caught_up.set()
            self._progressed()

    def _progressed(self) -> None:
        # Wake whoever waits in wait_until(); later waiters wait on a fresh event.
        progress, self._progress = self._progress, _aio.Event()
        progress.set()

    async def _wait_for_more(self) -> None:
        if self._reader.count == 1:
            self._head = await self._reader.head()
            if self._head <= self._position:
                await self._reader.wait(self._position)
            return
        self._heads = await self._reader.heads()
        if all(self._heads[j] <= self._cursor[j] for j in self._reader.parts):
            # The backend's head_position() is the sum of the partition heads.
            await self._reader.wait(sum(self._heads))

    def _target(self, position: int | LogCursor) -> LogCursor:
        """``position`` as a cursor of this follower's store (``InvalidInput`` if it is not)."""
        count = self._reader.count
        if isinstance(position, LogCursor):
            if len(position) != count:
                raise InvalidInput(
                    f"a cursor of {len(position)} partitions does not fit this store of {count}"
                )
            return position
        if count > 1 or isinstance(position, bool) or not isinstance(position, int):
            raise InvalidInput(
                f"wait for a LogCursor (such as store.head()) in a store of {count} log "
                f"partitions, got {position!r}"
            )
        return LogCursor((position,))

    def _reached(self, target: LogCursor) -> bool:
        return all(self._cursor[j] >= target[j] for j in self._reader.parts)

    async def wait_caught_up(self, timeout: float | None = None) -> bool:
        """Wait until everything stored when it started has been handled; return whether
        it was (False: ``timeout`` seconds passed first).

        Leaving ``with store.subscribe(...)`` stops the subscription at once; call this (or
        :meth:`wait_until`) first when the stored events must be handled before that.
        """
        return await self._caught_up.wait(timeout)

    async def wait_until(self, position: int | LogCursor, timeout: float | None = None) -> bool:
        """Wait until the log up to ``position`` has been handled (or skipped by the
        filter); return whether it was: False when ``timeout`` seconds passed first or the
        follower was stopped before. The error that stopped it, if any, is raised.

        ``sub.wait_until(store.append(...).positions[-1])`` waits for one's own write;
        ``sub.wait_until(store.head())`` for everything stored so far (in a store of several
        log partitions ``position`` is a cursor; only this follower's partitions count).
        """
        target = self._target(position)
        deadline = None if timeout is None else time.monotonic() + timeout
        while not self._reached(target):
            progress = self._progress
            if self.error is not None:
                raise self.error
            if not self.running:
                return self._reached(target)
            if self._reached(target):
                break
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            await progress.wait(remaining)
        return True

    async def wait(self, timeout: float | None = None) -> None:
        """Wait for the runner to end; raise the error that stopped it, if any."""
        if self._runner is not None:
            await self._runner.join(timeout)
        if self.error is not None:
            raise self.error

    async def stop(self, timeout: float | None = 10.0) -> None:
        """Stop after the event being handled and wait for the runner to end.

        Raises the error that stopped it, if one did.
        """
        self._stopping.set()
        await self.wait(timeout)

    # async-only: begin
    def cancel(self) -> None:
        """Cancel the runner's task at once (the checkpoint keeps the last handled batch)."""
        self._stopping.set()
        if self._runner is not None:
            self._runner.cancel()

    def __await__(self) -> Any:
        return self.wait().__await__()

    # async-only: end

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()
