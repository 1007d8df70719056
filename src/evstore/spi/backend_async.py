"""The backend interface: storage only, in tiers.

A backend stores encoded rows; everything else (validation, serialization, subscriptions,
the domain layer) is written once above it. The interface is split into tiers, each a
protocol of its own and each with its own contract class in :mod:`evstore.testing`:

- :class:`AsyncEventLog`: streams and the global log, the core (``EventLogContract``);
- :class:`AsyncSnapshotStore`: one snapshot per stream (``SnapshotsContract``);
- :class:`AsyncCheckpointStore`: named positions of subscriptions and projections
  (``CheckpointStoreContract``);
- :class:`AsyncTransactionalCheckpoints`, optional: a projection's read-model writes commit
  with its checkpoint (``TransactionalCheckpointsContract``);
- :class:`AsyncDeadLetterStore`: events a projection gave up on (``DeadLetterStoreContract``);
- :class:`AsyncOperations`: listings and counts for operators (``OperationsContract``).
- :class:`AsyncPartitionedLog`, optional: ``P > 1`` log partitions, each a log with positions
  of its own (the whole contract run with ``partitions=16``).
- :class:`AsyncCheckpointedAppends`, optional: events appended in the transaction that
  moves a checkpoint (process managers; ``ProcessManagerContract``);
- :class:`AsyncTruncatableLog`, optional: physically remove the oldest events of a stream
  (what ``scavenge`` of :mod:`evstore.ops.retention` needs; ``tests/test_retention.py``).

A backend class names the tiers it implements among its bases (so mypy checks every
method against its tier); :class:`AsyncBackend` is the union the store needs, and
:class:`AsyncTransactionalBackend` adds the optional tier, which the projection layer finds
with ``isinstance(backend, AsyncTransactionalCheckpoints)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

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

__all__ = [
    "STATS_KEYS",
    "AsyncBackend",
    "AsyncCheckpointStore",
    "AsyncDeadLetterStore",
    "AsyncEventLog",
    "AsyncOperations",
    "AsyncPartitionedLog",
    "AsyncSnapshotStore",
    "AsyncTaggedLog",
    "AsyncTransactionalBackend",
    "AsyncCheckpointedAppends",
    "AsyncTransactionalCheckpoints",
    "AsyncTruncatableLog",
]

STATS_KEYS = ("events", "streams", "snapshots", "checkpoints", "head_position")
"""The keys every backend's ``stats()`` has (a backend may add keys of its own)."""


class AsyncEventLog(Protocol):
    """Streams and the global log: appends, reads, deletes and the wake-up of readers."""

    async def append(
        self,
        stream_id: str,
        events: Sequence[PendingEvent],
        expected: ExpectedVersion,
        placement: Placement,
    ) -> AppendResult:
        """Atomically add ``events`` at the end of the stream.

        Stamp each event's ``recorded_at`` with the backend's clock, or store the event's own
        ``recorded_at`` when it is set (import and copy carry the source's). In one
        transaction: raise ``StreamDeleted`` for a tombstoned stream; if any event id
        is already stored, return :func:`~evstore.spi._model.replayed_result` (idempotent repeat)
        or raise ``DuplicateEventId``; apply :func:`~evstore.spi._model.check_expected`; then store
        versions ``last + 1 ...`` with positions that no reader has passed yet.
        """
        ...

    async def append_many(self, appends: Sequence[PendingAppend]) -> list[AppendResult]:
        """Atomically append to several streams: every part is stored, or none is.

        The store has checked the input: at least one part, no stream twice, no event id
        twice. In ONE transaction: if any event id is already stored, return
        :func:`~evstore.spi._model.replayed_results` (the whole call repeated) or raise
        ``DuplicateEventId``; else, part by part in the order given, raise ``StreamDeleted``
        for a tombstoned stream and apply ``check_expected`` (the first failure is raised,
        naming its stream, and nothing is written); then store each part as ``append``
        would. Return one ``AppendResult`` per part, in the order given. In a store of
        several log partitions a backend that cannot commit across partitions in one
        transaction raises ``InvalidInput`` when the parts' ``placement.log_partition``
        differ (before writing anything).
        """
        ...

    async def read_stream(
        self,
        stream_id: str,
        from_version: int,
        to_version: int | None,
        limit: int | None,
        backwards: bool,
    ) -> list[EventRecord]:
        """Visible events with ``from_version <= version <= to_version``.

        Ascending, or descending when ``backwards``; ``limit`` counts from the start of that
        order. Raise ``StreamDeleted`` for a tombstoned stream; a missing stream reads empty.
        """
        ...

    async def read_all(self, after: int, limit: int, where: LogFilter) -> LogPage:
        """Up to ``limit`` events of the global log with position > ``after``, in order."""
        ...

    async def stream_version(self, stream_id: str) -> int:
        """The last version stored, or 0 if the stream has no visible events."""
        ...

    async def head_position(self) -> int:
        """The highest position readers can see (0 for an empty log)."""
        ...

    async def delete_stream(self, stream_id: str, hard: bool, expected: ExpectedVersion) -> None:
        """Soft delete (hide the events, keep numbering) or tombstone a stream.

        Apply ``check_expected`` first; raise ``StreamNotFound`` for a soft delete of a
        stream with no visible events. Drop the stream's snapshot either way; a hard delete
        also removes its events.
        """
        ...

    async def wait_for_events(self, after: int, timeout: float) -> None:
        """Return once the head may be past ``after``, or after ``timeout`` seconds."""
        ...

    async def close(self) -> None:
        """Release connections; the backend is not used afterwards."""
        ...


