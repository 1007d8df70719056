"""The event store facade. Written once for asyncio; ``evstore.store.facade`` is generated.

The facade validates every argument before a backend sees it, encodes and decodes
payloads, pages long reads, and runs subscriptions. Backends only store rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import replace
from datetime import timedelta
from types import TracebackType
from typing import Any, Literal, TypedDict, Unpack, cast
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from evstore import _codec
from evstore import _validation as check
from evstore._types import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendCondition,
    AppendRequest,
    AppendResult,
    ExpectedVersion,
    LogCursor,
    NewEvent,
    Query,
    QueryResult,
    RecordedEvent,
    Snapshot,
    _ExpectedVersionMode,
)
from evstore.errors import DuplicateEventId, InvalidInput, SerializationError
from evstore.observability import active, system_name, watch_backend
from evstore.spi._model import (
    TAGS_KEY,
    UNREADABLE,
    EventRecord,
    PendingAppend,
    PendingEvent,
    Placement,
    SnapshotRecord,
    StreamSummary,
    TagQuery,
    stable_hash,
)
from evstore.spi.backend_async import AsyncBackend, AsyncCheckpointedAppends, AsyncTaggedLog
from evstore.store._retention_rules import RETENTION_STREAM, RetentionPolicy, make_policy
from evstore.store.filters import LogFilterOptions, log_filter
from evstore.store.partitioning import Partitioning
from evstore.store.reader_async import AsyncLogReader
from evstore.store.records import record_to_event
from evstore.store.retention_async import AsyncRetentionView
from evstore.store.settings import StoreSettings
from evstore.store.shared_log_async import AsyncCheckpointGroup, AsyncSharedLog
from evstore.store.subscription_async import AsyncSubscription


def _expected(value: object) -> ExpectedVersion:
    # By identity: another object of the modes' class (a copy, a pickle) is not a mode.
    if value is ANY or value is NO_STREAM or value is STREAM_EXISTS:
        return value
    if isinstance(value, _ExpectedVersionMode):
        raise InvalidInput(
            f"expected_version {value!r} is not one of evstore.ANY, NO_STREAM, STREAM_EXISTS"
        )
    return check.non_negative_int(value, "expected_version")


def _tag_query(query: Query) -> TagQuery:
    return TagQuery(tuple((tuple(item.types), tuple(item.tags)) for item in query.items))


def _pending(events: object) -> list[PendingEvent]:
    if isinstance(events, NewEvent):
        raise InvalidInput("events must be a list of NewEvent; wrap the single event in [...]")
    if not isinstance(events, list | tuple):
        raise InvalidInput(f"events must be a list of NewEvent, got {type(events).__name__}")
    if not events:
        raise InvalidInput("events must not be empty; append at least one NewEvent")
    out = []
    seen = set()
    for i, event in enumerate(events):
        if not isinstance(event, NewEvent):
            raise InvalidInput(f"events[{i}] must be a NewEvent, got {type(event).__name__}")
        event_id = str(event.event_id)
        if event_id in seen:
            raise InvalidInput(f"events[{i}] repeats event_id {event_id} within the batch")
        seen.add(event_id)
        metadata = event.metadata
        if event.tags:
            if metadata and TAGS_KEY in metadata:
                raise InvalidInput(f"events[{i}].metadata: the key {TAGS_KEY!r} is evstore's")
            metadata = {**(metadata or {}), TAGS_KEY: list(event.tags)}
        out.append(
            PendingEvent(
                event_id,
                event.type,
                _codec.encode(event.data, f"events[{i}].data"),
                _codec.encode(metadata, f"events[{i}].metadata") if metadata else _codec.EMPTY,
                event.schema_version,
                event.occurred_at,
                None,
                tuple(event.tags),
            )
        )
    return out


def redact(url: str) -> str:
    """``url`` with any password (in the authority or a ``password=`` parameter) as ``***``."""
    parts = urlsplit(url)
    if parts.password is None and "password" not in parts.query.lower():
        return url
    netloc = parts.netloc
    if parts.password is not None:
        netloc = f"{parts.username or ''}:***@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if "password" in query.lower():
        query = urlencode(
            [
                (k, "***" if k.lower() == "password" else v)
                for k, v in parse_qsl(query, keep_blank_values=True)
            ],
            safe="*",
        )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


class StoreStats(TypedDict, total=False):
    """What ``stats()`` returns; every backend means the same by each key.

    ``events``: events in the global log (soft-deleted ones included, hard-deleted ones
    not); ``streams``: live streams (with visible events); ``snapshots``: streams with a
    snapshot; ``checkpoints``: stored subscription and projection checkpoints (not in a
    tenant's store); ``head_position``: the newest position. A backend may add keys of
    its own.
    """

    events: int
    streams: int
    snapshots: int
    checkpoints: int
    head_position: int


class AsyncEventStore:
    """An event store over one backend: streams, the global log, snapshots, subscriptions.

    Open one with :func:`evstore.connect_async`; close it with ``close()`` or use it as a
    context manager.
    """

    def __init__(self, backend: AsyncBackend, **options: Any) -> None:
        url = options.pop("url", None)
        settings = options.pop("settings", None) or StoreSettings(**options)
        self._url = None if url is None else redact(str(url))
        self._backend = backend
        self._settings = settings
        self._separator = settings.category_separator
        self._page_size = settings.page_size
        self._poll_interval = settings.poll_interval
        self._partitioning = settings.partitioning
        self._tenant = settings.tenant
        self._prefix = settings.tenant_prefix
        self._partitions = int(getattr(backend, "log_partitions", 1))
        # per log partition: (log read up to, tenant's newest position) - head_position
        self._tenant_scan = [(0, 0)] * self._partitions
        self._retention = AsyncRetentionView(
            backend,
            f"{self._prefix}{RETENTION_STREAM}",
            self._separator,
            settings.retention_refresh,
        )
        locate = getattr(backend, "locate_with", None)
        if locate is not None:  # it computes a stream's partition from the id, as we do
            locate(self._placement)
        # One reader of the log for the subscriptions of this store (one log partition).
        self._shared = (
            AsyncSharedLog(self.reader(), self._attributes) if self._partitions == 1 else None
        )
        self._checkpoints = AsyncCheckpointGroup(backend)  # written in groups
        self._closed = False
        self._system = system_name(backend)  # db.system.name of its spans and metrics
        # The longest stream id / event type the backend stores (UTF-8 bytes; None: 255
        # characters, the rule for a backend that states none).
        self._max_name: int | None = getattr(backend, "max_name_bytes", None)
        watch_backend(backend)

    def __repr__(self) -> str:
        where = self._url or type(self._backend).__name__
        tenant = f" tenant={self._tenant!r}" if self._tenant is not None else ""
        closed = " (closed)" if self._closed else ""
        return f"<{type(self).__name__} {where}{tenant}{closed}>"

    @property
    def url(self) -> str | None:
        """The URL the store was opened with, its password replaced by ``***``."""
        return self._url

    @property
    def backend(self) -> AsyncBackend:
        """The storage backend (for backend-specific tools and tests)."""
        return self._backend

    def category_of(self, stream_id: str) -> str:
        """The stream's category: its id up to the first separator (``user-1`` -> ``user``)."""
        return stream_id.split(self._separator, 1)[0]

    @property
    def partitioning(self) -> Partitioning | None:
        """The strategy that gives each stream its partition key (None: the stream id)."""
        return self._partitioning

    @property
    def partitions(self) -> int:
        """The store's number of log partitions ``P`` (fixed when the store was created).

        A stream lives in partition ``partition_hash(partition key) % P``; each partition is
        a gap-free, totally ordered log with positions of its own. Order holds within a
        stream and within a partition, never across partitions.
        """
        return self._partitions

    @property
    def tenant(self) -> str | None:
        """The tenant this store is limited to, or None."""
        return self._tenant

    def _placement(self, stream_id: str) -> Placement:
        # The partition hash is the hash of the partition key, so every event of a stream
        # (and of a key) falls in the same slot of subscribe(partition=(i, n)).
        strategy = self._partitioning
        if strategy is None:
            key, hashed = stream_id, stable_hash(stream_id)
        else:
            key = strategy.partition_key(stream_id)
            hashed = strategy.partition_hash(key)
        return Placement(self.category_of(stream_id), key, hashed, hashed % self._partitions)

    def _attributes(self, stream_id: str) -> tuple[str, int]:
        placement = self._placement(stream_id)
        return placement.category, placement.partition_hash

    def partition_of(self, stream_id: str) -> int:
        """The log partition that holds (or will hold) the stream's events."""
        return self._placement(self._stream(stream_id)).log_partition

    def _stream(self, stream_id: object) -> str:
        """A valid stream id that this store may use (its tenant's, when it has one)."""
        check.stream_id(stream_id)
        assert isinstance(stream_id, str)
        check.fits(stream_id, "stream_id", self._max_name, self._system)
        prefix = self._prefix
        if prefix and (not stream_id.startswith(prefix) or len(stream_id) == len(prefix)):
            raise InvalidInput(
                f"stream {stream_id!r} does not belong to tenant {self._tenant!r}: this store "
                f"was opened for that tenant and only uses stream ids starting with {prefix!r}"
            )
        return stream_id

    def checkpoint_name(self, name: str) -> str:
        """The stored name of a subscription's checkpoint (tenant stores prefix it)."""
        stored = f"{self._prefix}{check.stream_id(name)}"
        return check.fits(stored, "checkpoint name", self._max_name, self._system)

    # -- writing ---------------------------------------------------------------------------

    async def append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion = ANY,
        *,
        condition: AppendCondition | None = None,
    ) -> AppendResult:
        """Atomically append ``events`` to the end of a stream.

        ``expected_version`` is an int (0: the stream must not exist), ``ANY``,
        ``NO_STREAM`` or ``STREAM_EXISTS``; a mismatch raises ``ConcurrencyError`` and
        writes nothing. Appending the same event ids again at the same place returns the
        original result; reusing an id elsewhere raises ``DuplicateEventId``. With a
        ``condition`` (dynamic consistency boundary), an event matching its query stored
        after its ``after`` position raises ``ConcurrencyError`` too, and nothing is written.
        """
        otel = active()
        if otel is None:
            return await self._append(stream_id, events, expected_version, condition)
        with otel.operation("append", self._system, stream_id) as op:
            result = await self._append(stream_id, events, expected_version, condition)
            op.count = len(result.positions)
            return result

    async def _append(
        self,
        stream_id: str,
        events: Sequence[NewEvent],
        expected_version: ExpectedVersion,
        condition: AppendCondition | None = None,
    ) -> AppendResult:
        self._writable(stream_id)
        expected = _expected(expected_version)
        pending = _pending(events)
        self._fit_types(pending)
        placement = self._placement(stream_id)
        if condition is not None:
            if not isinstance(condition, AppendCondition):
                raise InvalidInput(f"condition must be an AppendCondition, got {condition!r}")
            return await self._tagged().append_unless(
                stream_id,
                pending,
                expected,
                placement,
                _tag_query(condition.fail_if_events_match),
                condition.after,
            )
        if any(e.tags for e in pending):
            self._tagged()
        if not self._prefix:
            return await self._backend.append(stream_id, pending, expected, placement)
        try:
            return await self._backend.append(stream_id, pending, expected, placement)
        except DuplicateEventId as e:
            if e.stream_id is None or e.stream_id.startswith(self._prefix):
                raise
            hidden = e.event_id
        # Raised outside the except block: not even __context__ names the other stream.
        raise DuplicateEventId(hidden, "elsewhere in the store")

    def _fit_types(self, pending: Sequence[PendingEvent]) -> None:
        """Every event type within the backend's limit (checked once per distinct type)."""
        for type_ in {e.type for e in pending}:
            check.fits(type_, "event type", self._max_name, self._system)

    async def append_with_checkpoint(
        self,
        appends: Sequence[AppendRequest | tuple[Any, ...]],
        name: str,
        expected: int | None,
        position: int,
    ) -> list[AppendResult] | None:
        """Append as :meth:`append_many` (``[]``: nothing) and move checkpoint ``name`` from
        ``expected`` (None: not stored) to ``position``, in one transaction: both or neither.

        Returns None, having written nothing, when the checkpoint is not at ``expected``;
        an append's error (``ConcurrencyError``, ...) leaves the checkpoint where it was.
        A consumer of another store's log records what it handled this way (eventsourcing's
        process recorders). ``InvalidInput`` on a backend without such a transaction (NATS).
        """
        otel = active()
        if otel is None:
            return await self._append_with_checkpoint(appends, name, expected, position)
        with otel.operation("append_with_checkpoint", self._system) as op:
            results = await self._append_with_checkpoint(appends, name, expected, position)
            op.count = sum(len(r.positions) for r in results or ())
            return results

    async def _append_with_checkpoint(
        self,
        appends: Sequence[AppendRequest | tuple[Any, ...]],
        name: str,
        expected: int | None,
        position: int,
    ) -> list[AppendResult] | None:
        backend = self._backend
        if not isinstance(backend, AsyncCheckpointedAppends):
            raise InvalidInput(
                f"{self._system} cannot append and move a checkpoint in one transaction"
            )
        parts = self._pending_appends(appends) if appends else []
        for part in parts:
            self._fit_types(part.events)
        if any(e.tags for part in parts for e in part.events):
            self._tagged()
        stored = self.checkpoint_name(name)
        if expected is not None:
            check.non_negative_int(expected, "expected")
        position = check.non_negative_int(position, "position")
        return await backend.append_with_checkpoint(
            stored, expected, position, lambda tx: parts or None
        )

    # -- dynamic consistency boundaries ----------------------------------------------------

    def _tagged(self) -> AsyncTaggedLog:
        """The backend's DCB tier, or ``InvalidInput`` saying why there is none."""
        backend = self._backend
        if not getattr(backend, "supports_tags", False):
            raise InvalidInput(
                f"this {type(backend).__name__} stores no tags: dynamic consistency boundaries "
                "(tags, read_query, append conditions) need memory://, sqlite://, "
                "postgresql:// or mongodb://"
            )
        if self._partitions > 1:
            raise InvalidInput(
                "dynamic consistency boundaries need one total order of events; this store "
                f"has {self._partitions} log partitions (use a store of one partition)"
            )
        if self._prefix:
            raise InvalidInput("a tenant's store offers no dynamic consistency boundaries")
        return cast(AsyncTaggedLog, backend)

    async def read_query(
        self, query: Query, *, after: int = 0, limit: int | None = None
    ) -> QueryResult:
        """The events matching ``query`` after position ``after``, and the position read to.

        Give that position as ``AppendCondition(query, after=result.head)`` to append only
        if nothing matching the query was stored since this read (a dynamic consistency
        boundary). With ``limit`` the read stops at that many events and ``head`` is the
        last one's position.
        """
        otel = active()
        if otel is None:
            return await self._read_query(query, after, limit)
        with otel.operation("read_query", self._system) as op:
            result = await self._read_query(query, after, limit)
            op.count = len(result.events)
            return result

    async def _read_query(self, query: Query, after: int, limit: int | None) -> QueryResult:
        if not isinstance(query, Query):
            raise InvalidInput(f"query must be a Query, got {type(query).__name__}")
        backend = self._tagged()
        where = _tag_query(query)
        position = check.non_negative_int(after, "after")
        remaining = check.optional_positive_int(limit, "limit")
        events: list[RecordedEvent] = []
        while True:
            page_size = self._page_size if remaining is None else min(remaining, self._page_size)
            page = await backend.read_tagged(where, position, page_size)
            events.extend(record_to_event(r) for r in page.events)
            position = max(position, page.scanned_to)
            if remaining is not None:
                remaining -= len(page.events)
            if len(page.events) < page_size or remaining == 0:
                return QueryResult(events, position)

    # -- multi-stream appends --------------------------------------------------------------

    async def append_many(
        self, appends: Sequence[AppendRequest | tuple[Any, ...]]
    ) -> list[AppendResult]:
        """Atomically append to several streams: all of them, or none.

        ``appends`` are :class:`~evstore.AppendRequest` values (or ``(stream_id, events)`` /
        ``(stream_id, events, expected_version)`` tuples), each stream at most once. Every
        stream's ``expected_version`` is checked as by :meth:`append`; the first mismatch
        raises ``ConcurrencyError`` naming that stream, and nothing is written. The same
        call repeated (the same event ids at the same places) returns the original results.
        Returns one :class:`AppendResult` per request, in the order given.
        """
        otel = active()
        if otel is None:
            return await self._append_many(appends)
        with otel.operation("append_many", self._system) as op:
            results = await self._append_many(appends)
            op.count = sum(len(result.positions) for result in results)
            return results

    async def _append_many(self, appends: Sequence[Any]) -> list[AppendResult]:
        parts = self._pending_appends(appends)
        for part in parts:
            self._fit_types(part.events)
        if any(e.tags for part in parts for e in part.events):
            self._tagged()
        if not self._prefix:
            return await self._backend.append_many(parts)
        try:
            return await self._backend.append_many(parts)
        except DuplicateEventId as e:
            if e.stream_id is None or e.stream_id.startswith(self._prefix):
                raise
            hidden = e.event_id
        # Raised outside the except block: not even __context__ names the other stream.
        raise DuplicateEventId(hidden, "elsewhere in the store")

    def _pending_appends(self, appends: object) -> list[PendingAppend]:
        """``append_many``'s argument checked whole, as rows for the backend."""
        if not isinstance(appends, list | tuple):
            raise InvalidInput(
                f"appends must be a list of AppendRequest, got {type(appends).__name__}"
            )
        if not appends:
            raise InvalidInput("appends must not be empty; give at least one AppendRequest")
        parts: list[PendingAppend] = []
        streams: set[str] = set()
        ids: set[str] = set()
        for i, request in enumerate(appends):
            if not isinstance(request, tuple) or len(request) not in (2, 3):
                raise InvalidInput(
                    f"appends[{i}] must be an AppendRequest(stream_id, events, "
                    f"expected_version), got {type(request).__name__}"
                )
            stream_id, events, *rest = request
            try:
                self._writable(stream_id)
                expected = _expected(rest[0] if rest else ANY)
                pending = _pending(events)
            except InvalidInput as e:
                raise type(e)(f"appends[{i}]: {e}") from None
            if stream_id in streams:
                raise InvalidInput(
                    f"appends[{i}]: stream {stream_id!r} appears twice; put all of its "
                    "events in one request"
                )
            streams.add(stream_id)
            for event in pending:
                if event.event_id in ids:
                    raise InvalidInput(
                        f"appends[{i}]: event_id {event.event_id} appears twice in the call"
                    )
                ids.add(event.event_id)
            parts.append(PendingAppend(stream_id, pending, expected, self._placement(stream_id)))
        return parts

    async def delete_stream(
        self, stream_id: str, *, hard: bool = False, expected_version: ExpectedVersion = ANY
    ) -> None:
        """Delete a stream.

        Soft (default): the stream reads as empty and can be written again; its versions
        continue where they stopped, and its events stay in the global log. Hard: a
        tombstone; the events are removed and any later read or append raises
        ``StreamDeleted``.
        """
        self._writable(stream_id)
        if not isinstance(hard, bool):
            raise InvalidInput(f"hard must be a bool, got {hard!r}")
        if await self._retention.protected(stream_id):
            raise InvalidInput(f"stream {stream_id!r} is protected: it is never deleted")
        await self._backend.delete_stream(stream_id, hard, _expected(expected_version))

    # -- reading a stream ------------------------------------------------------------------

    async def get_events(
        self,
        stream_id: str,
        from_version: int = 1,
        *,
        to_version: int | None = None,
        limit: int | None = None,
        backwards: bool = False,
    ) -> list[RecordedEvent]:
        """Events of one stream with ``from_version <= version <= to_version``.

        In version order, or newest first when ``backwards`` (so ``limit=1, backwards=True``
        is the last event). A stream that does not exist reads as ``[]``.
        """
        return [
            event
            async for event in self.iter_events(
                stream_id, from_version, to_version=to_version, limit=limit, backwards=backwards
            )
        ]

    async def iter_events(
        self,
        stream_id: str,
        from_version: int = 1,
        *,
        to_version: int | None = None,
        limit: int | None = None,
        backwards: bool = False,
    ) -> AsyncIterator[RecordedEvent]:
        """Like :meth:`get_events`, read in pages: memory stays bounded for any stream size."""
        self._stream(stream_id)
        low = check.non_negative_int(from_version, "from_version")
        high = None if to_version is None else check.non_negative_int(to_version, "to_version")
        remaining = check.optional_positive_int(limit, "limit")
        if not isinstance(backwards, bool):
            raise InvalidInput(f"backwards must be a bool, got {backwards!r}")
        floor, cutoff = await self._retention.bounds(stream_id)  # expired: never returned
        low = max(low, floor)
        while remaining is None or remaining > 0:
            page = self._page_size if remaining is None else min(remaining, self._page_size)
            records = await self._read_stream(stream_id, low, high, page, backwards)
            for record in records:
                if cutoff is not None and record.recorded_at < cutoff:
                    continue
                yield record_to_event(record)
                if remaining is not None:
                    remaining -= 1
            if len(records) < page:
                return
            if backwards:
                high = records[-1].version - 1
            else:
                low = records[-1].version + 1

    async def _read_stream(
        self, stream_id: str, low: int, high: int | None, limit: int, backwards: bool
    ) -> list[EventRecord]:
        otel = active()
        if otel is None:
            return await self._backend.read_stream(stream_id, low, high, limit, backwards)
        with otel.operation("read_stream", self._system, stream_id) as op:
            records = await self._backend.read_stream(stream_id, low, high, limit, backwards)
            op.count = len(records)
            return records

    async def stream_version(self, stream_id: str) -> int:
        """The stream's current version: its last event's version, 0 if it has none."""
        return await self._backend.stream_version(self._stream(stream_id))

    # -- reading the global log ------------------------------------------------------------

    def reader(self, **filters: Unpack[LogFilterOptions]) -> AsyncLogReader:
        """The log reader for these filters (what subscriptions and projections read with).

        ``partition=i`` reads log partition ``i`` alone (the same as ``(i, P)``);
        ``partition=(i, n)`` the streams whose partition hash falls in slot ``i`` of ``n``:
        with ``n`` dividing ``P`` these are exactly the log partitions ``j % n == i``, so
        ``n`` consumers split the partitions among them (a consumer group).
        """
        options: dict[str, object] = dict(filters)
        count = self._partitions
        part = options.get("partition")
        if isinstance(part, int) and not isinstance(part, bool):
            if not 0 <= part < count:
                raise InvalidInput(
                    f"partition {part} does not exist: this store has {count} log "
                    f"partition{'s' if count > 1 else ''} (0..{count - 1})"
                )
            options["partition"] = (part, count)
        where = log_filter(options, self._prefix or None)
        if count == 1:
            return AsyncLogReader(
                self._backend, where, self._poll_interval, retention=self._retention
            )
        parts = tuple(range(count))
        if where.partition is not None:
            i, n = where.partition
            if count % n:
                raise InvalidInput(
                    f"partition=({i}, {n}): {n} consumers cannot split this store's {count} "
                    f"log partitions evenly; use a divisor of {count}"
                )
            # hash % n == (hash % P) % n when n divides P: a slot is a set of partitions.
            parts = tuple(j for j in parts if j % n == i)
            where = replace(where, partition=None)
        if where.stream_id is not None:  # one stream lives in one partition
            home = self._placement(where.stream_id).log_partition
            parts = tuple(j for j in parts if j == home)
        return AsyncLogReader(
            self._backend,
            where,
            self._poll_interval,
            count=count,
            parts=parts,
            retention=self._retention,
        )

    def _start(self, position: object, reader: AsyncLogReader) -> int | LogCursor:
        """``from_position`` checked against the store's partitions: an int or a cursor."""
        count = self._partitions
        if isinstance(position, LogCursor):
            if len(position) != count:
                raise InvalidInput(
                    f"from_position is a cursor of {len(position)} partitions; this store "
                    f"has {count}"
                )
            return position
        after = check.non_negative_int(position, "from_position")
        if count > 1 and after and len(reader.parts) > 1:
            raise InvalidInput(
                f"this store has {count} log partitions, each with its own positions: pass "
                "from_position as a LogCursor (or an int with partition=i)"
            )
        return after

    async def read_all(
        self,
        from_position: int | LogCursor = 0,
        *,
        limit: int | None = None,
        **filters: Unpack[LogFilterOptions],
    ) -> list[RecordedEvent]:
        """Events of the log with position > ``from_position``, in position order.

        ``types`` keeps only those event types, ``category`` only streams of that category,
        ``partition=(i, n)`` only streams whose stable hash falls in slot i of n, and
        ``partition=i`` only log partition ``i``. In a store of several log partitions the
        events come partition by partition (each in its order: there is no order across
        partitions) and ``from_position`` is a :class:`LogCursor` (0: the beginning);
        ``cursor.advanced(event)`` moves a cursor past an event read.
        """
        return [event async for event in self.iter_all(from_position, limit=limit, **filters)]

    async def iter_all(
        self,
        from_position: int | LogCursor = 0,
        *,
        limit: int | None = None,
        **filters: Unpack[LogFilterOptions],
    ) -> AsyncIterator[RecordedEvent]:
        """Like :meth:`read_all`, read in pages with bounded memory."""
        reader = self.reader(**filters)
        start = self._start(from_position, reader)
        remaining = check.optional_positive_int(limit, "limit")
        for j in reader.parts:
            after = start[j] if isinstance(start, LogCursor) else start
            async for record in reader.records(after, remaining, self._page_size, j):
                yield record_to_event(record)
                if remaining is not None:
                    remaining -= 1
            if remaining == 0:
                return

    async def head_position(self) -> int:
        """The position of the newest event in the global log (0 when empty).

        A tenant's store answers for its tenant: the position of the newest event of its
        streams (0 when it has none). It finds it by reading the tenant's part of the log
        once, then only what was appended since (per store object).

        A store of several log partitions has a head per partition (:meth:`head`, a
        cursor); there this is their sum: how many positions were handed out, which grows
        with every append and never shrinks.
        """
        if not self._prefix:
            return await self._backend.head_position()
        return sum((await self.head()).positions)

    async def _tenant_head(self, partition: int) -> int:
        """The newest position of this tenant's streams in ``partition``."""
        after, head = self._tenant_scan[partition]
        reader = AsyncLogReader(
            self._backend,
            log_filter({}, self._prefix),
            self._poll_interval,
            count=self._partitions,
            parts=(partition,),
        )
        while True:
            page = await reader.read(after, self._page_size, partition)
            if page.events:
                head = page.events[-1].position
            following = max(after, page.scanned_to)
            done = len(page.events) < self._page_size or following == after
            after = following
            if done:
                break
        self._tenant_scan[partition] = (after, head)
        return head

    async def head(self) -> LogCursor:
        """The newest position of every log partition, as a cursor (a tenant's store: of
        its tenant's streams)."""
        if self._prefix:
            return LogCursor(tuple([await self._tenant_head(j) for j in range(self._partitions)]))
        return LogCursor(tuple(await self.reader().heads()))

    # -- snapshots -------------------------------------------------------------------------

    async def get_snapshot(self, stream_id: str) -> Snapshot | None:
        """The latest snapshot saved for a stream, or None."""
        self._stream(stream_id)
        otel = active()
        if otel is None:
            record = await self._backend.get_snapshot(stream_id)
        else:
            with otel.operation("get_snapshot", self._system, stream_id) as op:
                record = await self._backend.get_snapshot(stream_id)
                op.count = 0 if record is None else 1
        if record is None:
            return None
        if record.taken_at is UNREADABLE:
            raise SerializationError(
                f"the snapshot of {record.stream_id!r} at version {record.version} cannot be "
                "read: its taken_at is outside years 1-9999 UTC"
            )
        try:
            data = _codec.decode(record.data)
        except SerializationError as e:
            raise SerializationError(
                f"the snapshot of {record.stream_id!r} at version {record.version} cannot be "
                f"read: {e}"
            ) from e
        return Snapshot(
            record.stream_id, record.version, data, record.schema_version, record.taken_at
        )

    async def save_snapshot(self, snapshot: Snapshot) -> None:
        """Save a snapshot; one older than the stored snapshot is ignored.

        The snapshot's version must not be above the stream's current version.
        """
        if not isinstance(snapshot, Snapshot):
            raise InvalidInput(f"snapshot must be a Snapshot, got {type(snapshot).__name__}")
        self._stream(snapshot.stream_id)
        current = await self._backend.stream_version(snapshot.stream_id)
        if snapshot.version > current:
            raise InvalidInput(
                f"snapshot of {snapshot.stream_id!r} at version {snapshot.version} is ahead "
                f"of the stream (version {current}); snapshot only stored events"
            )
        record = SnapshotRecord(
            snapshot.stream_id,
            snapshot.version,
            _codec.encode(snapshot.data, "snapshot.data"),
            snapshot.schema_version,
            snapshot.taken_at,
        )
        otel = active()
        if otel is None:
            await self._backend.save_snapshot(record)
            return
        with otel.operation("save_snapshot", self._system, snapshot.stream_id):
            await self._backend.save_snapshot(record)

    # -- subscriptions ---------------------------------------------------------------------

    def subscribe(
        self,
        handler: Callable[[RecordedEvent], Any] | None = None,
        *,
        from_position: int | LogCursor | Literal["end"] = 0,
        name: str | None = None,
        batch_size: int = 100,
        **filters: Unpack[LogFilterOptions],
    ) -> AsyncSubscription:
        """Deliver the global log to ``handler``: first what is stored, then live.

        Events come in position order with no gap and no duplicate at the hand-over. With
        ``name`` the position is stored after each handled batch, and a later subscription
        with the same name resumes after it (the stored checkpoint wins over
        ``from_position``). If the handler raises, the subscription stops at that event,
        keeps the error in ``.error`` and raises it from ``wait()`` and ``stop()``.

        Without a handler, iterate over the subscription instead: ``for event in
        store.subscribe(...)`` gets the same events in the same order; an event counts as
        handled (and checkpointed) when the loop asks for the next one, and leaving the
        loop stops the subscription.

        In a store of several log partitions the subscription reads every partition (or,
        with ``partition=(i, n)``, member ``i``'s share of a group of ``n``), each in its
        order, with a checkpoint per partition; ``from_position`` is a :class:`LogCursor`.
        """
        if handler is not None and not callable(handler):
            raise InvalidInput("handler must be callable")
        reader = self.reader(**filters)
        start: int | LogCursor | Literal["end"] = "end"
        if from_position != "end":
            start = self._start(from_position, reader)
        if name is not None:
            name = self.checkpoint_name(name)
        subscription = AsyncSubscription(
            reader,
            handler,
            from_position=start,
            name=name,
            batch_size=check.positive_int(batch_size, "batch_size"),
            shared=self._shared,
            checkpoints=self._checkpoints,
        )
        # async-only: begin
        # Started by `await`, `async with` or `async for` (asyncpg's and httpx's convention).
        return subscription
        # async-only: end
        subscription.start()
        return subscription

    # -- retention -------------------------------------------------------------------------

    def _writable(self, stream_id: object) -> str:
        """A stream id the public write calls may use (not the retention metadata)."""
        sid = self._stream(stream_id)
        if sid == self._retention.stream_id:
            raise InvalidInput(f"{sid!r} holds retention metadata: use set_retention()")
        return sid

    async def set_retention(
        self,
        stream_id: str | None = None,
        *,
        category: str | None = None,
        max_age: timedelta | float | None = None,
        max_count: int | None = None,
        truncate_before: int | None = None,
        protected: bool = False,
    ) -> None:
        """Set the retention metadata of one stream, or of a category (its streams' default).

        Events of a stream with last version ``L`` are *expired* when older than
        ``max_age`` (a timedelta or seconds, by ``recorded_at``), at most ``L - max_count``,
        or below version ``truncate_before``; no read (stream, global log, subscription,
        projection, aggregate load) returns them from the next read on, in any process, and
        :func:`evstore.ops.scavenge` removes them. A stream's own value wins over its
        category's, field by field; a call replaces the target's metadata (no limits:
        clears it). ``protected=True`` makes the target never deletable, for good: no
        limits, no ``delete_stream``, no later change. Versions never renumber.
        """
        policy = make_policy(max_age, max_count, truncate_before, protected)
        if (stream_id is None) == (category is None):
            raise InvalidInput("set_retention takes a stream_id or a category=, not both")
        if stream_id is not None:
            sid = self._writable(stream_id)
            kind, target = "stream", sid
        else:
            check._name(category, "category")
            assert isinstance(category, str)
            if self._separator in category:
                raise InvalidInput(
                    f"category {category!r} contains the separator {self._separator!r}: a "
                    "category is a stream id up to its first separator"
                )
            kind, target = "category", category
        meta = self._retention.stream_id
        await self._retention.set(kind, target, policy, self._placement(meta))

    async def retention(
        self, stream_id: str | None = None, *, category: str | None = None
    ) -> RetentionPolicy:
        """The retention metadata in force: a stream's (its own over its category's), or a
        category's."""
        if (stream_id is None) == (category is None):
            raise InvalidInput("retention takes a stream_id or a category=, not both")
        rules = await self._retention.refresh()
        if stream_id is not None:
            return rules.effective(self._stream(stream_id))
        check._name(category, "category")
        return rules.of_target("category", str(category))

    async def retention_policies(self) -> dict[tuple[str, str], RetentionPolicy]:
        """Every stored retention metadata, ``{("stream"|"category", id): policy}``."""
        rules = await self._retention.refresh()
        found = {("category", k): v for k, v in rules.categories.items()}
        found.update({("stream", k): v for k, v in rules.streams.items()})
        return dict(sorted(found.items()))

    # -- checkpoints -----------------------------------------------------------------------

    async def get_checkpoint(self, name: str) -> int | None:
        """The stored position of checkpoint ``name``, or None.

        Named subscriptions and projections keep theirs under their name (in a store of
        several log partitions a subscription keeps one per partition, ``name#j``).
        """
        return await self._backend.get_checkpoint(self.checkpoint_name(name))

    async def compare_and_set_checkpoint(
        self, name: str, expected: int | None, position: int
    ) -> bool:
        """Store ``position`` as checkpoint ``name`` if it is ``expected`` now (None: not
        stored); return whether it was stored. Of writers racing from the same ``expected``
        at most one succeeds."""
        stored = self.checkpoint_name(name)
        if expected is not None:
            check.non_negative_int(expected, "expected")
        position = check.non_negative_int(position, "position")
        return await self._backend.compare_and_set_checkpoint(stored, expected, position)

    async def list_checkpoints(self) -> dict[str, int]:
        """Every stored checkpoint, ``{name: position}`` in name order (a tenant's store:
        its tenant's, under the names it gave them)."""
        found = await self._backend.list_checkpoints()
        prefix = self._prefix
        if not prefix:
            return found
        return {k[len(prefix) :]: v for k, v in found.items() if k.startswith(prefix)}

    async def delete_checkpoint(self, name: str) -> bool:
        """Remove checkpoint ``name`` (its subscription then starts afresh); return whether
        one was stored."""
        return await self._backend.delete_checkpoint(self.checkpoint_name(name))

    # -- operations ------------------------------------------------------------------------

    async def list_streams(
        self, *, after: str | None = None, limit: int = 100
    ) -> list[StreamSummary]:
        """Streams in id order (with version and state), starting after the id ``after``."""
        if after is not None:
            check.stream_id(after)
        limit = check.positive_int(limit, "limit")
        prefix = self._prefix
        if not prefix:
            return await self._backend.list_streams(after, limit)
        # A tenant's ids are contiguous in id order: start at its prefix, stop past it.
        found = await self._backend.list_streams(max(after or "", prefix), limit)
        return [s for s in found if s.stream_id.startswith(prefix)]

    async def stats(self) -> StoreStats:
        """Counts for operators: ``events`` in the global log, live ``streams`` (those with
        visible events), ``snapshots``, ``checkpoints`` and ``head_position``.

        A tenant's store counts its tenant only: ``events``, ``streams``, ``snapshots``
        and ``head_position`` of its streams (one read per stream of the tenant); it has
        no ``checkpoints`` count (the backend cannot list checkpoints by tenant) and none
        of the backend's extra keys.
        """
        if not self._prefix:
            return cast(StoreStats, await self._backend.stats())
        counts = StoreStats(events=0, streams=0, snapshots=0)
        after: str | None = None
        while page := await self.list_streams(after=after, limit=500):
            for summary in page:
                if summary.state == "tombstoned":
                    continue  # a hard delete removed its events and its snapshot
                counts["events"] += summary.version  # soft-deleted events stay in the log
                counts["streams"] += summary.state == "live"
                if await self._backend.get_snapshot(summary.stream_id) is not None:
                    counts["snapshots"] += 1
            after = page[-1].stream_id
        counts["head_position"] = await self.head_position()
        return counts

    async def close(self) -> None:
        """Close the backend's connections. Closing twice is harmless."""
        if not self._closed:
            self._closed = True
            await self._backend.close()

    async def __aenter__(self) -> AsyncEventStore:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
