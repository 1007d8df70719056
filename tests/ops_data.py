"""A store with every kind of data the operators' tools must carry, and a deep comparison."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import evstore
from evstore import NewEvent, Snapshot
from evstore.spi._model import ALL


def populate(store: evstore.EventStore, prefix: str = "") -> dict[str, Any]:
    """Streams (live, soft-deleted, soft-deleted then rewritten, tombstoned), tagged values,
    metadata, a snapshot, two named checkpoints mid-log, a projection with dead letters."""
    p = prefix
    rich = {
        "when": datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC),
        "day": date(2024, 1, 2),
        "amount": Decimal("12.3400"),
        "id": uuid.UUID(int=7),
        "raw": b"\x00\x01",
        "nested": {"list": [1, 2.5, None, "x"]},
    }
    store.append(f"{p}user-1", [NewEvent("UserRegistered", {"name": "Ann", **rich})])
    store.append(f"{p}order-1", [NewEvent("OrderPlaced", {"n": i}) for i in range(3)])
    store.append(
        f"{p}user-1",
        [NewEvent("UserRenamed", {"name": "Bea"}, metadata={"by": "admin", "trace": 42})],
    )
    store.append(f"{p}gone-1", [NewEvent("Temp", {"i": i}) for i in range(2)])
    store.append(f"{p}soft-1", [NewEvent("Temp", {"i": i}) for i in range(2)])
    store.delete_stream(f"{p}soft-1")
    store.append(f"{p}again-1", [NewEvent("Temp", {"i": i}) for i in range(2)])
    store.delete_stream(f"{p}again-1")
    store.append(f"{p}again-1", [NewEvent("Back", {"i": 3})])
    store.append(f"{p}order-1", [NewEvent("OrderShipped", {"n": 4})], expected_version=3)
    store.delete_stream(f"{p}gone-1", hard=True)
    for i in range(5):
        store.append(f"{p}bulk-{i % 2}", [NewEvent("Bulk", {"i": i})])
    store.save_snapshot(Snapshot(f"{p}order-1", 3, {"count": 3, "at": rich["when"]}, 2))
    log = store.read_all()
    store.backend.set_checkpoint(f"{p}mid", log[3].position)
    store.backend.set_checkpoint(f"{p}end", log[-1].position)

    def handler(event: evstore.RecordedEvent, tx: Any) -> None:
        if event.type == "OrderPlaced" and event.data["n"] == 1:
            raise ValueError("cannot handle order 1")

    projection = evstore.Projection(
        store, f"{p}orders", handler, max_attempts=1, retry_delay=0, exactly_once=False
    )
    projection.catch_up(until=store.head_position())
    assert len(projection.dead_letters()) == 1
    return {"projection": f"{p}orders"}


def _event_key(e: evstore.RecordedEvent) -> tuple[Any, ...]:
    return (
        e.stream_id,
        e.version,
        e.event_id,
        e.type,
        e.data,
        e.metadata,
        e.schema_version,
        e.occurred_at,
        e.recorded_at,
    )


def _after(store: evstore.EventStore, position: int) -> uuid.UUID | None:
    following = store.backend.read_all(position, 1, ALL).events
    return uuid.UUID(following[0].event_id) if following else None


def assert_same(src: evstore.EventStore, dst: evstore.EventStore) -> None:
    """Everything but positions is equal; checkpoints stand before the same event."""
    assert [_event_key(e) for e in dst.read_all()] == [_event_key(e) for e in src.read_all()]
    src_streams = src.list_streams(limit=1000)
    dst_streams = dst.list_streams(limit=1000)
    assert [(s.stream_id, s.state) for s in dst_streams] == [
        (s.stream_id, s.state) for s in src_streams
    ]
    for s, d in zip(src_streams, dst_streams, strict=True):
        if s.state == "tombstoned":
            continue
        assert d.version == s.version, s.stream_id
        assert [_event_key(e) for e in dst.get_events(s.stream_id)] == [
            _event_key(e) for e in src.get_events(s.stream_id)
        ]
        assert dst.get_snapshot(s.stream_id) == src.get_snapshot(s.stream_id)
    src_points = {
        n: p for n, p in src.backend.list_checkpoints().items() if not n.startswith("$evstore.")
    }
    dst_points = {
        n: p for n, p in dst.backend.list_checkpoints().items() if not n.startswith("$evstore.")
    }
    assert set(dst_points) == set(src_points)
    for name, position in src_points.items():
        assert _after(dst, dst_points[name]) == _after(src, position), name
        letters = src.backend.dead_letters(name, 0, 100)
        carried = dst.backend.dead_letters(name, 0, 100)
        assert [(x.event_id, x.stream_id, x.version, x.error) for x in carried] == [
            (x.event_id, x.stream_id, x.version, x.error) for x in letters
        ]
        for letter in carried:
            (event,) = dst.backend.read_all(letter.position - 1, 1, ALL).events
            assert event.event_id == letter.event_id
