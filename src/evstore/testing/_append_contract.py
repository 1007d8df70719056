"""Contract: appending - expected versions, idempotency, atomicity, validation, encoding."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, time, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest

import evstore
from evstore import ANY, NO_STREAM, STREAM_EXISTS, NewEvent
from evstore._types import ExpectedVersion
from evstore.errors import (
    ConcurrencyError,
    DuplicateEventId,
    InvalidInput,
    SerializationError,
    StreamNotFound,
)
from evstore.spi import check_expected
from evstore.testing._base import ContractBase, batch, neighbour, new, unique

# Stream states, each built by a recipe: ("append", n events) or ("delete",) (soft).
STREAM_STATES: dict[str, list[tuple[Any, ...]]] = {
    "absent": [],
    "live 1": [("append", 1)],
    "live 3": [("append", 3)],
    "deleted at 1": [("append", 1), ("delete",)],
    "deleted at 3": [("append", 3), ("delete",)],
    "live again at 4": [("append", 2), ("delete",), ("append", 2)],
    "deleted again at 4": [("append", 2), ("delete",), ("append", 2), ("delete",)],
}
EXPECTED_MODES: list[ExpectedVersion] = [ANY, NO_STREAM, STREAM_EXISTS, 0, 1, 2, 3, 4, 5]


def build_state(store: evstore.EventStore, recipe: list[tuple[Any, ...]]) -> str:
    """A new stream in the state ``recipe`` describes; returns its id."""
    sid = unique("rule")
    for step in recipe:
        if step[0] == "append":
            store.append(sid, batch(step[1]))
        else:
            store.delete_stream(sid)
    return sid


def state_of(recipe: list[tuple[Any, ...]]) -> tuple[int, bool]:
    """(last version ever stored, visible) after ``recipe``, as ``check_expected`` takes them."""
    last = sum(step[1] for step in recipe if step[0] == "append")
    return last, bool(recipe) and recipe[-1][0] == "append"


def rule_verdict(sid: str, expected: ExpectedVersion, last: int, visible: bool) -> Any:
    """What the one definition of the rule says: None (admitted) or the ConcurrencyError."""
    try:
        check_expected(sid, expected, last, visible)
    except ConcurrencyError as e:
        return e
    return None


class AppendContract(ContractBase):
    """Expected-version modes, idempotent re-append and all-or-nothing batches."""

    @pytest.mark.parametrize("size", [1, 2])
    def test_append_admits_exactly_what_check_expected_admits(
        self, store: evstore.EventStore, size: int
    ) -> None:
        # Every stream state x every expected-version mode, against the one definition of
        # the rule (evstore.spi.check_expected), whatever carries it (SQL, Python, server).
        for name, recipe in STREAM_STATES.items():
            for expected in EXPECTED_MODES:
                sid = build_state(store, recipe)
                last, visible = state_of(recipe)
                verdict = rule_verdict(sid, expected, last, visible)
                case = f"{name}, expected {expected}, {size} event(s)"
                if verdict is None:
                    result = store.append(sid, batch(size), expected_version=expected)
                    assert result.version == last + size, case
                    assert store.stream_version(sid) == last + size, case
                else:
                    with pytest.raises(ConcurrencyError) as raised:
                        store.append(sid, batch(size), expected_version=expected)
                    assert (raised.value.expected, raised.value.actual) == (
                        verdict.expected,
                        verdict.actual,
                    ), case
                    assert store.stream_version(sid) == (last if visible else 0), case

    def test_delete_admits_exactly_what_check_expected_admits(
        self, store: evstore.EventStore
    ) -> None:
        for name, recipe in STREAM_STATES.items():
            if not recipe:
                continue  # deleting a missing stream is StreamNotFound (DeleteContract)
            for expected in EXPECTED_MODES:
                sid = build_state(store, recipe)
                last, visible = state_of(recipe)
                verdict = rule_verdict(sid, expected, last, visible)
                case = f"{name}, expected {expected}"
                if verdict is not None:
                    with pytest.raises(ConcurrencyError) as raised:
                        store.delete_stream(sid, expected_version=expected)
                    assert raised.value.actual == verdict.actual, case
                elif visible:
                    store.delete_stream(sid, expected_version=expected)
                    assert store.stream_version(sid) == 0, case
                else:
                    with pytest.raises(StreamNotFound):
                        store.delete_stream(sid, expected_version=expected)

    def test_first_append_to_new_stream_starts_at_version_1(
        self, store: evstore.EventStore
    ) -> None:
        sid = unique()
        result = store.append(sid, batch(3), expected_version=0)
        assert result.version == 3
        assert len(result.positions) == 3
        assert list(result.positions) == sorted(result.positions)
        assert [e.version for e in store.get_events(sid)] == [1, 2, 3]
        assert [e.position for e in store.get_events(sid)] == list(result.positions)
        assert store.stream_version(sid) == 3

    def test_missing_stream_has_version_0_and_reads_empty(self, store: evstore.EventStore) -> None:
        assert store.stream_version(unique()) == 0
        assert store.get_events(unique()) == []

    def test_exact_expected_version_appends_at_the_end(self, store: evstore.EventStore) -> None:
        sid = unique()
        store.append(sid, batch(2), expected_version=0)
        assert store.append(sid, batch(1), expected_version=2).version == 3

    def test_wrong_expected_version_raises_and_writes_nothing(
        self, store: evstore.EventStore
    ) -> None:
        sid = unique()
        store.append(sid, batch(2))
        head = store.head_position()
        for wrong in (0, 1, 3, 10):
            with pytest.raises(ConcurrencyError) as info:
                store.append(sid, batch(1), expected_version=wrong)
            assert info.value.expected == wrong
            assert info.value.actual == 2
        assert store.stream_version(sid) == 2
        assert store.head_position() == head

    def test_no_stream_succeeds_only_when_stream_is_absent(self, store: evstore.EventStore) -> None:
        sid = unique()
        assert store.append(sid, batch(1), expected_version=NO_STREAM).version == 1
        with pytest.raises(ConcurrencyError) as info:
            store.append(sid, batch(1), expected_version=NO_STREAM)
        assert info.value.expected is NO_STREAM
        assert info.value.actual == 1

    def test_stream_exists_succeeds_only_when_stream_has_events(
        self, store: evstore.EventStore
    ) -> None:
        sid = unique()
        with pytest.raises(ConcurrencyError) as info:
            store.append(sid, batch(1), expected_version=STREAM_EXISTS)
        assert info.value.actual == 0
        assert store.stream_version(sid) == 0
        store.append(sid, batch(1))
        assert store.append(sid, batch(1), expected_version=STREAM_EXISTS).version == 2

    def test_any_appends_whatever_the_version(self, store: evstore.EventStore) -> None:
        sid = unique()
        assert store.append(sid, batch(1), expected_version=ANY).version == 1
        assert store.append(sid, batch(2), expected_version=ANY).version == 3

    def test_second_writer_with_same_expected_version_fails(
        self, store: evstore.EventStore
    ) -> None:
        sid = unique()
        store.append(sid, batch(1))
        store.append(sid, [new(writer="first")], expected_version=1)
        with pytest.raises(ConcurrencyError):
            store.append(sid, [new(writer="second")], expected_version=1)
        assert [e.data.get("writer") for e in store.get_events(sid)] == [None, "first"]

    def test_positions_increase_across_streams(self, store: evstore.EventStore) -> None:
        a = unique()
        b = neighbour(store, a)  # positions are ordered within a log partition
        p1 = store.append(a, batch(2)).positions
        p2 = store.append(b, batch(2)).positions
        p3 = store.append(a, batch(1)).positions
        assert list(p1 + p2 + p3) == sorted(set(p1 + p2 + p3))
        sid = unique()
        other = store.append(sid, batch(1))
        assert 0 <= other.partition == store.partition_of(sid) < store.partitions
        assert [e.partition for e in store.get_events(sid)] == [other.partition]

    def test_recorded_event_carries_every_field(self, store: evstore.EventStore) -> None:
        sid = unique()
        occurred = datetime(2025, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
        event = NewEvent(
            "UserRegistered",
            {"email": "a@example.com"},
            metadata={"causation": "cmd-1"},
            schema_version=3,
            occurred_at=occurred,
        )
        result = store.append(sid, [event])
        (got,) = store.get_events(sid)
        assert got.stream_id == sid
        assert got.version == 1
        assert got.position == result.first_position == result.last_position
        assert got.event_id == event.event_id
        assert got.type == "UserRegistered"
        assert got.data == {"email": "a@example.com"}
        assert got.metadata == {"causation": "cmd-1"}
        assert got.schema_version == 3
        assert got.occurred_at == occurred
        assert got.recorded_at.tzinfo is not None
        assert abs(got.recorded_at - datetime.now(UTC)) < timedelta(minutes=5)

    def test_missing_metadata_reads_as_empty_dict(self, store: evstore.EventStore) -> None:
        sid = unique()
        store.append(sid, [new()])
        assert store.get_events(sid)[0].metadata == {}


class IdempotencyContract(ContractBase):
    """Re-appending stored event ids: the same place returns the original result."""

    def test_reappending_same_event_ids_returns_original_result_and_writes_nothing(
        self, store: evstore.EventStore
    ) -> None:
        sid = unique()
        events = batch(3)
        first = store.append(sid, events, expected_version=0)
        head = store.head_position()
        again = store.append(sid, events, expected_version=0)
        assert again == first
        again_any = store.append(sid, events)
        assert again_any == first
        assert store.head_position() == head
        assert store.stream_version(sid) == 3

    def test_repeat_after_later_appends_still_returns_original(
        self, store: evstore.EventStore
    ) -> None:
        sid = unique()
        events = batch(2)
        first = store.append(sid, events, expected_version=0)
        store.append(sid, batch(2), expected_version=2)
        assert store.append(sid, events, expected_version=0) == first
        assert store.stream_version(sid) == 4

    def test_event_id_stored_in_another_stream_raises_duplicate(
        self, store: evstore.EventStore
    ) -> None:
        a = unique()
        b = another_stream(store, a)
        event = new()
        store.append(a, [event])
        with pytest.raises(DuplicateEventId) as info:
            store.append(b, [event])
        assert info.value.event_id == str(event.event_id)
        assert store.stream_version(b) == 0

    def test_stored_event_id_at_another_version_raises_duplicate(
        self, store: evstore.EventStore
    ) -> None:
        sid = unique()
        events = batch(2)
        store.append(sid, events)
        with pytest.raises(DuplicateEventId):
            store.append(sid, [events[1], events[0]])
        with pytest.raises(DuplicateEventId):
            store.append(sid, [events[1]], expected_version=0)

    def test_batch_mixing_stored_and_new_ids_raises_and_writes_nothing(
        self, store: evstore.EventStore
    ) -> None:
        sid = unique()
        stored = new()
        store.append(sid, [stored])
        head = store.head_position()
        with pytest.raises(DuplicateEventId):
            store.append(sid, [new(), stored, new()])
        with pytest.raises(DuplicateEventId):
            store.append(another_stream(store, sid), [*batch(5), stored])
        assert store.stream_version(sid) == 1
        assert store.head_position() == head

    def test_same_event_id_twice_in_one_batch_is_invalid(self, store: evstore.EventStore) -> None:
        event = new()
        with pytest.raises(InvalidInput, match="repeats event_id"):
            store.append(unique(), [event, event])


def another_stream(store: evstore.EventStore, sid: str) -> str:
    """A new stream id - in ``sid``'s log partition when the backend checks event ids per
    partition (``event_ids_unique_in == "partition"``: NATS with P > 1, where each partition
    is a JetStream stream with a duplicate window of its own)."""
    if getattr(store.backend, "event_ids_unique_in", "store") == "store":
        return unique()
    home = store.partition_of(sid)
    while store.partition_of(other := unique()) != home:
        pass
    return other


def _bad_appends() -> list[tuple[str, dict[str, Any]]]:
    ok = [NewEvent("T", {})]
    return [
        ("stream id None", {"stream_id": None, "events": ok}),
        ("stream id int", {"stream_id": 123, "events": ok}),
        ("stream id empty", {"stream_id": "", "events": ok}),
        ("stream id too long", {"stream_id": "x" * 65_536, "events": ok}),
        ("stream id control char", {"stream_id": "a\nb", "events": ok}),
        ("stream id NUL", {"stream_id": "a\x00b", "events": ok}),
        ("events empty", {"stream_id": "s", "events": []}),
        ("events None", {"stream_id": "s", "events": None}),
        ("single event not in a list", {"stream_id": "s", "events": ok[0]}),
        ("events of dicts", {"stream_id": "s", "events": [{"type": "T", "data": {}}]}),
        ("negative version", {"stream_id": "s", "events": ok, "expected_version": -1}),
        ("str version", {"stream_id": "s", "events": ok, "expected_version": "1"}),
        ("bool version", {"stream_id": "s", "events": ok, "expected_version": True}),
        ("float version", {"stream_id": "s", "events": ok, "expected_version": 1.0}),
    ]


class ValidationContract(ContractBase):
    """Every bad input raises InvalidInput with a message, and nothing is written."""

    @pytest.mark.parametrize(("case", "call"), _bad_appends(), ids=[c for c, _ in _bad_appends()])
    def test_bad_append_raises_invalid_input_and_writes_nothing(
        self, store: evstore.EventStore, case: str, call: dict[str, Any]
    ) -> None:
        with pytest.raises(InvalidInput) as info:
            store.append(call["stream_id"], call["events"], call.get("expected_version", ANY))
        assert str(info.value)
        assert store.head_position() == 0

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"type": "", "data": {}},
            {"type": None, "data": {}},
            {"type": 7, "data": {}},
            {"type": " padded ", "data": {}},
            {"type": "x" * 65_536, "data": {}},
            {"type": "T", "data": None},
            {"type": "T", "data": [1, 2]},
            {"type": "T", "data": {}, "metadata": "m"},
            {"type": "T", "data": {}, "event_id": "not-a-uuid"},
            {"type": "T", "data": {}, "schema_version": 0},
            {"type": "T", "data": {}, "occurred_at": datetime(2025, 1, 1)},
            {"type": "T", "data": {}, "occurred_at": "2025-01-01"},
        ],
    )
    def test_bad_new_event_raises_invalid_input(self, kwargs: dict[str, Any]) -> None:
        with pytest.raises(InvalidInput):
            NewEvent(**kwargs)

    @pytest.mark.parametrize(
        "data",
        [
            {"x": object()},
            {"x": {1, 2}},
            {1: "int key"},
            {"x": float("nan")},
            {"x": float("inf")},
            {"x": 2**70},
            {"__evstore__:uuid": "reserved"},
        ],
        ids=["object", "set", "int-key", "nan", "inf", "bigint", "reserved-key"],
    )
    def test_unserializable_data_raises_serialization_error_and_writes_nothing(
        self, store: evstore.EventStore, data: dict[Any, Any]
    ) -> None:
        with pytest.raises(SerializationError) as info:
            store.append(unique(), [new(ok=1), NewEvent("T", data)])
        assert isinstance(info.value, InvalidInput)
        assert store.head_position() == 0

    def test_bad_read_arguments_raise_invalid_input(self, store: evstore.EventStore) -> None:
        with pytest.raises(InvalidInput):
            store.get_events(None)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput):
            store.get_events("s", -1)
        with pytest.raises(InvalidInput):
            store.get_events("s", limit=0)
        with pytest.raises(InvalidInput):
            store.read_all(-5)
        with pytest.raises(InvalidInput):
            store.read_all(types=[])
        with pytest.raises(InvalidInput):
            store.read_all(partition=(4, 4))
        with pytest.raises(InvalidInput):
            store.stream_version("")
        with pytest.raises(InvalidInput):
            store.save_snapshot({"stream_id": "s"})  # type: ignore[arg-type]


_ODD_VALUES: dict[str, Any] = {
    "aware": datetime(2025, 3, 4, 5, 6, 7, 890123, tzinfo=timezone(timedelta(hours=2))),
    "naive": datetime(2025, 3, 4, 5, 6, 7),
    "day": date(2024, 2, 29),
    "clock": time(23, 59, 58),
    "id": uuid.UUID("12345678-1234-5678-1234-567812345678"),
    "money": Decimal("12345678901234567890.000000001"),
    "blob": b"\x00\xff binary",
    "nested": {"list": [1, 2.5, None, True, "é 漢字 🎉", {"deep": [Decimal("1.10")]}]},
    "tuple": (1, 2),
    "big": 2**62,
    "tagged_lookalike": {"__evstore": "not reserved"},
}


class EncodingContract(ContractBase):
    """Data and metadata round-trip to the same Python values."""

    def test_special_values_round_trip(self, store: evstore.EventStore) -> None:
        sid = unique()
        store.append(sid, [NewEvent("T", _ODD_VALUES, metadata={"at": _ODD_VALUES["aware"]})])
        got = store.get_events(sid)[0]
        assert got.data == _ODD_VALUES
        assert type(got.data["tuple"]) is tuple
        assert type(got.data["money"]) is Decimal
        assert type(got.data["id"]) is uuid.UUID
        assert type(got.data["day"]) is date
        assert got.data["aware"].utcoffset() == timedelta(hours=2)
        assert got.metadata == {"at": _ODD_VALUES["aware"]}
        assert store.read_all()[0].data == got.data

    def test_hostile_ids_and_types_are_stored_literally(self, store: evstore.EventStore) -> None:
        names = [
            "'; DROP TABLE events; --",
            'quote"double',
            "$where",
            "a.b.c",
            '{"$gt": ""}',
            "naïve-ünicode-🎉",
            "\u200b\u2028zero-width",
            "%_like_wildcards_%",
        ]
        for name in names:
            store.append(name, [NewEvent(name, {name: name})])
        for name in names:
            (got,) = store.get_events(name)
            assert (got.stream_id, got.type, got.data) == (name, name, {name: name})
        assert {e.stream_id for e in store.read_all()} == set(names)
        for name in names:
            assert [e.stream_id for e in store.read_all(types=[name])] == [name]
