"""One reader of a store's log shared by its subscriptions; ``evstore.store.shared_log`` is
generated from this.

Each subscription used to read the log on its own: with a hundred of them, every appended
event cost a hundred head queries, a hundred page reads and a hundred wake-ups. A store
keeps one :class:`AsyncSharedLog` instead. It reads each page of the log once (through the
store's own filter only: the tenant's streams) and keeps the newest events in a window;
every subscription whose position lies inside that window takes its page from there,
applying its own filter, and keeps its own position, checkpoint and handler. Waiting for new
events is shared too: one subscription waits on the backend and fetches for all, the others
queue behind it and find the events in the window.

Nothing waits for a slow subscription: the window moves on with the log, and a
subscription that fell behind it (a slow handler, a catch-up from far back) reads the log on
its own, as it always did, until its position is inside the window again; then it re-joins.
Both paths are the same ordered read ``position > last``, so switching between them cannot
lose or repeat an event.

Retention is applied once, when a page is fetched: a policy stored meanwhile hides events
from the shared reader's next page on (a subscription reading on its own sees it from its
next page). The window is replaced, never changed in place (a :class:`_View`), so readers on other
threads need no lock; only fetching takes one.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Callable
from typing import NamedTuple

from evstore import _aio
from evstore.spi._model import EventRecord, LogFilter, LogPage
from evstore.spi.backend_async import AsyncBackend, AsyncCheckpointBatches
from evstore.store.reader_async import AsyncLogReader

PAGE = 500  # events per shared fetch
WINDOW = 2000  # events kept for subscriptions a little behind the newest
CATCH_UP = 4  # pages the shared reader reads to reach a subscription ahead of it


class _View(NamedTuple):
    """The window: every event of the store's log in ``(start, end]``, in order."""

    start: int
    end: int
    records: list[EventRecord]
    positions: list[int]
    fetches: int  # the number of fetches begun before this view was made


_EMPTY = _View(-1, -1, [], [], 0)


