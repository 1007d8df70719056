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

__version__ = "0.1.0"

from evstore._types import (
    ANY,
    NO_STREAM,
    STREAM_EXISTS,
    AppendCondition,
    AppendRequest,
    AppendResult,
    LogCursor,
    NewEvent,
    Query,
    QueryItem,
    QueryResult,
    RecordedEvent,
    Snapshot,
)
from evstore.domain.aggregate import Aggregate, applies
from evstore.domain.cache import CacheStats, LRUCache
from evstore.domain.outbox import Outbox
from evstore.domain.process import ProcessManager
from evstore.domain.process_async import AsyncProcessManager
from evstore.domain.projection import Projection
from evstore.domain.projection_async import AsyncProjection
from evstore.domain.readmodel import ReadModel, Sql, handles
from evstore.domain.registry import EventRegistry
from evstore.domain.repository import Repository
from evstore.domain.repository_async import AsyncRepository
from evstore.errors import (
    AppendConditionFailed,
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
from evstore.spi._model import DeadLetter, StreamSummary
from evstore.store._retention_rules import RetentionPolicy
from evstore.store.connect import connect, connect_async, migrate
from evstore.store.facade import EventStore
from evstore.store.facade_async import AsyncEventStore, StoreStats
from evstore.store.partitioning import (
    HashPartitioning,
    Partitioning,
    TemporalPartitioning,
    TenantPartitioning,
)
from evstore.store.subscription import Subscription
from evstore.store.subscription_async import AsyncSubscription

__all__ = [
    "ANY",
    "NO_STREAM",
    "STREAM_EXISTS",
    "Aggregate",
    "AppendCondition",
    "AppendConditionFailed",
    "AppendRequest",
    "AppendResult",
    "AsyncEventStore",
    "AsyncProcessManager",
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
    "LogCursor",
    "LRUCache",
    "NewEvent",
    "Outbox",
    "Partitioning",
    "ProcessManager",
    "Projection",
    "Query",
    "QueryItem",
    "QueryResult",
    "ReadModel",
    "RecordedEvent",
    "Repository",
    "RetentionPolicy",
    "SerializationError",
    "Snapshot",
    "Sql",
    "StoreStats",
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
    "handles",
    "migrate",
]
