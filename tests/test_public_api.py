"""The public surface: ``evstore.__all__`` is complete and exact."""

from __future__ import annotations

import types

import evstore
import evstore.errors

REQUIRED = {
    "connect",
    "connect_async",
    "EventStore",
    "AsyncEventStore",
    "NewEvent",
    "RecordedEvent",
    "Snapshot",
    "AppendResult",
    "ANY",
    "NO_STREAM",
    "STREAM_EXISTS",
    "Subscription",
    "AsyncSubscription",
    "EvstoreError",
    "ConcurrencyError",
    "StreamNotFound",
    "StreamDeleted",
    "DuplicateEventId",
    "SerializationError",
    "InvalidInput",
    "BackendUnavailable",
    "UnknownEventType",
}


def test_all_lists_exactly_the_public_names() -> None:
    public = {
        name
        for name, value in vars(evstore).items()
        if not name.startswith("_") and not isinstance(value, types.ModuleType)
    }
    assert set(evstore.__all__) == public
    assert len(evstore.__all__) == len(set(evstore.__all__))


def test_required_names_are_exported() -> None:
    assert set(evstore.__all__) >= REQUIRED


def test_every_error_derives_from_evstore_error() -> None:
    for name in evstore.errors.__all__:
        assert issubclass(getattr(evstore.errors, name), evstore.EvstoreError)
    assert issubclass(evstore.SerializationError, evstore.InvalidInput)
    assert set(evstore.errors.__all__) <= set(evstore.__all__)


def test_every_public_name_has_a_docstring() -> None:
    for name in evstore.__all__:
        value = getattr(evstore, name)
        if callable(value):
            assert value.__doc__, f"{name} has no docstring"
