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


@pytest.fixture(params=selected_backends())
def store_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    module = importlib.import_module(f"tests.backends.{request.param}")
    with module.factory(tmp_path) as factory:
        yield factory
