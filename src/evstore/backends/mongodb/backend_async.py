"""The MongoDB backend (pymongo's native asyncio client); ``backend.py`` beside it is its
generated twin on ``MongoClient``.

Atomicity - one multi-document transaction per append (the seed's choice). A commit
document holding the batch would be atomic without transactions, but MongoDB offers no
gap-free global order without one: an append has to take a position number *and* become
visible as one step, and only a transaction ties the two together. Transactions need a
replica set (a single-node one is enough); sharded clusters run them as distributed
transactions (see ``docs/mongodb.md``).

Global order - a counter document. Every append first does ``$inc`` on the one document
``counters/{_id: "position"}`` inside its transaction and numbers its events from the
value it got. MongoDB transactions are first-writer-wins: a second transaction that writes
the counter while the first is open, or whose snapshot predates the first's commit, fails
with ``WriteConflict`` (a ``TransientTransactionError``) and is retried here. So a
transaction can only take positions after every earlier holder of the counter has
committed: positions are handed out in commit order, and an event can never become visible
below a position a reader has already passed. The counter's value is therefore also a safe
horizon: every position up to it is committed (or rolled back, leaving a hole that nothing
will ever fill). ``read_all`` reads the counter first, then only positions up to it, and
returns it as ``LogPage.scanned_to`` when the page is not full, so filtered subscribers
advance past events they do not want. The price: appends are serialized through one
document (each one a short transaction); that is the cost of a global log on MongoDB.

Concurrency on one stream - the stream's document (``streams/{_id: stream_id}``) holds its
version and is rewritten by every append, so racing appends of one stream also conflict;
the loser is retried, re-reads the version and fails the expected-version check
(``ConcurrencyError``). The unique index on ``(stream_id, version)`` is the last word: two
events can never share a version, whatever happens above it. ``event_id`` is unique too,
which makes a repeated append (a retry after a lost reply) return the original result.

Transient errors (write conflicts, elections, dropped connections) are retried inside with
jittered backoff for up to ``retry_timeout`` seconds; the user sees success,
``ConcurrencyError`` or ``BackendUnavailable``. A commit whose outcome is unknown is
retried as a commit; if that does not settle it, repeating the append with the same event
ids is safe - it is idempotent.

Reads of the global log and the head use read concern "majority" and transactions commit
with write concern ``{w: "majority", j: true}`` (unless the URL chooses otherwise): an
acknowledged append is journaled on a majority, and a reader is never given an event that
a failover could roll back and renumber.

A writer killed in the middle of an append leaves its transaction open on the server until
the server reaps it (``transactionLifetimeLimitSeconds``, 60 s by default); until then it
holds the counter, and other appends wait (they retry; ``retry_timeout`` defaults to 90 s so
that they outlast it). Lower that server parameter where writers may die often.

Live delivery - change streams as a wake-up, never as the data. One background watcher per
backend tails the counter document's change stream; ``wait_for_events`` returns when it
fires or when its timeout passes (so without change streams it degrades to polling). The
subscription then reads the collection from its own checkpoint. A resume token therefore
never has to be kept: when the watcher's token falls out of the oplog
(``ChangeStreamHistoryLost``, code 286) it reopens from now and wakes every waiter, and
they catch up by position - nothing is skipped, nothing restarts from "now".

Documents - payloads are stored as the codec's JSON bytes (BSON binary), times as integer
microseconds since the epoch (BSON dates keep only milliseconds). User strings (stream ids,
types, names) only ever appear as values compared for equality, never as field names or
operators, so ``{"$gt": ""}`` is just a stream id.
"""

from __future__ import annotations

import contextlib
import random
import re
import time
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.errors import (
    BulkWriteError,
    CollectionInvalid,
    ConfigurationError,
    DocumentTooLarge,
    DuplicateKeyError,
    InvalidName,
    OperationFailure,
    PyMongoError,
)
from pymongo.read_concern import ReadConcern
from pymongo.write_concern import WriteConcern

from evstore import _aio
from evstore._types import AppendResult, ExpectedVersion
from evstore.errors import (
    AppendConditionFailed,
    BackendUnavailable,
    ConcurrencyError,
    EvstoreError,
    InvalidInput,
    StreamDeleted,
    StreamNotFound,
)
from evstore.spi._errormap import ErrorMap
from evstore.spi._model import (
    UNREADABLE,
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
    check_expected,
    replayed_result,
    replayed_results,
    tags_of,
)
from evstore.spi.backend_async import (
    AsyncCheckpointedAppends,
    AsyncDeadLetterStore,
    AsyncEventLog,
    AsyncOperations,
    AsyncPartitionedLog,
    AsyncSnapshotStore,
    AsyncTransactionalCheckpoints,
    AsyncTruncatableLog,
)

COUNTER = "position"
SHIFT = 40  # an event's _id is (partition << SHIFT) + its position in the partition
_MASK = (1 << SHIFT) - 1
HISTORY_LOST = 286  # ChangeStreamHistoryLost

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_FIELDS = {
    "stream_id": 1,
    "version": 1,
    "event_id": 1,
    "type": 1,
    "data": 1,
    "metadata": 1,
    "schema_version": 1,
    "occurred_at": 1,
    "recorded_at": 1,
}


def _to_us(value: datetime) -> int:
    return (value - _EPOCH) // _US


def _from_us(value: int) -> datetime:
    """Microseconds since the epoch; :data:`UNREADABLE` for a value out of range."""
    try:
        return _EPOCH + timedelta(microseconds=value)
    except (OverflowError, TypeError):
        return UNREADABLE


