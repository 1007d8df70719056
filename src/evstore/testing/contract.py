"""The contract, one class per tier of the backend interface, and all of it as one class.

A backend author subclasses :class:`StoreContract` for the whole suite, or one tier's class
(e.g. :class:`DeadLetterStoreContract`) while working on that tier. Every test that takes
``store`` or ``face`` runs on the sync and on the asyncio store.
"""

from __future__ import annotations

from evstore.testing._append_contract import (
    AppendContract,
    EncodingContract,
    IdempotencyContract,
    ValidationContract,
)
from evstore.testing._async_contract import AsyncContract
from evstore.testing._checkpoint_api_contract import CheckpointApiContract
from evstore.testing._concurrency_contract import ConcurrencyContract
from evstore.testing._group_contract import ConsumerGroupContract
from evstore.testing._input_contract import InputContract
from evstore.testing._multi_append_contract import MultiAppendContract
from evstore.testing._process_contract import ProcessManagerContract
from evstore.testing._projection_contract import ProjectionContract
from evstore.testing._read_contract import (
    DeleteContract,
    GlobalLogContract,
    SnapshotContract,
    StreamReadContract,
)
from evstore.testing._retention_contract import TruncatableLogContract
from evstore.testing._subscription_contract import SubscriptionContract
from evstore.testing._tier_contract import (
    CheckpointStoreContract as _CheckpointTier,
)
from evstore.testing._tier_contract import (
    DeadLetterStoreContract,
    OperationsContract,
    SnapshotStoreContract,
    TransactionalCheckpointsContract,
)
from evstore.testing._transfer_contract import RecordedAtContract

__all__ = [
    "CheckpointStoreContract",
    "ConsumerGroupContract",
    "DeadLetterStoreContract",
    "EventLogContract",
    "OperationsContract",
    "SnapshotsContract",
    "StoreContract",
    "TransactionalCheckpointsContract",
    "TruncatableLogContract",
]


class EventLogContract(
    AppendContract,
    MultiAppendContract,
    IdempotencyContract,
    ValidationContract,
    EncodingContract,
    StreamReadContract,
    GlobalLogContract,
    DeleteContract,
    SubscriptionContract,
    ConcurrencyContract,
    ConsumerGroupContract,
    AsyncContract,
    ProjectionContract,
    ProcessManagerContract,
    RecordedAtContract,
    InputContract,
):
    """The event log tier (``EventLog``): appends, reads, deletes, subscriptions, races."""


class SnapshotsContract(SnapshotContract, SnapshotStoreContract):
    """The snapshot tier (``SnapshotStore``)."""


class CheckpointStoreContract(_CheckpointTier, CheckpointApiContract):
    """The checkpoint tier (``CheckpointStore``), through the backend and the store's API."""


class StoreContract(
    EventLogContract,
    SnapshotsContract,
    CheckpointStoreContract,
    TransactionalCheckpointsContract,
    DeadLetterStoreContract,
    OperationsContract,
    TruncatableLogContract,
):
    """Every tier: subclass this and provide a ``store_factory`` fixture to test a backend.

    ``TransactionalCheckpointsContract`` checks the optional tier where the backend has it,
    and otherwise that projections report and enforce at-least-once delivery;
    ``TruncatableLogContract`` checks ``truncate_stream`` where the backend has it.
    """
