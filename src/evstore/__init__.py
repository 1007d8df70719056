"""evstore - an event store for Python.

Append events to streams with optimistic concurrency, read streams and the global log,
keep snapshots, and subscribe to the log - embedded on SQLite, or on PostgreSQL and MongoDB,
behind one API (sync and asyncio)::

    import evstore

    with evstore.connect("sqlite:///app.db") as store:
        store.append("user-1", [evstore.NewEvent("UserRegistered", {"email": "a@b.c"})],
                     expected_version=evstore.NO_STREAM)
        for event in store.get_events("user-1"):
            print(event.version, event.type, event.data)
"""

from evstore._async.projection import AsyncProjection
from evstore._async.repository import AsyncRepository
from evstore._async.store import AsyncEventStore
from evstore._async.subscription import AsyncSubscription
from evstore._connect import connect, connect_async
from evstore._spi import DeadLetter, StreamSummary
from evstore._sync.projection import Projection
from evstore._sync.repository import Repository
from evstore._sync.store import EventStore
from evstore._sync.subscription import Subscription
from evstore._types import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendResult,
    NewEvent,
    RecordedEvent,
    Snapshot,
)
from evstore.aggregate import Aggregate, applies
from evstore.cache import CacheStats, LRUCache
from evstore.errors import (
    BackendUnavailable,
    ConcurrencyError,
    DuplicateEventId,
    EvstoreError,
    InvalidInput,
    SerializationError,
    StreamDeleted,
    StreamNotFound,
    UnknownEventType,
)
from evstore.partitioning import (
    HashPartitioning,
    Partitioning,
    TemporalPartitioning,
    TenantPartitioning,
)
from evstore.registry import EventRegistry

__all__ = [
    "ANY",
    "NO_STREAM",
    "STREAM_EXISTS",
    "Aggregate",
    "AppendResult",
    "AsyncEventStore",
    "AsyncProjection",
    "AsyncRepository",
    "AsyncSubscription",
    "BackendUnavailable",
    "CacheStats",
    "ConcurrencyError",
    "DeadLetter",
    "DuplicateEventId",
    "EventRegistry",
    "EventStore",
    "EvstoreError",
    "HashPartitioning",
    "InvalidInput",
    "LRUCache",
    "NewEvent",
    "Partitioning",
    "Projection",
    "RecordedEvent",
    "Repository",
    "SerializationError",
    "Snapshot",
    "StreamDeleted",
    "StreamNotFound",
    "StreamSummary",
    "Subscription",
    "TemporalPartitioning",
    "TenantPartitioning",
    "UnknownEventType",
    "applies",
    "connect",
    "connect_async",
]
