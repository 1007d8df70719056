"""The backend interface, for people writing a backend of their own.

A backend implements :class:`Backend` (sync) and/or :class:`AsyncBackend` (asyncio): storage
only. It receives :class:`PendingEvent` rows whose payloads are already encoded, stores
:class:`EventRecord` rows, and applies :func:`check_expected` and :func:`replayed_result`
inside its write transaction. Prove it with :class:`evstore.testing.StoreContract`.
"""

from evstore.spi._model import (
    DeadLetter,
    EventRecord,
    LogFilter,
    LogPage,
    PendingEvent,
    Placement,
    SnapshotRecord,
    StreamSummary,
    check_expected,
    replayed_result,
    stable_hash,
)
from evstore.spi.backend import Backend, TransactionalBackend
from evstore.spi.backend_async import AsyncBackend, AsyncTransactionalBackend

__all__ = [
    "AsyncBackend",
    "AsyncTransactionalBackend",
    "Backend",
    "DeadLetter",
    "EventRecord",
    "LogFilter",
    "LogPage",
    "PendingEvent",
    "Placement",
    "SnapshotRecord",
    "StreamSummary",
    "TransactionalBackend",
    "check_expected",
    "replayed_result",
    "stable_hash",
]