class AsyncSnapshotStore(Protocol):
    """One snapshot per stream, the newest kept."""

    async def get_snapshot(self, stream_id: str) -> SnapshotRecord | None:
        """The stored snapshot of a stream, if any."""
        ...

    async def save_snapshot(self, snapshot: SnapshotRecord) -> None:
        """Store a snapshot unless one with a higher version is already stored."""
        ...


class AsyncCheckpointStore(Protocol):
    """Named positions in the global log (of subscriptions and projections)."""

    async def get_checkpoint(self, name: str) -> int | None:
        """The stored position of a named subscription."""
        ...

    async def set_checkpoint(self, name: str, position: int) -> None:
        """Store the position of a named subscription."""
        ...

    async def list_checkpoints(self) -> dict[str, int]:
        """Every stored checkpoint, ``{name: position}`` in name order (for operators' tools)."""
        ...

    async def compare_and_set_checkpoint(
        self, name: str, expected: int | None, position: int
    ) -> bool:
        """Store ``position`` as checkpoint ``name`` only if it is ``expected`` now (None: not
        stored); return whether it was stored. Atomic: of writers racing with the same
        ``expected``, at most one succeeds."""
        ...

    async def delete_checkpoint(self, name: str) -> bool:
        """Remove checkpoint ``name``; return whether one was stored."""
        ...


@runtime_checkable
class AsyncCheckpointBatches(Protocol):
    """Optional: store several checkpoints in one write.

    Subscriptions of one store that finish a batch at about the same time have their
    checkpoints written together (the store layer groups them); a backend with this method
    writes such a group in one transaction, one without it gets one ``set_checkpoint`` call
    per name.
    """

    async def set_checkpoints(self, positions: dict[str, int]) -> None:
        """Store every ``{name: position}`` of ``positions``, all or none (one transaction)."""
        ...


@runtime_checkable
class AsyncTransactionalCheckpoints(AsyncCheckpointStore, Protocol):
    """Optional: commit a projection's read-model writes with its checkpoint.

    The projection layer checks ``isinstance(backend, AsyncTransactionalCheckpoints)`` and,
    when the backend lacks it, falls back to ``get_checkpoint``/``set_checkpoint``
    (at-least-once). Offer it only when the read model can live in the same database and
    transaction as the checkpoint (SQLite, PostgreSQL, MongoDB); that is what makes a
    projection exactly-once.
    """

    async def run_with_checkpoint(
        self, name: str, expected: int | None, position: int, work: Callable[[Any], Any]
    ) -> bool:
        """Run ``work`` and move checkpoint ``name`` to ``position`` in ONE transaction.

        Steps, all inside one write transaction:

        1. Read checkpoint ``name`` (``None`` if never stored), locking it against concurrent
           writers of the same name (SQLite: ``BEGIN IMMEDIATE``; PostgreSQL: ``SELECT ...
           FOR UPDATE`` on the row, or insert-if-absent then lock).
        2. Compare-and-set: if it is not equal to ``expected``, roll back and return
           ``False`` without calling ``work`` (another instance moved it).
        3. Call ``work(tx)`` with the transaction's native handle - the driver connection
           with the transaction open (``sqlite3.Connection``; for PostgreSQL the psycopg
           connection, the asyncio one in an asyncio backend, with ``search_path`` set to
           the store's schema so unqualified read-model tables live beside the events; for
           MongoDB the client session, whose writes go to the store's database) - so the
           caller's read-model statements commit or roll back with the checkpoint. If
           ``work`` returns an awaitable, await it inside the transaction. ``work`` must not
           commit, roll back or close ``tx``.
        4. Store ``position`` as checkpoint ``name`` (``position == expected`` is allowed:
           the work commits and the checkpoint stays), commit, return ``True``.

        If ``work`` raises, roll back everything (the checkpoint does not move) and re-raise
        the very same exception, untranslated, even when it is a driver error (the caller's
        own SQL failed); only failures of the backend's own statements are translated
        (``BackendUnavailable``). ``get_checkpoint(name)`` reads the value stored here.
        """
        ...