class AsyncSharedLog:
    """The shared log reader of one store (P == 1): see the module's docstring."""

    def __init__(
        self,
        reader: AsyncLogReader,
        attributes: Callable[[str], tuple[str, int]],
        *,
        page: int = PAGE,
        window: int = WINDOW,
    ) -> None:
        self._reader = reader  # the store's own filter (its tenant) and retention
        self._base = reader.where
        self._attributes = attributes  # stream id -> (category, partition hash)
        self._page = page
        self._window = window
        self._view = _EMPTY
        self._fetches = 0
        self._lock = _aio.Lock()  # held while fetching
        self._cycle_lock = _aio.Lock()  # held briefly, never across a read or a wait
        self._cycle: _aio.Event | None = None  # set when the current wait's fetch is done
        self._poll_interval = reader.poll_interval

    def mark(self) -> int:
        """The number of fetches begun so far: a reader that passes it to :meth:`read`
        is served only from fetches begun after this call."""
        return self._fetches

    async def read(
        self, after: int, limit: int, where: LogFilter, since: int
    ) -> tuple[LogPage, int] | None:
        """Up to ``limit`` events after ``after`` that ``where`` wants, from the window, and
        the mark to wait from when the page was the last; None when ``after`` is behind the
        window (the caller reads on its own).

        A page that reaches the window's end comes from a fetch begun after ``since``, so
        "nothing more" is never older than the caller's own last look.
        """
        view = self._view
        if view.end < 0 or after > view.end:
            view = await self._reach(after)
        if after < view.start:
            return None
        page = self._slice(view, after, limit, where)
        if len(page.events) < limit and view.fetches <= since:
            view = await self._fetch_since(since)
            if after < view.start:
                return None
            page = self._slice(view, after, limit, where)
        return page, view.fetches

    async def wait(self, after: int, since: int) -> None:
        """Return once the window holds events after ``after``, or a fetch newer than
        ``since`` happened (or after the poll interval, having fetched once).

        One caller waits on the backend and fetches; the others wait for that fetch, and
        nobody holds a lock while waiting, so a reader that already has the newest events
        never keeps the others from seeing them.
        """
        async with self._cycle_lock:
            view = self._view
            if view.end != after or self._fetches > since:
                return  # new events, a newer look, or a window moved elsewhere
            done = self._cycle
            leader = done is None
            if done is None:
                done = self._cycle = _aio.Event()
        if not leader:
            await done.wait(self._poll_interval * 1.5)
            return
        try:
            await self._reader.wait(view.end)
            async with self._lock:
                await self._fetch()
        finally:
            async with self._cycle_lock:
                self._cycle = None
            done.set()

    def _slice(self, view: _View, after: int, limit: int, where: LogFilter) -> LogPage:
        first = bisect_right(view.positions, after)
        records = view.records
        if where == self._base:
            chosen = records[first : first + limit]
        else:
            chosen = []
            attributes = self._attributes
            for record in records[first:]:
                category, hashed = attributes(record.stream_id)
                if where.accepts(record.type, record.stream_id, category, hashed):
                    chosen.append(record)
                    if len(chosen) == limit:
                        break
        if len(chosen) == limit:
            return LogPage(chosen, chosen[-1].position)
        return LogPage(chosen, view.end)

    async def _reach(self, after: int) -> _View:
        """Move the window up to ``after`` (a reader ahead of it): read on when it is near,
        start afresh at ``after`` otherwise."""
        async with self._lock:
            view = self._view
            for _ in range(CATCH_UP):
                if view.end < 0 or view.end >= after:
                    break
                before = view.end
                view = await self._fetch()
                if view.end == before:
                    break
            if view.end < after:
                self._view = view = _View(after, after, [], [], view.fetches)
            return view

    async def _fetch_since(self, since: int) -> _View:
        async with self._lock:
            if self._fetches > since:
                return self._view
            return await self._fetch()

    async def _fetch(self) -> _View:
        """Read one page after the window's end into the window (the lock is held)."""
        self._fetches += 1
        fetches = self._fetches
        view = self._view
        page = await self._reader.read(view.end, self._page)
        if not page.events and page.scanned_to <= view.end:
            self._view = view = view._replace(fetches=fetches)
            return view
        records = view.records + page.events
        positions = view.positions + [r.position for r in page.events]
        start = view.start
        excess = len(records) - self._window
        if excess > self._window // 2:  # trim in steps, not on every fetch
            start = positions[excess - 1]
            records, positions = records[excess:], positions[excess:]
        end = max(view.end, page.scanned_to)
        self._view = view = _View(start, end, records, positions, fetches)
        return view


class AsyncCheckpointGroup:
    """Checkpoints of a store's subscriptions, written in groups (group commit).

    A subscription stores its checkpoint after each handled batch and goes on only once
    it is stored, as before. Checkpoints that arrive while a group is being written form
    the next group: one write (one transaction with a backend that has
    ``set_checkpoints``) instead of one per subscription. A failed write raises in the
    subscription that wrote it; the others of its group then write theirs again.
    """

    def __init__(self, backend: AsyncBackend) -> None:
        self._backend = backend
        self._pending: dict[str, int] = {}
        self._group = 0  # the group new checkpoints join
        self._written = 0  # every group below this one is stored
        self._queue = _aio.Lock()  # held briefly, never across a write
        self._writer = _aio.Lock()

    async def store(self, name: str, position: int) -> None:
        """Store checkpoint ``name`` at ``position``; return once it is stored."""
        async with self._queue:
            self._pending[name] = position
            group = self._group
        async with self._writer:
            if self._written > group:
                return  # a group written meanwhile held it
            async with self._queue:
                positions, self._pending = self._pending, {}
                self._group += 1
                closing = self._group
            try:
                await self._write(positions)
            except BaseException:
                async with self._queue:  # back in the queue, unless a newer one came
                    for key, value in positions.items():
                        self._pending.setdefault(key, value)
                raise
            self._written = closing

    async def _write(self, positions: dict[str, int]) -> None:
        backend = self._backend
        if len(positions) > 1 and isinstance(backend, AsyncCheckpointBatches):
            await backend.set_checkpoints(positions)
            return
        for name, position in positions.items():
            await backend.set_checkpoint(name, position)
