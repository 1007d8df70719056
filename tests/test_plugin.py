"""Backends plug in: a backend in another distribution opens by URL and passes the contract."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path

import pytest

import evstore
from evstore.backends import memory
from evstore.spi.plugin import ENTRY_POINT_GROUP
from evstore.testing import (
    CheckpointStoreContract,
    DeadLetterStoreContract,
    EventLogContract,
    OperationsContract,
    SnapshotsContract,
    StoreContract,
    StoreFactory,
    TransactionalCheckpointsContract,
    TruncatableLogContract,
)


def test_toy_backend_is_registered_by_another_distribution() -> None:
    (toy,) = [ep for ep in entry_points(group=ENTRY_POINT_GROUP) if ep.name == "toy"]
    assert toy.dist is not None and toy.dist.name == "evstore-toy-backend"


def test_toy_backend_opens_by_url() -> None:
    import evstore_toy

    url = f"toy://{uuid.uuid4().hex}"
    with evstore.connect(url) as store:
        store.append("a-1", [evstore.NewEvent("A", {})])
        assert store.stream_version("a-1") == 1
    assert evstore_toy.OPENED[-1] == url


def test_backend_argument_overrides_the_scheme() -> None:
    with evstore.connect("anything://x", backend=memory) as store:
        store.append("a-1", [evstore.NewEvent("A", {})])
        assert store.head_position() == 1
    with evstore.connect("whatever://", backend="evstore.backends.memory") as store:
        assert store.head_position() == 0


def test_unknown_scheme_lists_the_registered_ones() -> None:
    with pytest.raises(evstore.InvalidInput, match=r"toy://.*sqlite://|sqlite://.*toy://"):
        evstore.connect("nosuch://x")


def test_a_module_without_open_backend_is_refused() -> None:
    with pytest.raises(evstore.InvalidInput, match="open_backend"):
        evstore.connect("x://", backend="evstore.errors")


class TestToyBackendContract(StoreContract):
    """The whole shipped contract suite, on the third-party backend."""

    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> Iterator[StoreFactory]:
        yield StoreFactory(f"toy://{tmp_path.name}-{uuid.uuid4().hex}", across_processes=False)


class TestToyBackendOneTier(OperationsContract):
    """One tier's contract class alone, as a backend author runs it while building it."""

    @pytest.fixture
    def store_factory(self, tmp_path: Path) -> Iterator[StoreFactory]:
        yield StoreFactory(f"toy://{tmp_path.name}-{uuid.uuid4().hex}", across_processes=False)


def test_store_contract_is_every_tier_contract() -> None:
    tiers = [
        EventLogContract,
        SnapshotsContract,
        CheckpointStoreContract,
        TransactionalCheckpointsContract,
        DeadLetterStoreContract,
        OperationsContract,
        TruncatableLogContract,
    ]
    assert all(issubclass(StoreContract, tier) for tier in tiers)
    tests = {name for name in dir(StoreContract) if name.startswith("test_")}
    assert tests == {name for tier in tiers for name in dir(tier) if name.startswith("test_")}
