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


@pytest.fixture
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    module = importlib.import_module(f"tests.backends.{request.param}")
    with module.factory(tmp_path) as factory:
        yield factory