def _counter_id(partition: int) -> str:
    """The counter document of a log partition (partition 0's is the one-log counter)."""
    return COUNTER if partition == 0 else f"{COUNTER}:{partition}"


def _record(doc: dict[str, Any]) -> EventRecord:
    key = doc["_id"]
    return EventRecord(
        doc["stream_id"],
        doc["version"],
        key & _MASK,
        doc["event_id"],
        doc["type"],
        bytes(doc["data"]),
        bytes(doc["metadata"]),
        doc["schema_version"],
        _from_us(doc["occurred_at"]),
        _from_us(doc["recorded_at"]),
        key >> SHIFT,
    )


def _state(stream: dict[str, Any] | None, stream_id: str) -> tuple[int, bool, int]:
    """(last version ever stored, whether readers see events, last soft-deleted version)."""
    if stream is None:
        return 0, False, 0
    if stream["tombstoned"]:
        raise StreamDeleted(stream_id)
    last, hidden = int(stream["version"]), int(stream["deleted_through"])
    return last, last > hidden, hidden


def _duplicate(error: BulkWriteError) -> bool:
    return any(e.get("code") == 11000 for e in error.details.get("writeErrors", []))


class _CommitUnknown(Exception):
    """A commit's outcome is unknown (the connection broke while it ran)."""


class _WorkFailed(Exception):
    """Carries the exception of a projection's own work out of the retry loop, untouched."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(repr(error))
        self.error = error


def _tag_query(query: TagQuery, after: int) -> dict[str, Any]:
    """The events after ``after`` matching ``query`` (tags through the sparse tags index)."""
    found: dict[str, Any] = {"_id": {"$gt": after}}
    items = []
    for types, tags in query.items:
        item: dict[str, Any] = {}
        if tags:
            item["tags"] = {"$all": list(tags)}
        if types:
            item["type"] = {"$in": list(types)}
        if not item:
            return found  # an empty item matches every event
        items.append(item)
    if items:
        found["$or"] = items
    return found


def _log_query(after: int, head: int, where: LogFilter) -> dict[str, Any]:
    query: dict[str, Any] = {"_id": {"$gt": after, "$lte": head}}
    if where.types is not None:
        query["type"] = {"$in": list(where.types)}
    if where.type_prefix is not None:
        query.setdefault("type", {})["$regex"] = "^" + re.escape(where.type_prefix)
    if where.category is not None:
        query["category"] = {"$eq": where.category}
    if where.stream_prefix is not None:
        query["stream_id"] = {"$regex": "^" + re.escape(where.stream_prefix)}
    if where.stream_id is not None:
        query.setdefault("stream_id", {})["$eq"] = where.stream_id
    if where.partition is not None:
        slot, count = where.partition
        query["partition_hash"] = {"$mod": [count, slot]}
    return query


# BSONObjectTooLarge, and a write too large for one transaction.
_TOO_LARGE = (10334, 17419)


def _error_map(database: str) -> ErrorMap:
    """pymongo's errors as evstore errors: the one translation table of this backend."""

    def unavailable(e: PyMongoError) -> EvstoreError:
        # Cut: a write error's text carries the whole document it refused.
        return BackendUnavailable(f"MongoDB error on {database!r}: {str(e)[:500]}")

    def failure(e: OperationFailure) -> EvstoreError:
        errors = (e.details or {}).get("writeErrors", []) if isinstance(e, BulkWriteError) else []
        if e.code in _TOO_LARGE or any(w.get("code") in _TOO_LARGE for w in errors):
            return InvalidInput(
                "an event or snapshot is larger than MongoDB's document limit (16 MiB once "
                "encoded); nothing was written - keep large payloads elsewhere"
            )
        return unavailable(e)

    return ErrorMap(
        {
            OperationFailure: failure,
            DocumentTooLarge: lambda e: InvalidInput(
                f"too large for one MongoDB document (16 MB): {e}"
            ),
            ConfigurationError: lambda e: InvalidInput(f"MongoDB configuration: {e}"),
            InvalidName: lambda e: InvalidInput(f"MongoDB configuration: {e}"),
            PyMongoError: unavailable,
        }
    )


