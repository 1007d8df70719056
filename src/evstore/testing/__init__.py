"""The backend contract suite: one set of tests that every backend must pass.

A backend (ours or a third party's) runs the whole suite by subclassing
:class:`StoreContract` and providing a ``store_factory`` fixture::

    import pytest
    from evstore.testing import StoreContract, StoreFactory

    class TestMyBackend(StoreContract):
        @pytest.fixture
        def store_factory(self, tmp_path):
            yield StoreFactory(f"mydb://.../{tmp_path.name}", across_processes=True)
            # drop the database here

The factory's URL must name a fresh, empty database for each test. Each tier of the
backend interface (:mod:`evstore.spi`) has its own class - :class:`EventLogContract`,
:class:`SnapshotsContract`, :class:`CheckpointStoreContract`,
:class:`TransactionalCheckpointsContract`, :class:`DeadLetterStoreContract`,
:class:`OperationsContract`, :class:`TruncatableLogContract` - to subclass alone while
building that tier. Tests that take the ``store`` or ``face`` fixture run twice: on
:class:`evstore.EventStore` and on :class:`evstore.AsyncEventStore`.
"""

from evstore.testing._factory import StoreFactory
from evstore.testing.contract import (
    CheckpointStoreContract,
    DeadLetterStoreContract,
    EventLogContract,
    OperationsContract,
    SnapshotsContract,
    StoreContract,
    TransactionalCheckpointsContract,
    TruncatableLogContract,
)

__all__ = [
    "CheckpointStoreContract",
    "DeadLetterStoreContract",
    "EventLogContract",
    "OperationsContract",
    "SnapshotsContract",
    "StoreContract",
    "StoreFactory",
    "TransactionalCheckpointsContract",
    "TruncatableLogContract",
]
