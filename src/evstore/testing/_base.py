"""Fixtures and helpers shared by the contract test classes."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest

import evstore
from evstore.testing._faces import Face, open_face
from evstore.testing._factory import StoreFactory


def new(type_: str = "Tested", **data: Any) -> evstore.NewEvent:
    """A NewEvent with the given type and data."""
    return evstore.NewEvent(type_, data)


def batch(n: int, type_: str = "Tested", **data: Any) -> list[evstore.NewEvent]:
    """n NewEvents numbered by ``data["i"]``."""
    return [evstore.NewEvent(type_, {"i": i, **data}) for i in range(n)]


def unique(prefix: str = "s") -> str:
    """A stream id no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def per_partition(events: Iterable[evstore.RecordedEvent]) -> dict[int, list[int]]:
    """The positions of ``events`` per log partition, in the order given.

    Order is only defined within a partition: two deliveries of a log are the same when
    this is the same (one key, 0, in a store of one partition).
    """
    out: dict[int, list[int]] = {}
    for e in events:
        out.setdefault(e.partition, []).append(e.position)
    return out


def after(
    store: evstore.EventStore, result: evstore.AppendResult, index: int
) -> int | evstore.LogCursor:
    """A ``from_position`` just after ``result.positions[index]``: that position in a store
    of one partition, else a cursor at the start of every partition but the result's."""
    if store.partitions == 1:
        return result.positions[index]
    return evstore.LogCursor.start(store.partitions).moved(
        result.partition, result.positions[index]
    )


def neighbour(store: evstore.EventStore, stream_id: str, prefix: str = "s") -> str:
    """A new stream id in the same log partition as ``stream_id`` (any id when P == 1)."""
    while True:
        candidate = unique(prefix)
        if store.partition_of(candidate) == store.partition_of(stream_id):
            return candidate


def eventually(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait until ``condition()`` holds, failing the test after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(0.01)


FACES = ("sync", "async")


class ContractBase:
    """Provides ``face`` and ``store`` on top of the ``store_factory`` fixture the user supplies.

    ``face`` is parametrised over the two APIs: every test that takes ``face`` or ``store``
    runs once on :class:`evstore.EventStore` and once on :class:`evstore.AsyncEventStore`
    (driven through :class:`~evstore.testing._faces.SyncOverAsync`). Tests that only take
    ``store_factory`` (the multi-process ones) run once, on the sync face.
    """

    @pytest.fixture(params=FACES)
    def face(self, request: pytest.FixtureRequest, store_factory: StoreFactory) -> Iterator[Face]:
        opened = open_face(request.param, store_factory)
        yield opened
        opened.close()

    @pytest.fixture
    def store(self, face: Face) -> Iterator[evstore.EventStore]:
        s = face.connect()
        yield s
        s.close()
