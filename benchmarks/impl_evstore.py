"""evstore through its public API: ``evstore.connect(url)`` with default settings."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import evstore
from benchmarks._common import (
    AGGREGATE_EVENTS,
    EVENT_TYPE,
    SNAPSHOT_EVERY,
    Database,
    NotApplicable,
    payload,
    payloads,
    stream_name,
)
from evstore import NO_STREAM, NewEvent

NAME = "evstore"
POPULATE_BATCH = 1000


class Impl:
    """One evstore store on a fresh database."""

    name = NAME

    def __init__(self, db: Database) -> None:
        try:
            self.store = evstore.connect(db.evstore_url)
        except evstore.InvalidInput as e:  # a backend that has not landed yet
            raise NotApplicable(f"evstore has no {db.backend} backend here: {e}") from e
        self.db = db

    def close(self) -> None:
        self.store.close()

    def settings(self) -> dict[str, str]:
        if self.db.backend == "sqlite":
            return {"journal_mode": "WAL", "synchronous": "FULL (evstore's default)"}
        if self.db.backend == "nats":
            return {"replicas": "1", "storage": "file", "sync_interval": "server default (2 min)"}
        return {"synchronous_commit": "server default"}

    # -- writes -----------------------------------------------------------------------------

    def append_new_streams(self, ids: Sequence[uuid.UUID], datas: Sequence[dict[str, Any]]) -> None:
        store = self.store
        for ident, data in zip(ids, datas, strict=True):
            store.append(
                stream_name(ident), [NewEvent(EVENT_TYPE, data)], expected_version=NO_STREAM
            )

    def append_batches(
        self, ident: uuid.UUID, batches: Sequence[Sequence[dict[str, Any]]], version: int = 0
    ) -> None:
        store, stream = self.store, stream_name(ident)
        for batch in batches:
            store.append(stream, [NewEvent(EVENT_TYPE, d) for d in batch], expected_version=version)
            version += len(batch)

    def append_singly(
        self, ident: uuid.UUID, datas: Sequence[dict[str, Any]], version: int = 0
    ) -> None:
        store, stream = self.store, stream_name(ident)
        for expected, data in enumerate(datas, version):
            store.append(stream, [NewEvent(EVENT_TYPE, data)], expected_version=expected)

    def populate(self, ident: uuid.UUID, n: int, start: int = 0) -> None:
        stream = stream_name(ident)
        for low in range(0, n, POPULATE_BATCH):
            datas = payloads(min(POPULATE_BATCH, n - low), start + low)
            self.store.append(
                stream, [NewEvent(EVENT_TYPE, d) for d in datas], expected_version=low
            )

    # -- reads ------------------------------------------------------------------------------

    def read_stream(self, ident: uuid.UUID) -> int:
        events = self.store.get_events(stream_name(ident))
        return len(events)

    def head(self) -> int:
        """The newest position (W10 reads the log after it)."""
        return self.store.head_position()

    def read_log(self, page: int, after: int = 0) -> int:
        store, position, count = self.store, after, 0
        while True:
            events = store.read_all(position, limit=page)
            count += len(events)
            if len(events) < page:
                return count
            position = events[-1].position

    # -- subscriptions (W7) -----------------------------------------------------------------

    def append_one(self, ident: uuid.UUID, seq: int) -> None:
        self.store.append(
            stream_name(ident), [NewEvent(EVENT_TYPE, payload(seq))], expected_version=seq
        )

    def start_subscriber(self, on_event: Callable[[int], None]) -> Callable[[], None]:
        def handler(event: evstore.RecordedEvent) -> None:
            on_event(event.data["sequence"])

        subscription = self.store.subscribe(handler, from_position="end")
        subscription.wait_caught_up(30)
        return subscription.stop

    def start_subscribers(
        self, count: int, on_event: Callable[[int, int], None]
    ) -> Callable[[], None]:
        """W11: ``count`` named subscriptions from the end of the log."""
        tag = uuid.uuid4().hex[:8]
        subscriptions = []
        for index in range(count):

            def handler(event: evstore.RecordedEvent, index: int = index) -> None:
                on_event(index, event.data["sequence"])

            subscriptions.append(
                self.store.subscribe(handler, from_position="end", name=f"w11-{tag}-{index}")
            )
        for subscription in subscriptions:
            subscription.wait_caught_up(30)

        def stop() -> None:
            for subscription in subscriptions:
                subscription.stop()

        return stop

    # -- the domain layer (W6) --------------------------------------------------------------

    def w6(self, n_aggregates: int, n_loads: int, n_cached_loads: int) -> dict[str, float]:
        return _w6(self.store, n_aggregates, n_loads, n_cached_loads)


def _w6(
    store: evstore.EventStore, n_aggregates: int, n_loads: int, n_cached: int
) -> dict[str, float]:
    from benchmarks import _evstore_domain as domain

    if domain.UNAVAILABLE:
        raise NotApplicable(domain.UNAVAILABLE)
    return domain.run(
        store, n_aggregates, n_loads, n_cached, AGGREGATE_EVENTS, SNAPSHOT_EVERY, time.perf_counter
    )
