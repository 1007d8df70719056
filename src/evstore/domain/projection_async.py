"""Projections: named subscriptions that build read models; ``_sync.projection`` is generated.

Delivery guarantee. Where the backend offers ``run_with_checkpoint`` (SQLite, PostgreSQL,
MongoDB) the handler's read-model writes and the checkpoint commit in ONE transaction: the
handler is called as ``handler(event, tx)`` with the transaction's connection (a session on
MongoDB), and an event affects a read model in the same database exactly once even if the
process is killed at any point. Elsewhere (memory, or ``exactly_once=False``) the handler
is called as ``handler(event, None)`` and the checkpoint is stored after each batch:
at-least-once, so a restart may deliver the last batch again and the handler should be
idempotent (``projection.exactly_once`` says which one applies).

Poison events. An event whose handler raises is retried ``max_attempts`` times on its own;
then, with ``on_error="park"`` (default), it is parked in the projection's dead-letter list
and the projection moves on; with ``on_error="stop"`` the projection stops before it, and
``wait()``/``stop()`` raise the handler's error. Parked events can be listed
(:meth:`AsyncProjection.dead_letters`) and replayed (:meth:`AsyncProjection.replay`) once
the cause is fixed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal, Self, Unpack

from evstore import _aio
from evstore import _validation as check
from evstore._types import LogCursor, RecordedEvent
from evstore.errors import BackendUnavailable, InvalidInput, SerializationError
from evstore.observability import active, payload, system_name, track_follower
from evstore.spi._model import DeadLetter, EventRecord
from evstore.spi.backend_async import AsyncTransactionalCheckpoints
from evstore.store.filters import LogFilterOptions
from evstore.store.reader_async import AsyncLogFollower
from evstore.store.records import record_to_event

if TYPE_CHECKING:
    from evstore.store.facade_async import AsyncEventStore

log = logging.getLogger("evstore.projection")

MAX_ERROR_TEXT = 2000
LOCK_BUDGET = 0.02
"""Seconds a projection's transaction should do handler work for, at most (see _pace)."""

Handler = Callable[[RecordedEvent, Any], Any]


