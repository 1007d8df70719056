"""The whole contract: every behaviour a backend must have, as one test class."""

from __future__ import annotations

from evstore.testing._append_contract import (
    AppendContract,
    EncodingContract,
    IdempotencyContract,
    ValidationContract,
)
from evstore.testing._async_contract import AsyncContract
from evstore.testing._concurrency_contract import ConcurrencyContract
from evstore.testing._projection_contract import ProjectionContract
from evstore.testing._read_contract import (
    DeleteContract,
    GlobalLogContract,
    SnapshotContract,
    StreamReadContract,
)
from evstore.testing._subscription_contract import SubscriptionContract

__all__ = ["StoreContract"]


class StoreContract(
    AppendContract,
    IdempotencyContract,
    ValidationContract,
    EncodingContract,
    StreamReadContract,
    GlobalLogContract,
    SnapshotContract,
    DeleteContract,
    SubscriptionContract,
    ConcurrencyContract,
    AsyncContract,
    ProjectionContract,
):
    """Subclass this and provide a ``store_factory`` fixture to test a backend."""