@runtime_checkable
class AsyncCheckpointedAppends(Protocol):
    """Optional: append events in the transaction that moves a checkpoint.

    What makes a process manager exactly-once: the events a handler emits for a batch and
    the checkpoint past that batch commit together or not at all. Offer it where one
    transaction covers appends and checkpoints (memory, SQLite, PostgreSQL, MongoDB).
    """

    async def append_with_checkpoint(
        self, name: str, expected: int | None, position: int, work: Callable[[Any], Any]
    ) -> list[AppendResult] | None:
        """Like ``run_with_checkpoint``, with ``work``'s appends in the same transaction.

        In one transaction: compare checkpoint ``name`` with ``expected`` (return None,
        having done nothing, when it differs: another instance moved it); call ``work(tx)``
        (await it when it returns an awaitable) with the transaction's native handle, as
        ``run_with_checkpoint`` does (``None`` on a backend whose read models cannot share
        the transaction, such as memory, which may call ``work`` before its critical
        section); ``work`` returns the :class:`~evstore.spi._model.PendingAppend` rows to
        store (or None), which are appended as ``append_many`` appends them (all or
        nothing; a repeat of stored events returns their original results); store
        ``position`` as the checkpoint; commit; return the results (``[]`` for no appends).
        An error of ``work`` goes back unchanged; an append's error (``ConcurrencyError``,
        ``StreamDeleted``, ``DuplicateEventId``) is raised; either way nothing is stored
        and the checkpoint does not move.
        """
        ...


class AsyncDeadLetterStore(Protocol):
    """Events a projection gave up on ("parked"), kept to be listed and replayed."""

    async def park(self, letter: DeadLetter) -> None:
        """Store a dead letter of projection ``letter.name`` (durably, like a checkpoint).

        A letter already stored for the same ``(name, position)`` is replaced. Letters are
        independent of streams: deleting a stream does not remove them.
        """
        ...

    async def dead_letters(self, name: str, after: int, limit: int) -> list[DeadLetter]:
        """Up to ``limit`` dead letters of projection ``name`` with position > ``after``.

        In ascending position order; ``[]`` when there are none. Other projections' letters
        are never included.
        """
        ...

    async def unpark(self, name: str, position: int) -> bool:
        """Remove the dead letter ``(name, position)``; return whether one was stored."""
        ...


class AsyncOperations(Protocol):
    """Listings and counts for operators."""

    async def list_streams(self, after: str | None, limit: int) -> list[StreamSummary]:
        """Streams in id order, starting after the id ``after``."""
        ...

    async def stats(self) -> dict[str, int]:
        """Counts for operators, with at least the keys in :data:`STATS_KEYS`.

        - ``events``: events in the global log (a soft-deleted stream's events count, a
          hard-deleted stream's do not: they are gone);
        - ``streams``: streams with visible events, i.e. those ``list_streams`` reports as
          ``"live"`` (soft-deleted and tombstoned streams are not counted);
        - ``snapshots``: stored snapshots; ``checkpoints``: stored checkpoints;
        - ``head_position``: the same as :meth:`AsyncEventLog.head_position`.

        A backend may add keys of its own (PostgreSQL reports its position gaps).
        """
        ...