class AsyncProjection(AsyncLogFollower):
    """A durable, named consumer of the global log that maintains a read model.

    ``handler(event, tx)`` is called for each event in position order; ``tx`` is the
    backend's open transaction (a ``sqlite3.Connection`` on SQLite) when the projection is
    exactly-once, else None. Do not commit or roll back ``tx``. ``setup(tx)`` (optional)
    runs once at start, in the same kind of transaction - the place to create read-model
    tables.

    ``types``, ``category`` and ``partition=(i, n)`` filter the log as in
    :meth:`~evstore.AsyncEventStore.subscribe`; run n projections named e.g.
    ``users-0of4`` ... ``users-3of4`` with ``partition=(i, 4)`` to split the work.

    In a store of ``P > 1`` log partitions a projection keeps one checkpoint per partition
    (``name#j``, each moved in its own transaction with the work of that partition's
    events) and its dead letters per partition too; ``from_position`` may be a
    :class:`~evstore.LogCursor`. With ``partition=(i, n)`` (``n`` dividing ``P``) ``n``
    instances of ONE name form a consumer group: member ``i`` follows the partitions
    ``j % n == i`` and their checkpoints, so together they apply every event once.
    ``exactly_once``: None (default) uses the transactional path when the backend has it,
    True requires it (``InvalidInput`` otherwise), False never uses it.

    Run it in the background with :meth:`start` (then ``stop()``, or use it as a context
    manager), or in the foreground with :meth:`catch_up`.
    """

    def __init__(
        self,
        store: AsyncEventStore,
        name: str,
        handler: Handler,
        *,
        from_position: int | LogCursor = 0,
        batch_size: int = 100,
        max_attempts: int = 3,
        retry_delay: float = 0.05,
        on_error: Literal["park", "stop"] = "park",
        setup: Callable[[Any], Any] | None = None,
        exactly_once: bool | None = None,
        **filters: Unpack[LogFilterOptions],
    ) -> None:
        if not callable(handler):
            raise InvalidInput("handler must be callable as handler(event, tx)")
        if setup is not None and not callable(setup):
            raise InvalidInput("setup must be callable as setup(tx)")
        if on_error not in ("park", "stop"):
            raise InvalidInput(f"on_error must be 'park' or 'stop', got {on_error!r}")
        if not isinstance(retry_delay, int | float) or retry_delay < 0:
            raise InvalidInput(f"retry_delay must be a number >= 0, got {retry_delay!r}")
        if exactly_once not in (None, True, False):
            raise InvalidInput(f"exactly_once must be None, True or False, got {exactly_once!r}")
        reader = store.reader(**filters)
        super().__init__(reader, check.positive_int(batch_size, "batch_size"))
        self._name = check.stream_id(name)
        self._base_checkpoint = store.checkpoint_name(name)
        # The partition being handled: _position, _head, _stored, _checkpoint and _from
        # are this partition's (a store of one partition has only partition 0).
        self._part = reader.parts[0]
        self._handler = handler
        self._setup = setup
        self._from_at = _start(from_position, reader.count)
        self._max_attempts = check.positive_int(max_attempts, "max_attempts")
        self._retry_delay = float(retry_delay)
        self._on_error = on_error
        backend = self._backend
        self._transact = (
            backend.run_with_checkpoint
            if isinstance(backend, AsyncTransactionalCheckpoints)
            else None
        )
        if exactly_once is False:
            self._transact = None
        elif exactly_once and self._transact is None:
            raise InvalidInput(
                f"projection {name!r}: exactly_once=True needs a backend that commits the "
                "read model with the checkpoint (SQLite, PostgreSQL); this one does not"
            )
        self._size = self._batch_size  # this page's size: shrinks while batches run long
        # per partition: the checkpoint as last read or written
        self._stored_at: list[int | None] = [None] * reader.count
        self._prepared = False
        self._handled = 0

    def __repr__(self) -> str:
        where = self.cursor if self._reader.count > 1 else self._position
        return f"<projection {self._name} at {where}>"

    # -- the partition being handled ---------------------------------------------------------

    @property
    def _position(self) -> int:
        return self._cursor[self._part]

    @_position.setter
    def _position(self, value: int) -> None:
        self._cursor[self._part] = value

    @property
    def _head(self) -> int:
        return self._heads[self._part]

    @_head.setter
    def _head(self, value: int) -> None:
        self._heads[self._part] = value

    @property
    def _stored(self) -> int | None:
        return self._stored_at[self._part]

    @_stored.setter
    def _stored(self, value: int | None) -> None:
        self._stored_at[self._part] = value

    @property
    def _from(self) -> int:
        return self._from_at[self._part]

    @property
    def _checkpoint(self) -> str:
        """The stored name of the checkpoint (and dead letters) of the partition handled:
        the projection's name with one partition, ``name#j`` with several."""
        return self._checkpoint_of(self._part)

    def _checkpoint_of(self, partition: int) -> str:
        if self._reader.count == 1:
            return self._base_checkpoint
        return f"{self._base_checkpoint}#{partition}"

    def _partition_arg(self, partition: int | None, what: str) -> list[int]:
        """The partitions a dead-letter call is about (``partition`` checked)."""
        count = self._reader.count
        if partition is None:
            if count > 1 and what != "list":
                raise InvalidInput(
                    f"this store has {count} log partitions, each with positions of its "
                    f"own: pass partition= to {what} a dead letter"
                )
            return list(self._reader.parts)
        check.non_negative_int(partition, "partition")
        if partition not in self._reader.parts:
            raise InvalidInput(f"partition {partition} is not followed by this projection")
        return [partition]

    # -- state -----------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The projection's name (its checkpoint and dead letters are stored under it)."""
        return self._name

    @property
    def exactly_once(self) -> bool:
        """True when read-model writes commit with the checkpoint; False: at-least-once."""
        return self._transact is not None

    @property
    def handled(self) -> int:
        """How many events this object has handled successfully."""
        return self._handled

    # -- running ---------------------------------------------------------------------------

    async def _prepare(self) -> None:
        if self._prepared:
            return
        for j in self._reader.parts:
            self._part = j
            self._stored = await self._backend.get_checkpoint(self._checkpoint)
            self._position = self._from if self._stored is None else self._stored
        self._part = self._reader.parts[0]
        if self._setup is not None:
            if self._transact is not None:
                await self._commit(self._position, self._setup)
            else:
                await _aio.call(self._setup, None)
        self._heads = await self._reader.heads()
        self._prepared = True

    async def start(self) -> None:
        """Resume from the stored checkpoint and deliver in the background until stopped."""
        if self.running:
            raise InvalidInput(f"projection {self._name!r} is already running")
        await self._prepare()
        track_follower(self, "projection", self._name)
        self._launch(f"evstore-projection-{self._name}")

    async def catch_up(self, *, until: int | LogCursor | None = None, timeout: float = 60.0) -> int:
        """Handle, in the foreground, every event stored now; return how many were handled.

        ``until`` is a position the caller knows is committed (``append(...)
        .last_position``): the call then also waits, at most ``timeout`` seconds, until
        the log can be read up to it. Use it where readers may briefly lag behind commits
        (PostgreSQL holds the readable head back while other transactions are open).
        Raises the handler's error when ``on_error="stop"`` and an event stays failing.
        In a store of several log partitions ``until`` is a cursor (such as
        ``store.head()``); only this projection's partitions count.
        """
        if self.running:
            raise InvalidInput(f"projection {self._name!r} is running in the background")
        wanted = None
        if until is not None:
            wanted = self._target(
                until if isinstance(until, LogCursor) else check.non_negative_int(until, "until")
            )
        await self._prepare()
        before = self._handled
        heads = await self._reader.heads()
        target = LogCursor(tuple(heads))
        if wanted is not None:
            target = LogCursor(tuple(map(max, heads, wanted.positions)))
        deadline = time.monotonic() + timeout
        while not self._reached(target):
            if await self._step() and not self._reached(target):
                if wanted is None:
                    break
                if time.monotonic() > deadline:
                    raise BackendUnavailable(
                        f"projection {self._name!r}: the log was not readable up to position "
                        f"{until} within {timeout}s"
                    )
                await self._reader.wait(
                    self._position if self._reader.count == 1 else sum(self._cursor)
                )
        return self._handled - before

    async def _step(self) -> bool:
        """Handle one page of each partition; return whether the projection caught up."""
        exhausted = True
        for j in self._reader.parts:
            if self._stopping.is_set():
                return False
            self._part = j
            exhausted = await self._step_partition() and exhausted
        return exhausted

    async def _step_partition(self) -> bool:
        """Handle one page of partition ``self._part``; return whether it is exhausted."""
        size = self._size
        page = await self._reader.read(self._position, size, self._part)
        self._head = max(self._head, page.scanned_to)
        if page.events and not await self._handle_traced(page.events):
            # Another instance moved the checkpoint (or an unreadable event was set aside):
            # the rest of this page is not handled; read again after the position now.
            return False
        caught_up = len(page.events) < size
        if caught_up and page.scanned_to > self._position:
            # Events after the last one delivered were filtered out: skip them for good
            # (a compare-and-set too: an instance that lost it reads again).
            await self._commit(page.scanned_to, None)
        return caught_up

    async def _handle_traced(self, records: list[EventRecord]) -> bool:
        otel = active()
        if otel is None:
            return await self._handle_page(records)
        system = system_name(self._backend)
        with otel.batch("projection", self._name, system, len(records), self.lag):
            return await self._handle_page(records)

    async def _handle_page(self, records: list[EventRecord]) -> bool:
        """Handle a page; return False when the rest of it must be read again.

        A lost compare-and-set drops the rest of the page: the caller reads again after the
        stored checkpoint, so no event of the page is skipped unapplied or applied twice.
        An event whose stored row cannot be read (``SerializationError``) is a poison
        event: the ones before it are handled, it is parked (or stops the projection with
        ``on_error="stop"``), and the caller reads on after it.
        """
        events: list[RecordedEvent] = []
        for record in records:
            try:
                events.append(record_to_event(record))
            except SerializationError as e:
                if events and not await self._handle_events(events):
                    return False
                log.warning("projection %s: %s", self._name, e)
                if await self._give_up(record, e) and self._transact is None:
                    await self._commit(record.position, None)
                return False
        return await self._handle_events(events)

    async def _handle_events(self, events: list[RecordedEvent]) -> bool:
        if self._transact is not None:
            try:
                if not await self._commit(events[-1].position, self._work(events)):
                    return False
                self._handled += len(events)
                return True
            except BackendUnavailable:
                raise
            except Exception:
                log.debug("projection %s: batch failed, handling it event by event", self._name)
            for event in events:
                if not await self._handle_alone(event):
                    return False
            return True
        done = self._position
        try:
            for event in events:
                await self._handle_alone(event)
                done = event.position
        finally:
            if done > self._position:  # keep what was handled, also when stopping
                await self._commit(done, None)
        return True

    async def _handle_alone(self, event: RecordedEvent) -> bool:
        """Deliver one event, retrying; park it (or raise) when it keeps failing.

        Returns False, having done nothing, when another instance moved the checkpoint.
        """
        error: Exception | None = None
        for attempt in range(1, self._max_attempts + 1):
            try:
                if self._transact is None:
                    await _aio.call(self._handler, event, None)
                    self._handled += 1
                    return True
                if not await self._commit(event.position, self._work([event])):
                    return False
                self._handled += 1
                return True
            except BackendUnavailable:
                raise  # the store, not the event, is failing: stop rather than park
            except Exception as e:
                error = e
                log.warning(
                    "projection %s: %s at position %d failed (attempt %d of %d): %r",
                    self._name, event.type, event.position, attempt, self._max_attempts, e,
                )  # fmt: skip
                if attempt < self._max_attempts and self._retry_delay:
                    await _aio.sleep(self._retry_delay)
        assert error is not None
        return await self._give_up(event, error)

    async def _give_up(self, event: RecordedEvent | EventRecord, error: Exception) -> bool:
        """Park an event that keeps failing (or raise ``error`` with ``on_error="stop"``).

        Returns False, having parked nothing, when another instance moved the checkpoint.
        """
        if self._on_error == "stop":
            raise error
        if self._transact is not None and await self._moved():
            return False  # another instance got past it meanwhile: not ours to park
        await self._backend.park(_letter(self._checkpoint, event, error, self._max_attempts))
        log.warning(
            "projection %s: parked %s@%d (%s, position %d) after %d attempts: %s: %s%s",
            self._name, event.stream_id, event.version, event.type, event.position,
            self._max_attempts, type(error).__name__, error, payload(event),
        )  # fmt: skip
        if self._transact is not None:
            return await self._commit(event.position, None)
        return True

    def _work(self, events: list[RecordedEvent]) -> Callable[[Any], Any]:
        async def work(tx: Any) -> None:
            began = time.monotonic()
            for event in events:
                await _aio.call(self._handler, event, tx)
            self._pace(len(events), time.monotonic() - began)

        return work

    def _pace(self, count: int, seconds: float) -> None:
        """Keep a batch's transaction short: halve the page size while the handler's work
        in one transaction takes longer than ``LOCK_BUDGET``, grow it back while it is
        quick. The transaction holds a lock (SQLite: the database's only write lock, which
        other processes' appends wait for), so this bounds how long they wait."""
        if seconds > LOCK_BUDGET and count > 1:
            self._size = max(1, count // 2)
        elif seconds < LOCK_BUDGET / 4 and self._size < self._batch_size:
            self._size = min(self._batch_size, self._size * 2)

    async def _commit(self, position: int, work: Callable[[Any], Any] | None) -> bool:
        """Move the checkpoint to ``position``, with ``work(tx)`` in the same transaction.

        Returns False (nothing done) when another instance had moved the checkpoint.
        """
        if self._transact is None:
            if work is not None:
                await _aio.call(work, None)
            await self._backend.set_checkpoint(self._checkpoint, position)
            self._stored = self._position = position
            return True
        if await self._transact(self._checkpoint, self._stored, position, work or _nothing):
            self._stored = self._position = position
            return True
        # Another instance of this projection moved the checkpoint: continue after it.
        await self._moved()
        log.info("projection %s: checkpoint moved by another instance", self._name)
        return False

    async def _moved(self) -> bool:
        """Re-read the stored checkpoint; return whether another instance had moved it."""
        stored = await self._backend.get_checkpoint(self._checkpoint)
        if stored == self._stored:
            return False
        self._stored = stored
        self._position = self._from if stored is None else stored
        return True

    # -- dead letters ----------------------------------------------------------------------

    async def dead_letters(
        self, *, after: int = 0, limit: int = 100, partition: int | None = None
    ) -> list[DeadLetter]:
        """The parked events of this projection, in position order.

        In a store of several log partitions: those of ``partition`` (positions within
        it), or without it those of every partition followed, partition by partition, each
        after ``after`` (a letter's ``name`` ends in ``#j``, its partition).
        """
        after = check.non_negative_int(after, "after")
        limit = check.positive_int(limit, "limit")
        letters: list[DeadLetter] = []
        for j in self._partition_arg(partition, "list"):
            if len(letters) < limit:
                letters += await self._backend.dead_letters(
                    self._checkpoint_of(j), after, limit - len(letters)
                )
        return letters

    async def discard(self, position: int, *, partition: int | None = None) -> bool:
        """Drop a dead letter without replaying it; return whether it existed (in a store
        of several log partitions, of ``partition``)."""
        (j,) = self._partition_arg(partition, "discard")[:1]
        return await self._backend.unpark(
            self._checkpoint_of(j), check.non_negative_int(position, "position")
        )

    async def replay(self, position: int | None = None, *, partition: int | None = None) -> int:
        """Deliver parked events to the handler again (all, or the one at ``position``).

        Each one that is handled now is removed from the list; one that fails again stays,
        with its error and attempt count updated. Returns how many were handled. On an
        exactly-once backend each replay commits in its own transaction (the checkpoint
        does not move); removing the letter follows that commit, so a crash in between can
        replay that one event again. In a store of several log partitions ``position``
        needs its ``partition``; without a position every partition's letters are replayed.
        """
        replayed = 0
        for j in self._partition_arg(partition, "list" if position is None else "replay"):
            replayed += await self._replay_partition(self._checkpoint_of(j), position)
        return replayed

    async def _replay_partition(self, name: str, position: int | None) -> int:
        """``replay`` of one partition's letters (stored under ``name``)."""
        if position is None:
            letters = []
            after = 0
            while chunk := await self._backend.dead_letters(name, after, 500):
                letters.extend(chunk)
                after = chunk[-1].position
        else:
            letters = [
                letter
                for letter in await self._backend.dead_letters(name, max(position - 1, 0), 1)
                if letter.position == position
            ]
            if not letters:
                raise InvalidInput(f"projection {self._name!r} has no dead letter at {position}")
        replayed = 0
        for letter in letters:
            try:
                # Read it through its stream: that read never lags behind the log's head.
                found = await self._backend.read_stream(
                    letter.stream_id, letter.version, letter.version, 1, False
                )
                if not found or found[0].event_id != letter.event_id:
                    raise InvalidInput(
                        f"the event {letter.stream_id}@{letter.version} is no longer stored"
                    )
                await self._replay_one(name, letter, record_to_event(found[0]))
            except Exception as e:
                await self._backend.park(_letter(name, letter, e, letter.attempts + 1))
                continue
            await self._backend.unpark(name, letter.position)
            replayed += 1
        return replayed

    async def _replay_one(self, name: str, letter: DeadLetter, event: RecordedEvent) -> None:
        if self._transact is None:
            await _aio.call(self._handler, event, None)
            return
        while True:  # compare-and-set against a projection that may be running
            current = await self._backend.get_checkpoint(name)
            keep = current if current is not None else max(letter.position - 1, 0)
            if await self._transact(name, current, keep, self._work([event])):
                return

    async def query(self, fn: Callable[[Any], Any]) -> Any:
        """Return ``fn(tx)`` run in a transaction of the read model's database.

        On an exactly-once backend ``tx`` is a connection with a transaction open (as the
        handler gets it), so a read sees the read model exactly as of the checkpoint; the
        checkpoint is not moved. Elsewhere ``fn(None)`` is called.
        """
        if self._transact is None:
            return await _aio.call(fn, None)
        results: list[Any] = []

        async def work(tx: Any) -> None:
            results.append(await _aio.call(fn, tx))

        first = self._reader.parts[0]  # any of its checkpoints: the transaction is the point
        name = self._checkpoint_of(first)
        while True:  # compare-and-set against a projection that may be running
            current = await self._backend.get_checkpoint(name)
            keep = self._from_at[first] if current is None else current
            if await self._transact(name, current, keep, work):
                return results[-1]

    async def __aenter__(self) -> Self:
        if not self.running:
            await self.start()
        return self


def _nothing(tx: Any) -> None:
    pass


def _start(from_position: object, count: int) -> list[int]:
    """``from_position`` (an int, or with several partitions a cursor) per partition."""
    if isinstance(from_position, LogCursor):
        if len(from_position) != count:
            raise InvalidInput(
                f"from_position is a cursor of {len(from_position)} partitions; this store "
                f"has {count}"
            )
        return list(from_position.positions)
    return [check.non_negative_int(from_position, "from_position")] * count


def _letter(
    name: str,
    event: RecordedEvent | EventRecord | DeadLetter,
    error: BaseException,
    attempts: int,
) -> DeadLetter:
    text = f"{type(error).__name__}: {error}"[:MAX_ERROR_TEXT]
    return DeadLetter(
        name,
        event.position,
        event.stream_id,
        event.version,
        event.type,
        str(event.event_id),
        text,
        attempts,
        datetime.now(UTC),
    )
