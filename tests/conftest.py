"""Runs every test that takes ``store_factory`` against every backend in tests/backends."""

from __future__ import annotations

import importlib
import os
import pkgutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import tests.backends as backends_package
from evstore.testing import StoreFactory

ALL_BACKENDS = sorted(
    m.name for m in pkgutil.iter_modules(backends_package.__path__) if not m.name.startswith("_")
)


def selected_backends() -> list[str]:
    wanted = os.environ.get("EVSTORE_TEST_BACKENDS")
    if not wanted:
        return ALL_BACKENDS
    names = [n.strip() for n in wanted.split(",") if n.strip()]
    unknown = set(names) - set(ALL_BACKENDS)
    if unknown:
        raise pytest.UsageError(f"unknown backends {sorted(unknown)}; have {ALL_BACKENDS}")
    return names


# Stores of 16 log partitions (tests/backends/*_p16.py) run the contract suite and the
# partition tests; the other test modules (repository, examples, CLI, ...) run on P = 1.
PARTITIONED = {name for name in ALL_BACKENDS if name.endswith("_p16")}
PARTITIONED_MODULES = {"test_contract", "test_log_partitions"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "store_factory" not in metafunc.fixturenames:
        return
    names = selected_backends()
    if metafunc.module.__name__.rsplit(".", 1)[-1] not in PARTITIONED_MODULES:
        names = [n for n in names if n not in PARTITIONED]
    metafunc.parametrize("store_factory", names, indirect=True)


# Variants of a backend (group commit, hash-partitioned table, a 3-node cluster, 16 log
# partitions) share their asyncio path with the plain backend: the contract's async face runs
# on the plain backends, and on the variants the sync face runs, to keep CI under 30 minutes.
# Deselected, so they are neither run nor counted.
VARIANTS = {
    "sqlite_group",
    "postgresql_partitioned",
    "nats_cluster",
    "mongodb_sharded",
} | PARTITIONED


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    kept, dropped = [], []
    for item in items:
        params = getattr(getattr(item, "callspec", None), "params", {})
        if params.get("face") == "async" and params.get("store_factory") in VARIANTS:
            dropped.append(item)
        else:
            kept.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = kept


@pytest.fixture
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    module = importlib.import_module(f"tests.backends.{request.param}")
    with module.factory(tmp_path) as factory:
        yield factory
