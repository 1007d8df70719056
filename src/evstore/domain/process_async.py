"""Process managers: projections whose handlers emit events; ``process`` is generated.

A process manager (a saga) reacts to events by appending new ones. ``handler(event,
outbox)`` calls ``outbox.append(stream_id, events, expected_version)``; the appends of a
batch are stored in the transaction that moves the manager's checkpoint past the batch,
so a crash anywhere - in the handler, after it, before the commit - leaves either both or
neither: each event's emissions are stored exactly once, however often it is delivered,
and racing instances of one manager compare-and-set the same checkpoint (one commits each
batch; the other reads on after it). This holds where the backend has the
``CheckpointedAppends`` tier (memory, SQLite, PostgreSQL, MongoDB). ``outbox.tx`` is the
transaction's native handle (a ``sqlite3.Connection``, a psycopg connection, a MongoDB
session; None on memory) for read-model writes that commit with them, as a projection's.

Elsewhere (NATS) the emissions are appended (as one ``append_many``) right after the
handler returns and the checkpoint follows the batch: at-least-once. Give emitted events
ids derived from their cause (``outbox.event_id(event)``): a redelivered event then
repeats the same append, which the store recognises (``append`` is idempotent by event id)
instead of storing it twice.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from evstore import _aio
from evstore._types import RecordedEvent
from evstore.domain.outbox import Outbox
from evstore.domain.projection_async import AsyncProjection
from evstore.errors import InvalidInput
from evstore.spi._model import PendingAppend
from evstore.spi.backend_async import AsyncCheckpointedAppends

if TYPE_CHECKING:
    from evstore.store.facade_async import AsyncEventStore

Handler = Callable[[RecordedEvent, Outbox], Any]


class AsyncProcessManager(AsyncProjection):
    """A named consumer of the log whose handler emits events: ``handler(event, outbox)``.

    Everything else is a projection's (:class:`~evstore.AsyncProjection`): filters, batches,
    retries, dead letters, ``catch_up``/``start``/``stop``, any number of instances.
    ``exactly_once``: None (default) uses the backend's ``CheckpointedAppends`` tier when it
    has it, True requires it (``InvalidInput`` otherwise), False never uses it.
    """

    def __init__(
        self,
        store: AsyncEventStore,
        name: str,
        handler: Handler,
        *,
        exactly_once: bool | None = None,
        **options: Any,
    ) -> None:
        super().__init__(store, name, handler, exactly_once=False, **options)
        if exactly_once not in (None, True, False):
            raise InvalidInput(f"exactly_once must be None, True or False, got {exactly_once!r}")
        self._store = store
        self._emit = handler
        backend = self._backend
        if isinstance(backend, AsyncCheckpointedAppends) and exactly_once is not False:
            self._transact = self._commit_with_appends
        elif exactly_once:
            raise InvalidInput(
                f"process manager {name!r}: exactly_once=True needs a backend that appends "
                "with the checkpoint (memory, SQLite, PostgreSQL, MongoDB); this one does not"
            )
        else:
            self._handler = self._emit_at_least_once

    async def _commit_with_appends(
        self, name: str, expected: int | None, position: int, work: Callable[[Any], Any]
    ) -> bool:
        backend = self._backend
        assert isinstance(backend, AsyncCheckpointedAppends)
        return await backend.append_with_checkpoint(name, expected, position, work) is not None

    def _work(self, events: list[RecordedEvent]) -> Callable[[Any], Any]:
        async def work(tx: Any) -> list[PendingAppend]:
            began = time.monotonic()
            outbox = Outbox(self._store, self._name, tx)
            for event in events:
                await _aio.call(self._emit, event, outbox)
            self._pace(len(events), time.monotonic() - began)
            return outbox.appends

        return work

    async def _emit_at_least_once(self, event: RecordedEvent, tx: Any) -> None:
        outbox = Outbox(self._store, self._name, None)
        await _aio.call(self._emit, event, outbox)
        if outbox.appends:
            await self._backend.append_many(outbox.appends)