class AsyncMongoBackend(
    AsyncEventLog,
    AsyncSnapshotStore,
    AsyncTransactionalCheckpoints,
    AsyncDeadLetterStore,
    AsyncOperations,
    AsyncPartitionedLog,
    AsyncTruncatableLog,
    AsyncCheckpointedAppends,
):
    """Streams, the global log, snapshots and checkpoints in one MongoDB database."""

    # Stream ids and types are indexed values; MongoDB >= 4.2 has no index key limit, and
    # this is the length tested on SecantusDB.
    max_name_bytes = 4_096

    def __init__(
        self,
        client: AsyncMongoClient[dict[str, Any]],
        database: str,
        *,
        retry_timeout: float,
        sharded: bool = False,
        partitions: int = 1,
    ) -> None:
        self.log_partitions = partitions
        """The store's log partitions: its recorded count, checked when the schema is made."""
        self.transaction_retries = 0
        """How many transactions were retried after a transient error (write conflicts)."""
        self._client = client
        self._sharded = sharded
        self._db = client[database]
        self._error_map = _error_map(database)
        self._retry_timeout = retry_timeout
        # Majority unless the URL asked for something else: never hand out rolled-back data.
        read = client.read_concern if client.read_concern.level else ReadConcern("majority")
        write = client.write_concern
        if not write.document:
            # j=True: acknowledged means in the journal, on mongod and on SecantusDB alike
            # (measured: without it a SIGKILLed SecantusDB lost acknowledged appends).
            write = WriteConcern("majority", j=True)
        self._read_concern = read
        self._write_concern = write
        self._events = self._db.get_collection("events", read_concern=read)
        self._streams = self._db.get_collection("streams", read_concern=read)
        self._counters = self._db.get_collection("counters", read_concern=read)
        self._snapshots = self._db.get_collection("snapshots", write_concern=write)
        self._checkpoints = self._db.get_collection(
            "checkpoints", read_concern=read, write_concern=write
        )
        self._letters = self._db.get_collection(
            "dead_letters", read_concern=read, write_concern=write
        )
        self._ready = False
        self._closed = False
        # Appends of one process to one partition take turns: they would all update the
        # partition's counter document and conflict, and a loser retrying with backoff
        # could lose for ever (an eventsourcing test of 10 threads starved one for 90 s).
        self._appending = [_aio.Lock() for _ in range(partitions)]
        self._changed = _aio.Event()
        self._watcher: _aio.Runner | None = None
        self._watching = True
        self._token: Any = None  # the watcher's resume token (in memory only)
        self.history_lost = 0
        """How often the watcher's resume token had fallen out of the oplog."""

    # -- set-up and error boundary ---------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _errors(self) -> AsyncIterator[None]:
        """The one place where driver errors become evstore errors."""
        if self._closed:
            raise BackendUnavailable("the store is closed")
        with self._error_map:
            if not self._ready:
                await self._create_schema()
            yield

    async def _create_schema(self) -> None:
        events = self._db.events
        if self._sharded:
            # Shard keys led by the log partition (docs/mongodb.md, "Sharding"): events
            # {log_partition, stream_id}, streams {log_partition, _id}, counters
            # {log_partition}. A sharded collection enforces only unique indexes prefixed by
            # its shard key; a stream lives in one log partition, so this is still "one event
            # per (stream, version)". Event ids: see _append.
            await events.create_index(
                [("log_partition", ASCENDING), ("stream_id", ASCENDING), ("version", ASCENDING)],
                unique=True,
                name="shard_stream_version",
            )
            await events.create_index("event_id", name="event_id")
            await self._db.streams.create_index(
                [("log_partition", ASCENDING), ("_id", ASCENDING)], name="shard_key"
            )
            await self._db.counters.create_index("log_partition", name="shard_key")
        else:
            await events.create_index(
                [("stream_id", ASCENDING), ("version", ASCENDING)],
                unique=True,
                name="stream_version",
            )
            await events.create_index("event_id", unique=True, name="event_id")
        await events.create_index(
            [("type", ASCENDING), ("occurred_at", ASCENDING)], name="type_occurred"
        )
        await events.create_index([("category", ASCENDING), ("_id", ASCENDING)], name="category")
        await events.create_index(
            [("tags", ASCENDING), ("_id", ASCENDING)], name="tags", sparse=True
        )
        await events.create_index(
            [("partition_key", ASCENDING), ("_id", ASCENDING)], name="partition_key"
        )
        await self._db.dead_letters.create_index(
            [("name", ASCENDING), ("position", ASCENDING)], unique=True, name="name_position"
        )
        # Older servers cannot create collections inside a transaction: create them now.
        existing = set(await self._db.list_collection_names())
        for name in ("streams", "snapshots", "checkpoints", "counters"):
            if name not in existing:
                try:
                    await self._db.create_collection(name)
                except CollectionInvalid:
                    pass  # created by another process meanwhile
                except OperationFailure as e:
                    if e.code != 48:  # NamespaceExists
                        raise
        await self._record_partitions()
        for j in range(self.log_partitions):
            await self._db.counters.update_one(
                self._where(_counter_id(j), j),
                {"$setOnInsert": {"value": 0, "partition": j}, "$set": {"log_partition": j}},
                upsert=True,
            )
        self._ready = True

    async def _record_partitions(self) -> None:
        """Record the log partition count in a new store; refuse a store made with another."""
        counter = await self._db.counters.find_one({"_id": COUNTER})
        new = counter is None or int(counter["value"]) == 0
        await self._db.meta.update_one(
            {"_id": "partitions"},
            {"$setOnInsert": {"value": self.log_partitions if new else 1}},
            upsert=True,
        )
        meta = await self._db.meta.find_one({"_id": "partitions"})
        stored = 1 if meta is None else int(meta["value"])
        if stored != self.log_partitions:
            raise InvalidInput(
                f"MongoDB database {self._db.name!r} was created with partitions={stored}, not "
                f"{self.log_partitions}: the number of log partitions is fixed when a store "
                "is created (copy the events into a new store to change it)"
            )

    def _where(self, key: str, part: int) -> dict[str, Any]:
        """The filter of a counter or stream document an append of log partition ``part``
        writes: with ``sharded=True`` it names the shard key, so the write targets the
        partition's shard (and an upsert has the shard key MongoDB requires)."""
        return {"_id": key, "log_partition": part} if self._sharded else {"_id": key}

    async def _find_stream(
        self, session: AsyncClientSession, stream_id: str, part: int, counter: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """The stream's document for an append to ``part``, and the filter to update it
        (``counter``: the partition's counter document, as this transaction updated it)."""
        where = self._where(stream_id, part)
        stream = await self._db.streams.find_one(where, session=session)
        if stream is None and self._sharded and counter.get("orphans"):
            # Made by delete_stream/truncate_stream before the stream's first append, which
            # cannot know its partition: kept under log_partition null until that append.
            # Only looked for once such a document was ever made (see _stream_key): it is
            # on partition 0's shard, and would make every first append cross shards.
            orphan = {"_id": stream_id, "log_partition": None}
            stream = await self._db.streams.find_one(orphan, session=session)
            if stream is not None:
                where = orphan
        return stream, where

    async def _stream_key(
        self, session: AsyncClientSession, stream: dict[str, Any] | None, stream_id: str
    ) -> dict[str, Any]:
        """The filter of a stream document written outside an append (delete, truncate).

        With ``sharded=True``, a document made for a stream never appended to has no known
        partition (``log_partition`` null); this marks every partition's counter, which
        also makes the transaction conflict with every append running meanwhile, so an
        append either sees the mark (and looks for the document) or committed first (and
        this transaction, retried, finds its stream document).
        """
        if not self._sharded:
            return {"_id": stream_id}
        if stream is None:
            ids = [_counter_id(j) for j in range(self.log_partitions)]
            await self._db.counters.update_many(
                {"_id": {"$in": ids}}, {"$inc": {"orphans": 1}}, session=session
            )
        return {
            "_id": stream_id,
            "log_partition": None if stream is None else stream.get("log_partition"),
        }

    async def _unique_across_partitions(
        self, appends: Sequence[PendingAppend]
    ) -> list[AppendResult] | None:
        """With ``sharded=True`` and several log partitions: the original results when these
        event ids are already stored in any partition (``DuplicateEventId`` when elsewhere).

        Looked up before the transaction, so that the transaction stays on its partition's
        shard; inside it the ids are looked up in its own partition (see ``_append``).
        """
        if not (self._sharded and self.log_partitions > 1):
            return None
        stored = await self._stored([e for a in appends for e in a.events])
        return replayed_results(appends, stored) if stored else None

    async def _transaction(
        self, body: Callable[[AsyncClientSession], Any], *, verify: bool = False
    ) -> Any:
        """Run ``body(session)`` in a transaction, retrying transient failures.

        With ``verify``, a commit whose outcome is unknown raises ``_CommitUnknown`` for the
        caller to check what is stored, instead of retrying the commit: a server restarted
        meanwhile may acknowledge a retried commit of a transaction it no longer has.
        """
        deadline = time.monotonic() + self._retry_timeout
        delay = 0.002
        while True:
            try:
                async with self._client.start_session() as session:
                    await session.start_transaction(write_concern=self._write_concern)
                    try:
                        result = await body(session)
                    except BaseException:
                        if session.in_transaction:
                            await session.abort_transaction()
                        raise
                    if session.in_transaction:  # body may have aborted on purpose
                        await self._commit(session, deadline, verify)
                    return result
            except PyMongoError as e:
                if not e.has_error_label("TransientTransactionError"):
                    raise
                self.transaction_retries += 1
                if time.monotonic() > deadline:
                    raise BackendUnavailable(
                        f"MongoDB kept failing the transaction for {self._retry_timeout}s "
                        f"(last error: {e}); nothing was written"
                    ) from e
            await _aio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 0.25)

    async def _commit(self, session: AsyncClientSession, deadline: float, verify: bool) -> None:
        while True:
            try:
                await session.commit_transaction()
                return
            except PyMongoError as e:
                if not e.has_error_label("UnknownTransactionCommitResult"):
                    raise
                if verify:
                    raise _CommitUnknown(str(e)) from e
                if time.monotonic() > deadline:
                    raise BackendUnavailable(
                        f"MongoDB did not confirm the commit within {self._retry_timeout}s "
                        f"({e}); the append may or may not be stored - repeating it with "
                        "the same event ids is safe"
                    ) from e
                await _aio.sleep(0.05)

    # -- streams ---------------------------------------------------------------------------

    async def append(
        self,
        stream_id: str,
        events: Sequence[PendingEvent],
        expected: ExpectedVersion,
        placement: Placement,
    ) -> AppendResult:
        return await self._append(stream_id, events, expected, placement, None)

    async def _append(
        self,
        stream_id: str,
        events: Sequence[PendingEvent],
        expected: ExpectedVersion,
        placement: Placement,
        unless: tuple[TagQuery, int] | None,
    ) -> AppendResult:
        n = len(events)
        part = placement.log_partition

        async def body(session: AsyncClientSession) -> AppendResult:
            # The counter first: concurrent appends conflict here, before doing any work.
            # One counter per log partition: appends to other partitions never touch it.
            counter = await self._db.counters.find_one_and_update(
                self._where(_counter_id(part), part),
                {"$inc": {"value": n}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
                session=session,
            )
            assert counter is not None  # upsert with ReturnDocument.AFTER
            end = int(counter["value"])
            if unless is not None:
                # After the counter: an append that committed since this transaction's
                # snapshot conflicts there (this one is retried with a newer snapshot), and
                # one that commits later conflicts with this one: the check sees every
                # event that can come before ours.
                query, after = unless
                found = await self._db.events.find_one(
                    _tag_query(query, after), {"_id": 1}, sort=[("_id", ASCENDING)], session=session
                )
                if found is not None:
                    raise AppendConditionFailed(stream_id, after, int(found["_id"]))
            if self._sharded and await self._db.events.find_one(
                {"log_partition": part, "event_id": {"$in": [e.event_id for e in events]}},
                {"_id": 1},
                session=session,
            ):
                # No unique event_id index on a sharded collection: look before inserting,
                # in this partition only (one shard). Every append to the partition updated
                # its counter first, so this snapshot holds all of them: exact here. Other
                # partitions were looked up before the transaction.
                raise DuplicateKeyError("event_id already stored", 11000)
            stream, where = await self._find_stream(session, stream_id, part, counter)
            last, visible, _ = _state(stream, stream_id)
            check_expected(stream_id, expected, last, visible)
            await self._insert(
                session, PendingAppend(stream_id, events, expected, placement), last, end - n, where
            )
            return AppendResult(last + n, tuple(range(end - n + 1, end + 1)), part)

        async with self._errors(), self._appending[part]:
            try:
                pending = PendingAppend(stream_id, events, expected, placement)
                earlier = await self._unique_across_partitions([pending])
                if earlier is not None:
                    return earlier[0]
                while True:
                    try:
                        result: AppendResult = await self._transaction(body, verify=True)
                        return result
                    except _CommitUnknown:
                        # Stored -> the original result; not stored -> it never happened.
                        stored = await self._stored(events)
                        if stored:
                            return replayed_result(stream_id, events, expected, stored)
            except (ConcurrencyError, DuplicateKeyError, BulkWriteError) as e:
                if isinstance(e, BulkWriteError) and not _duplicate(e):
                    raise
                # A repeat of a stored append fails the version check or the event_id
                # index; only then is it worth looking the ids up.
                stored = await self._stored(events)
                if stored:
                    return replayed_result(stream_id, events, expected, stored)
                if isinstance(e, ConcurrencyError):
                    raise
                # (stream_id, version) taken: another append won (see the docstring).
                version = await self.stream_version(stream_id)
                raise ConcurrencyError(stream_id, expected, version) from e

    # -- dynamic consistency boundaries (TaggedLog) -----------------------------------------

    supports_tags = True

    async def read_tagged(self, query: TagQuery, after: int, limit: int) -> LogPage:
        async with self._errors():
            head = await self._head()
            if head <= after:
                return LogPage([], max(head, 0))
            where = _tag_query(query, after)
            where["_id"]["$lte"] = head
            cursor = self._events.find(where, _FIELDS, sort=[("_id", ASCENDING)], limit=limit)
            events = [_record(doc) for doc in await cursor.to_list()]
        return LogPage(events, events[-1].position if len(events) == limit else head)

    async def append_unless(
        self,
        stream_id: str,
        events: Sequence[PendingEvent],
        expected: ExpectedVersion,
        placement: Placement,
        query: TagQuery,
        after: int,
    ) -> AppendResult:
        return await self._append(stream_id, events, expected, placement, (query, after))

    async def append_many(self, appends: Sequence[PendingAppend]) -> list[AppendResult]:
        """Every part in one transaction, across log partitions too: one ``$inc`` per
        partition touched (each counter serializes its partition's appends, so an append
        spanning k partitions contends with the appends of all k)."""
        events = [e for a in appends for e in a.events]

        async def body(session: AsyncClientSession) -> list[AppendResult]:
            return await self._append_many_in(session, appends)

        async with self._errors():
            try:
                earlier = await self._unique_across_partitions(appends)
                if earlier is not None:
                    return earlier
                while True:
                    try:
                        done: list[AppendResult] = await self._transaction(body, verify=True)
                        return done
                    except _CommitUnknown:
                        stored = await self._stored(events)
                        if stored:
                            return replayed_results(appends, stored)
            except (ConcurrencyError, DuplicateKeyError, BulkWriteError) as e:
                if isinstance(e, BulkWriteError) and not _duplicate(e):
                    raise
                stored = await self._stored(events)
                if stored:
                    return replayed_results(appends, stored)
                if isinstance(e, ConcurrencyError):
                    raise
                # (stream_id, version) taken by a racing append: report the first stream
                # whose expected version no longer holds.
                for a in appends:
                    version = await self.stream_version(a.stream_id)
                    check_expected(a.stream_id, a.expected, version, version > 0)
                raise

    async def _append_many_in(
        self, session: AsyncClientSession, appends: Sequence[PendingAppend]
    ) -> list[AppendResult]:
        """Every part of a multi-stream append inside the session's transaction."""
        counts: dict[int, int] = {}
        for a in appends:
            part = a.placement.log_partition
            counts[part] = counts.get(part, 0) + len(a.events)
        events = [e for a in appends for e in a.events]
        ends: dict[int, int] = {}
        counters: dict[int, dict[str, Any]] = {}
        for part in sorted(counts):
            counter = await self._db.counters.find_one_and_update(
                self._where(_counter_id(part), part),
                {"$inc": {"value": counts[part]}},
                upsert=True,
                return_document=ReturnDocument.AFTER,
                session=session,
            )
            assert counter is not None  # upsert with ReturnDocument.AFTER
            ends[part] = int(counter["value"]) - counts[part]  # the last position before
            counters[part] = counter
        if self._sharded and await self._db.events.find_one(
            {
                "log_partition": {"$in": sorted(counts)},
                "event_id": {"$in": [e.event_id for e in events]},
            },
            {"_id": 1},
            session=session,
        ):
            raise DuplicateKeyError("event_id already stored", 11000)
        lasts = []
        for a in appends:  # every check before the first write
            part = a.placement.log_partition
            stream, where = await self._find_stream(session, a.stream_id, part, counters[part])
            last, visible, _ = _state(stream, a.stream_id)
            check_expected(a.stream_id, a.expected, last, visible)
            lasts.append((last, where))
        results = []
        for a, (last, where) in zip(appends, lasts, strict=True):
            part = a.placement.log_partition
            start, ends[part] = ends[part], ends[part] + len(a.events)
            await self._insert(session, a, last, start, where)
            positions = tuple(range(start + 1, start + len(a.events) + 1))
            results.append(AppendResult(last + len(a.events), positions, part))
        return results

    async def _insert(
        self,
        session: AsyncClientSession,
        a: PendingAppend,
        last: int,
        start: int,
        where: dict[str, Any],
    ) -> None:
        """Store one checked part of a multi-stream append at positions ``start + 1 ...``
        (``where``: the stream document's filter, from ``_find_stream``)."""
        placement = a.placement
        base = placement.log_partition << SHIFT  # 0 in a store of one partition: _id = position
        now = _to_us(datetime.now(UTC))
        docs = []
        for i, e in enumerate(a.events, start=1):
            doc = {
                "_id": base + start + i,
                "stream_id": a.stream_id,
                "version": last + i,
                "event_id": e.event_id,
                "type": e.type,
                "data": e.data,
                "metadata": e.metadata,
                "schema_version": e.schema_version,
                "occurred_at": _to_us(e.occurred_at),
                "recorded_at": now if e.recorded_at is None else _to_us(e.recorded_at),
                "category": placement.category,
                "partition_key": placement.partition_key,
                "partition_hash": placement.partition_hash,
                "log_partition": placement.log_partition,  # leads the sharded layout's keys
            }
            tags = tags_of(e)
            if tags:  # only tagged events carry the field (and enter the sparse index)
                doc["tags"] = list(tags)
            docs.append(doc)
        await self._db.events.insert_many(docs, ordered=True, session=session)
        await self._db.streams.update_one(
            where,
            {
                "$set": {"version": last + len(a.events), "log_partition": placement.log_partition},
                "$setOnInsert": {
                    "deleted_through": 0,
                    "tombstoned": False,
                    "partition_hash": placement.partition_hash,
                },
            },
            upsert=True,
            session=session,
        )

    async def _stored(self, events: Sequence[PendingEvent]) -> list[EventRecord]:
        ids = [e.event_id for e in events]
        cursor = self._events.find({"event_id": {"$in": ids}}, _FIELDS)
        return [_record(doc) for doc in await cursor.to_list()]

    async def read_stream(
        self,
        stream_id: str,
        from_version: int,
        to_version: int | None,
        limit: int | None,
        backwards: bool,
    ) -> list[EventRecord]:
        async with self._errors():
            stream = await self._streams.find_one({"_id": stream_id})
            last, _, hidden = _state(stream, stream_id)
            if stream is None:
                return []
            low = max(from_version, hidden + 1)
            high = last if to_version is None else min(to_version, last)
            if low > high:
                return []
            query: dict[str, Any] = {"stream_id": stream_id, "version": {"$gte": low, "$lte": high}}
            if self._sharded and stream.get("log_partition") is not None:
                query["log_partition"] = stream["log_partition"]  # one shard, not all
            cursor = self._events.find(
                query,
                _FIELDS,
                sort=[("version", DESCENDING if backwards else ASCENDING)],
                limit=limit or 0,
            )
            return [_record(doc) for doc in await cursor.to_list()]

    async def read_all(self, after: int, limit: int, where: LogFilter) -> LogPage:
        if self.log_partitions > 1:
            raise InvalidInput("a store of several log partitions is read one partition at a time")
        return await self.read_partition(0, after, limit, where)

    async def read_partition(
        self, partition: int, after: int, limit: int, where: LogFilter
    ) -> LogPage:
        base = partition << SHIFT
        async with self._errors():
            counter = await self._counters.find_one({"_id": _counter_id(partition)})
            head = 0 if counter is None else int(counter["value"])
            if head <= after:
                return LogPage([], max(head, 0))
            query = _log_query(base + after, base + head, where)
            if self._sharded:
                query["log_partition"] = partition  # one shard, not all
            cursor = self._events.find(
                query,
                _FIELDS,
                sort=[("_id", ASCENDING)],
                limit=limit,
            )
            events = [_record(doc) for doc in await cursor.to_list()]
        return LogPage(events, events[-1].position if len(events) == limit else head)

    async def partition_heads(self) -> list[int]:
        async with self._errors():
            return await self._heads()

    async def _heads(self) -> list[int]:
        ids = [_counter_id(j) for j in range(self.log_partitions)]
        heads = dict.fromkeys(ids, 0)
        async for doc in self._counters.find({"_id": {"$in": ids}}):
            heads[doc["_id"]] = int(doc["value"])
        return list(heads.values())

    async def _head(self) -> int:
        if self.log_partitions > 1:  # the sum of the partition heads (see PartitionedLog)
            return sum(await self._heads())
        counter = await self._counters.find_one({"_id": COUNTER})
        return 0 if counter is None else int(counter["value"])

    async def stream_version(self, stream_id: str) -> int:
        async with self._errors():
            last, visible, _ = _state(await self._streams.find_one({"_id": stream_id}), stream_id)
        return last if visible else 0

    async def head_position(self) -> int:
        async with self._errors():
            return await self._head()

    async def delete_stream(self, stream_id: str, hard: bool, expected: ExpectedVersion) -> None:
        async def body(session: AsyncClientSession) -> None:
            stream = await self._db.streams.find_one({"_id": stream_id}, session=session)
            last, visible, _ = _state(stream, stream_id)
            check_expected(stream_id, expected, last, visible)
            if not hard and not visible:
                raise StreamNotFound(stream_id)
            await self._db.snapshots.delete_one({"_id": stream_id}, session=session)
            if hard:
                await self._db.events.delete_many({"stream_id": stream_id}, session=session)
            await self._db.streams.update_one(
                await self._stream_key(session, stream, stream_id),
                {
                    "$set": {"version": last, "deleted_through": last, "tombstoned": hard},
                    "$setOnInsert": {"partition_hash": 0},
                },
                upsert=True,
                session=session,
            )

        async with self._errors():
            await self._transaction(body)

    async def truncate_stream(self, stream_id: str, before: int) -> int:
        async def body(session: AsyncClientSession) -> int:
            stream = await self._db.streams.find_one({"_id": stream_id}, session=session)
            if stream is not None and stream["tombstoned"]:
                return 0
            if stream is None or before - 1 >= int(stream["version"]):
                # Cut to the end: hidden, as soft-deleted through it.
                await self._db.streams.update_one(
                    await self._stream_key(session, stream, stream_id),
                    {
                        "$set": {"version": before - 1, "deleted_through": before - 1},
                        "$setOnInsert": {"tombstoned": False, "partition_hash": 0},
                    },
                    upsert=True,
                    session=session,
                )
            result = await self._db.events.delete_many(
                {"stream_id": stream_id, "version": {"$lt": before}}, session=session
            )
            return int(result.deleted_count)

        async with self._errors():
            removed: int = await self._transaction(body)
            return removed

    # -- snapshots -------------------------------------------------------------------------

    async def get_snapshot(self, stream_id: str) -> SnapshotRecord | None:
        async with self._errors():
            _state(await self._streams.find_one({"_id": stream_id}), stream_id)
            doc = await self._db.snapshots.find_one({"_id": stream_id})
        if doc is None:
            return None
        return SnapshotRecord(
            doc["_id"],
            doc["version"],
            bytes(doc["data"]),
            doc["schema_version"],
            _from_us(doc["taken_at"]),
        )

    async def save_snapshot(self, snapshot: SnapshotRecord) -> None:
        async with self._errors():
            stream_id = snapshot.stream_id
            _state(await self._streams.find_one({"_id": stream_id}), stream_id)
            # Matches only an older (or equal) snapshot; when a newer one is stored the
            # upsert collides with its _id and the older snapshot is dropped.
            with contextlib.suppress(DuplicateKeyError):
                await self._snapshots.update_one(
                    {"_id": stream_id, "version": {"$lte": snapshot.version}},
                    {
                        "$set": {
                            "version": snapshot.version,
                            "data": snapshot.data,
                            "schema_version": snapshot.schema_version,
                            "taken_at": _to_us(snapshot.taken_at),
                        }
                    },
                    upsert=True,
                )

    # -- checkpoints and dead letters ------------------------------------------------------

    async def get_checkpoint(self, name: str) -> int | None:
        async with self._errors():
            doc = await self._checkpoints.find_one({"_id": name})
        return None if doc is None else int(doc["position"])

    async def set_checkpoint(self, name: str, position: int) -> None:
        async with self._errors():
            await self._checkpoints.update_one(
                {"_id": name}, {"$set": {"position": position}}, upsert=True
            )

    async def list_checkpoints(self) -> dict[str, int]:
        async with self._errors():
            docs = await self._checkpoints.find({}).sort("_id", 1).to_list()
        return {str(doc["_id"]): int(doc["position"]) for doc in docs}

    async def compare_and_set_checkpoint(
        self, name: str, expected: int | None, position: int
    ) -> bool:
        async with self._errors():
            if expected is None:
                try:
                    await self._checkpoints.insert_one({"_id": name, "position": position})
                except DuplicateKeyError:
                    return False
                return True
            done = await self._checkpoints.update_one(
                {"_id": name, "position": expected}, {"$set": {"position": position}}
            )
            return done.matched_count == 1

    async def delete_checkpoint(self, name: str) -> bool:
        async with self._errors():
            done = await self._checkpoints.delete_one({"_id": name})
        return done.deleted_count == 1

    async def run_with_checkpoint(
        self, name: str, expected: int | None, position: int, work: Callable[[Any], Any]
    ) -> bool:
        """Run ``work(session)`` and move checkpoint ``name`` in one transaction.

        ``work`` gets the ``ClientSession`` (``AsyncClientSession`` under asyncio) with the
        transaction open and passes ``session=`` to its own read-model writes, in this
        database (``session.client[...]``). The checkpoint is written first, so a second
        instance of the projection conflicts at once and then sees the moved checkpoint.
        """
        return await self._checkpointed(name, expected, position, work, emits=False) is not None

    async def append_with_checkpoint(
        self, name: str, expected: int | None, position: int, work: Callable[[Any], Any]
    ) -> list[AppendResult] | None:
        """``run_with_checkpoint`` whose ``work`` returns appends for the same transaction
        (stored ids are looked up first, in the transaction: a repeat returns them)."""
        return await self._checkpointed(name, expected, position, work, emits=True)

    async def _checkpointed(
        self,
        name: str,
        expected: int | None,
        position: int,
        work: Callable[[Any], Any],
        *,
        emits: bool,
    ) -> list[AppendResult] | None:
        async def body(session: AsyncClientSession) -> list[AppendResult] | None:
            before = await self._db.checkpoints.find_one_and_update(
                {"_id": name},
                {"$set": {"position": position}},
                upsert=True,
                return_document=ReturnDocument.BEFORE,
                session=session,
            )
            if (None if before is None else int(before["position"])) != expected:
                await session.abort_transaction()
                return None
            try:
                appends = await _aio.call(work, session)
            except Exception as e:
                raise _WorkFailed(e) from e
            if not session.in_transaction:
                raise InvalidInput(
                    f"projection {name!r}: the handler ended the transaction; it must not "
                    "commit or abort the session it is given"
                )
            if not (emits and appends):
                return []
            ids = [e.event_id for a in appends for e in a.events]
            cursor = self._db.events.find({"event_id": {"$in": ids}}, _FIELDS, session=session)
            stored = [_record(doc) for doc in await cursor.to_list()]
            if stored:
                return replayed_results(appends, stored)
            return await self._append_many_in(session, appends)

        try:
            async with self._errors():
                results: list[AppendResult] | None = await self._transaction(body)
        except _WorkFailed as e:
            # The caller's own error goes back unchanged, not translated.
            raise e.error from None
        if results:
            self._wake()
        return results

    async def park(self, letter: DeadLetter) -> None:
        async with self._errors():
            await self._letters.replace_one(
                {"name": letter.name, "position": letter.position},
                {**letter._asdict(), "parked_at": _to_us(letter.parked_at)},
                upsert=True,
            )

    async def dead_letters(self, name: str, after: int, limit: int) -> list[DeadLetter]:
        async with self._errors():
            cursor = self._letters.find(
                {"name": name, "position": {"$gt": after}},
                {"_id": 0},
                sort=[("position", ASCENDING)],
                limit=limit,
            )
            docs = await cursor.to_list()
        return [
            DeadLetter(
                **{**{f: d[f] for f in DeadLetter._fields}, "parked_at": _from_us(d["parked_at"])}
            )
            for d in docs
        ]

    async def unpark(self, name: str, position: int) -> bool:
        async with self._errors():
            result = await self._letters.delete_one({"name": name, "position": position})
        return result.deleted_count > 0

    # -- waiting for new events ------------------------------------------------------------

    async def wait_for_events(self, after: int, timeout: float) -> None:
        changed = self._changed
        if await self.head_position() > after:
            return
        if self._watching and self._watcher is None:
            self._watcher = _aio.Runner(self._watch, name=f"evstore-mongodb-{self._db.name}")
        await changed.wait(timeout)

    def _wake(self) -> None:
        changed, self._changed = self._changed, _aio.Event()
        changed.set()

    async def _watch(self) -> None:
        """Tail the counter's change stream and wake waiters on every committed append."""
        ids = [_counter_id(j) for j in range(self.log_partitions)]
        pipeline = [{"$match": {"documentKey._id": {"$in": ids}}}]
        failures = 0
        while not self._closed:
            try:
                async with await self._db.counters.watch(
                    pipeline, resume_after=self._token, max_await_time_ms=500
                ) as stream:
                    failures = 0
                    while not self._closed and stream.alive:
                        change = await stream.try_next()
                        self._token = stream.resume_token
                        if change is not None:
                            self._wake()
            except OperationFailure as e:
                if e.code == HISTORY_LOST:
                    # The token fell out of the oplog: start from now. Waiters re-read the
                    # log from their own positions, so nothing in the gap is lost.
                    self._token = None
                    self.history_lost += 1
                    self._wake()
                    continue
                failures += 1
                if e.code in (40573, 40324, 20, 115):  # no change streams on this server
                    self._watching = False
                    return
            except PyMongoError:
                failures += 1
            except Exception:  # pragma: no cover - never let the watcher die silently
                failures += 1
            if self._closed:
                return
            # Waiters poll meanwhile (their timeout); back off before reopening.
            self._wake()
            await _aio.sleep(min(0.1 * 2**failures, 2.0))

    # -- operations ------------------------------------------------------------------------

    async def list_streams(self, after: str | None, limit: int) -> list[StreamSummary]:
        query: dict[str, Any] = {} if after is None else {"_id": {"$gt": after}}
        async with self._errors():
            cursor = self._streams.find(query, sort=[("_id", ASCENDING)], limit=limit)
            docs = await cursor.to_list()
        return [
            StreamSummary(
                d["_id"],
                int(d["version"]),
                "tombstoned"
                if d["tombstoned"]
                else "live"
                if d["version"] > d["deleted_through"]
                else "deleted",
            )
            for d in docs
        ]

    async def stats(self) -> dict[str, int]:
        async with self._errors():
            return {
                "events": await self._events.count_documents({}),
                # Live streams: visible events (see Operations.stats).
                "streams": await self._streams.count_documents(
                    {"tombstoned": False, "$expr": {"$gt": ["$version", "$deleted_through"]}}
                ),
                "snapshots": await self._db.snapshots.count_documents({}),
                "checkpoints": await self._checkpoints.count_documents({}),
                "head_position": await self._head(),
            }

    @classmethod
    def open(
        cls,
        url: str,
        database: str,
        retry_timeout: float,
        sharded: bool,
        client_options: dict[str, Any],
        partitions: int = 1,
    ) -> AsyncMongoBackend:
        """Create the client for ``url`` (options parsed by :mod:`evstore.backends.mongodb`)."""
        try:
            client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(url, **client_options)
            name = database or client.get_default_database("evstore").name
        except (ConfigurationError, InvalidName, ValueError, TypeError) as e:
            raise InvalidInput(f"bad MongoDB URL or option: {e}") from e
        return cls(
            client, name, retry_timeout=retry_timeout, sharded=sharded, partitions=partitions
        )

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._watcher is not None:
            self._watcher.cancel()
            await self._watcher.join(5.0)
        self._wake()
        await self._client.close()
