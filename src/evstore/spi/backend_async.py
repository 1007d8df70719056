"""The backend interface: storage only, one small protocol.

Everything else (validation, serialization, subscriptions, the domain layer) is written
once above it. A backend must pass the contract suite in :mod:`evstore.testing`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Protocol

from evstore._types import AppendResult, ExpectedVersion
from evstore.spi._model import (
    DeadLetter,
    EventRecord,
    LogFilter,
    LogPage,
    PendingEvent,
    Placement,
    SnapshotRecord,
    StreamSummary,
)


class AsyncBackend(Protocol):
    """Storage for streams, the global log, snapshots and checkpoints."""

    async def append(
        self,
        stream_id: str,
        events: Sequence[PendingEvent],
        expected: ExpectedVersion,
        placement: Placement,
    ) -> AppendResult:
        """Atomically add ``events`` at the end of the stream.

        In one transaction: raise ``StreamDeleted`` for a tombstoned stream; if any event id
        is already stored, return :func:`~evstore.spi._model.replayed_result` (idempotent repeat)
        or raise ``DuplicateEventId``; apply :func:`~evstore.spi._model.check_expected`; then store
        versions ``last + 1 ...`` with positions that no reader has passed yet.
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

    async def get_snapshot(self, stream_id: str) -> SnapshotRecord | None:
        """The stored snapshot of a stream, if any."""
        ...

    async def save_snapshot(self, snapshot: SnapshotRecord) -> None:
        """Store a snapshot unless one with a higher version is already stored."""
        ...

    async def delete_stream(self, stream_id: str, hard: bool, expected: ExpectedVersion) -> None:
        """Soft delete (hide the events, keep numbering) or tombstone a stream.

        Apply ``check_expected`` first; raise ``StreamNotFound`` for a soft delete of a
        stream with no visible events. Drop the stream's snapshot either way; a hard delete
        also removes its events.
        """
        ...

    async def get_checkpoint(self, name: str) -> int | None:
        """The stored position of a named subscription."""
        ...

    async def set_checkpoint(self, name: str, position: int) -> None:
        """Store the position of a named subscription."""
        ...

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

    async def wait_for_events(self, after: int, timeout: float) -> None:
        """Return once the head may be past ``after``, or after ``timeout`` seconds."""
        ...

    async def list_streams(self, after: str | None, limit: int) -> list[StreamSummary]:
        """Streams in id order, starting after the id ``after``."""
        ...

    async def stats(self) -> dict[str, int]:
        """Counts for operators: events, streams, snapshots, checkpoints, head position."""
        ...

    async def close(self) -> None:
        """Release connections; the backend is not used afterwards."""
        ...


class AsyncTransactionalBackend(AsyncBackend, Protocol):
    """A backend that can commit a projection's read-model writes with its checkpoint.

    Optional: the projection layer looks for ``run_with_checkpoint`` with ``getattr`` and,
    when it is missing, falls back to ``get_checkpoint``/``set_checkpoint`` (at-least-once).
    Offer it only when the read model can live in the same database and transaction as the
    checkpoint (SQLite, PostgreSQL); that is what makes a projection exactly-once.
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
