"""Stream ids and event types: each backend stores what it can, refuses longer with
InvalidInput (nothing written); the limits README.md states are the ones tested here."""

from __future__ import annotations

import pytest

from evstore import InvalidInput, NewEvent
from evstore.testing import StoreFactory

# UTF-8 bytes of a stream id, an event type or a checkpoint name (README.md, "Limits").
LIMITS = {
    "memory": 65_535,
    "sqlite": 65_535,
    "sqlite_group": 65_535,
    "postgresql": 2_048,
    "postgresql_partitioned": 2_048,
    "mongodb": 4_096,
    "mongodb_sharded": 4_096,
    "nats": 1_020,
    "nats_cluster": 1_020,
}

TOPIC = "eventsourcing.tests.domain:" + "VeryLongModulePathSegment." * 11 + "Opened"


def test_names_up_to_the_backends_limit_are_stored_and_longer_ones_refused(
    store_factory: StoreFactory, request: pytest.FixtureRequest
) -> None:
    limit = LIMITS[request.node.callspec.params["store_factory"]]
    assert len(TOPIC) > 255
    with store_factory.connect() as store:
        assert store.backend.max_name_bytes == limit
        sid, type_ = "s" * limit, "T" * limit
        store.append(sid, [NewEvent(type_, {"n": 1})])
        store.append("topic-1", [NewEvent(TOPIC, {})])  # eventsourcing's topics fit everywhere
        [event] = store.get_events(sid)
        assert (event.stream_id, event.type) == (sid, type_)
        assert [e.stream_id for e in store.read_all(types=[type_])] == [sid]
        assert [e.type for e in store.read_all(types=[TOPIC])] == [TOPIC]
        wide = "é" * (limit // 2)  # two bytes each: the limit counts UTF-8 bytes
        store.append(wide, [NewEvent("T", {})])
        assert store.stream_version(wide) == 1
        head = store.head_position()
        for bad_sid, bad_type in [(sid + "s", "T"), ("ok", type_ + "T"), (wide + "é", "T")]:
            with pytest.raises(InvalidInput, match="at most"):
                store.append(bad_sid, [NewEvent(bad_type, {})])
        assert store.head_position() == head
        name = "c" * limit
        assert store.compare_and_set_checkpoint(name, None, 5)
        assert store.get_checkpoint(name) == 5
        with pytest.raises(InvalidInput, match="at most"):
            store.get_checkpoint(name + "c")


def test_a_backend_that_states_no_limit_keeps_255_characters() -> None:
    from evstore import EventStore
    from evstore.backends.memory import MemoryBackend

    class Unstated(MemoryBackend):
        max_name_bytes = None  # type: ignore[assignment]

    with EventStore(Unstated()) as store:
        store.append("é" * 255, [NewEvent("T" * 255, {})])
        with pytest.raises(InvalidInput, match="at most 255"):
            store.append("s" * 256, [NewEvent("T", {})])
        with pytest.raises(InvalidInput, match="at most 255"):
            store.append("s", [NewEvent("T" * 256, {})])
        assert store.head_position() == 1
