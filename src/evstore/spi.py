"""The backend interface, for people writing a backend of their own.

A backend implements :class:`Backend` (sync) and/or :class:`AsyncBackend` (asyncio): storage
only. It receives :class:`PendingEvent` rows whose payloads are already encoded, stores
:class:`EventRecord` rows, and applies :func:`check_expected` and :func:`replayed_result`
inside its write transaction. Prove it with :class:`evstore.testing.StoreContract`.
"""

from evstore._async.backend import AsyncBackend, AsyncTransactionalBackend
from evstore._spi import (
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
from evstore._sync.backend import Backend, TransactionalBackend

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
