"""Every backend implements each method of every backend-interface tier it names as a base.

A class that lists a tier protocol (``evstore.spi``) among its bases but forgets one of
its methods inherits the protocol's stub, whose body is a docstring: the call returns None
and mypy does not notice. This test finds such gaps in every backend shipped here.
"""

from __future__ import annotations

import importlib
import inspect

import pytest

BACKEND_MODULES = [
    "evstore.backends.memory",
    "evstore.backends.sqlite",
    "evstore.backends._threaded",
    "evstore.backends.postgresql.backend",
    "evstore.backends.postgresql.backend_async",
    "evstore.backends.mongodb.backend",
    "evstore.backends.mongodb.backend_async",
    "evstore.backends.nats.backend",
    "evstore.backends.nats.backend_async",
]


def _is_tier(cls: type) -> bool:
    return cls.__module__.startswith("evstore.spi") and getattr(cls, "_is_protocol", False)


def _backend_classes() -> list[type]:
    found = []
    for name in BACKEND_MODULES:
        module = importlib.import_module(name)
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and any(map(_is_tier, cls.__mro__[1:])):
                found.append(cls)
    return found


CLASSES = _backend_classes()


def test_the_backend_classes_are_found() -> None:
    names = {cls.__name__ for cls in CLASSES}
    assert {"MemoryBackend", "SQLiteBackend", "AsyncPostgresBackend", "AsyncMongoBackend"} <= names
    assert {"AsyncNatsBackend", "ThreadedBackend"} <= names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda c: f"{c.__module__}.{c.__name__}")
def test_no_tier_method_is_left_to_the_protocol_stub(cls: type) -> None:
    missing = []
    for tier in filter(_is_tier, cls.__mro__):
        for name, member in vars(tier).items():
            if name.startswith("_") or not inspect.isfunction(member):
                continue
            owner = next(c for c in cls.__mro__ if name in vars(c))
            if _is_tier(owner):
                missing.append(f"{tier.__name__}.{name}")
    assert missing == [], f"{cls.__name__} leaves these to the protocol's stub: {missing}"
