"""The backend interface, for people writing a backend of their own.

A backend implements :class:`Backend` (sync) and/or :class:`AsyncBackend` (asyncio): storage
only, in tiers (:class:`EventLog`, :class:`SnapshotStore`, :class:`CheckpointStore`,
:class:`DeadLetterStore`, :class:`Operations`, and optionally
:class:`TransactionalCheckpoints`; see :mod:`evstore.spi.backend_async`) that its class
names among its bases. It receives :class:`PendingEvent` rows whose payloads are already
encoded, stores :class:`EventRecord` rows, and applies :func:`check_expected` and
:func:`replayed_result` inside its write transaction (``append_many``: :class:`PendingAppend`
rows and :func:`replayed_results`). Prove it with
:class:`evstore.testing.StoreContract` (or one tier's contract class).
"""

from evstore.spi._errormap import ErrorMap
from evstore.spi._model import (
    TAGS_KEY,
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
    stable_hash,
)
from evstore.spi.backend import (
    Backend,
    CheckpointBatches,
    CheckpointedAppends,
    CheckpointStore,
    DeadLetterStore,
    EventLog,
    Operations,
    PartitionedLog,
    SnapshotStore,
    TaggedLog,
    TransactionalBackend,
    TransactionalCheckpoints,
    TruncatableLog,
)
from evstore.spi.backend_async import (
    STATS_KEYS,
    AsyncBackend,
    AsyncCheckpointBatches,
    AsyncCheckpointedAppends,
    AsyncCheckpointStore,
    AsyncDeadLetterStore,
    AsyncEventLog,
    AsyncOperations,
    AsyncPartitionedLog,
    AsyncSnapshotStore,
    AsyncTaggedLog,
    AsyncTransactionalBackend,
    AsyncTransactionalCheckpoints,
    AsyncTruncatableLog,
)

__all__ = [
    "STATS_KEYS",
    "AsyncBackend",
    "AsyncCheckpointBatches",
    "AsyncCheckpointedAppends",
    "AsyncCheckpointStore",
    "AsyncDeadLetterStore",
    "AsyncEventLog",
    "AsyncOperations",
    "AsyncPartitionedLog",
    "AsyncSnapshotStore",
    "AsyncTaggedLog",
    "AsyncTransactionalBackend",
    "AsyncTransactionalCheckpoints",
    "AsyncTruncatableLog",
    "Backend",
    "CheckpointBatches",
    "CheckpointedAppends",
    "CheckpointStore",
    "DeadLetter",
    "DeadLetterStore",
    "ErrorMap",
    "EventLog",
    "EventRecord",
    "LogFilter",
    "LogPage",
    "Operations",
    "PartitionedLog",
    "PendingAppend",
    "PendingEvent",
    "Placement",
    "SnapshotRecord",
    "SnapshotStore",
    "StreamSummary",
    "TAGS_KEY",
    "TagQuery",
    "TaggedLog",
    "TransactionalBackend",
    "TransactionalCheckpoints",
    "TruncatableLog",
    "check_expected",
    "replayed_result",
    "replayed_results",
    "stable_hash",
]