class AsyncPartitionedLog(Protocol):
    """Optional: a log of ``P > 1`` partitions, each gap-free and totally ordered.

    A backend that takes the option ``partitions=P`` records ``P`` in the store when it
    creates it and refuses (``InvalidInput``) to open a store created with another ``P``;
    without the option it opens a store with the ``P`` it was created with (1 for a new
    one). ``log_partitions`` is that ``P``; the store reads it with
    ``getattr(backend, "log_partitions", 1)``, so a backend without this tier has one log.

    With ``P > 1``: ``append`` stores the events in partition ``placement.log_partition``
    and returns positions of that partition (``AppendResult.partition`` set); every
    :class:`~evstore.spi._model.EventRecord` carries its ``partition`` and its position in
    it (also from ``read_stream``); ``head_position()`` is the SUM of the partition heads
    (it only grows, so ``wait_for_events(after)`` waits for that sum to pass ``after``);
    the store never calls ``read_all`` (a backend may raise ``InvalidInput`` there).

    A backend that cannot look a stream's partition up by its id (NATS: one JetStream stream
    per partition, nothing else) may define ``locate_with(placement_of)``: the store calls
    it once with its own ``placement_of(stream_id) -> Placement`` (its partitioning
    strategy), so reads, deletes and snapshots, which get only the id, find the partition.
    """

    log_partitions: int

    async def read_partition(
        self, partition: int, after: int, limit: int, where: LogFilter
    ) -> LogPage:
        """Up to ``limit`` events of log ``partition`` with position > ``after``, in order."""
        ...

    async def partition_heads(self) -> list[int]:
        """The newest visible position of every partition (0 for an empty one)."""
        ...


@runtime_checkable
class AsyncTruncatableLog(Protocol):
    """Optional: remove a stream's oldest events for good (retention's ``scavenge``).

    The retention rules (stream metadata, what has expired) live above the interface; a
    backend only cuts a prefix off a stream. ``scavenge`` finds it with
    ``isinstance(backend, AsyncTruncatableLog)`` and reports a backend without it.
    """

    async def truncate_stream(self, stream_id: str, before: int) -> int:
        """Remove the stream's stored events with ``version < before``; return how many.

        Versions never renumber: the stream's version, its state, its snapshot and its
        later events are unchanged, and so are the positions of the events that stay. The
        removed events leave the global log (like a hard delete's). Safe beside appends to
        the same stream (they add versions above ``before``) and beside readers; running
        it again removes nothing more. A tombstoned stream: 0, nothing done.

        When ``before - 1`` is at or above the stream's last version (a missing stream
        too), the stream ends at version ``before - 1`` with every version hidden, as
        after a soft delete through it, so its next append is version ``before``: import
        and copy start a truncated stream's copy this way. ``scavenge`` never cuts that
        far (it keeps a stream's last event, so the stream stays visible).
        """
        ...


class AsyncTaggedLog(Protocol):
    """Optional: tags indexed for dynamic consistency boundaries (DCB), in a log of P = 1.

    A backend offering it sets ``supports_tags = True`` (the store reads it with
    ``getattr``; a backend without it refuses events with tags, through the store) and
    stores every appended event's ``PendingEvent.tags`` in an index that finds the events
    of a tag after a position without reading the others. The tags also travel inside the
    event's metadata (``TAGS_KEY``), so every read returns them.
    """

    supports_tags: bool

    async def read_tagged(self, query: TagQuery, after: int, limit: int) -> LogPage:
        """Up to ``limit`` events matching ``query`` with position > ``after``, in order;
        ``scanned_to`` as for ``read_all`` (the head when the page is not full)."""
        ...

    async def append_unless(
        self,
        stream_id: str,
        events: Sequence[PendingEvent],
        expected: ExpectedVersion,
        placement: Placement,
        query: TagQuery,
        after: int,
    ) -> AppendResult:
        """``append``, in the same transaction as the check that no event matching
        ``query`` has a position > ``after`` (else ``ConcurrencyError``, nothing written).

        Of two conditional appends whose events match each other's query, racing from
        the same ``after``, exactly one succeeds.
        """
        ...


class AsyncBackend(
    AsyncEventLog,
    AsyncSnapshotStore,
    AsyncCheckpointStore,
    AsyncDeadLetterStore,
    AsyncOperations,
    Protocol,
):
    """Every tier the store needs: what ``evstore.connect_async`` opens a store on."""


class AsyncTransactionalBackend(AsyncBackend, AsyncTransactionalCheckpoints, Protocol):
    """A backend with every tier, the optional transactional checkpoints included."""
