"""The read path's shortcuts give exactly what the general code gives."""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from evstore import _codec
from evstore.backends.sqlite import _from_us, _to_us


@pytest.mark.parametrize(
    "text",
    [
        # Random but the same in every pytest process (xdist workers must collect alike).
        str(uuid.UUID(int=random.Random(1).getrandbits(128), version=4)),
        str(uuid.UUID(int=random.Random(2).getrandbits(128), version=4)).upper(),
        "00000000-0000-0000-0000-000000000000",
        "{12345678-1234-5678-1234-567812345678}",
        "12345678123456781234567812345678",
    ],
)
def test_fast_uuid_equals_the_constructor(text: str) -> None:
    fast = _codec.parse_uuid(text)
    assert fast == uuid.UUID(text)
    assert hash(fast) == hash(uuid.UUID(text))
    assert str(fast) == str(uuid.UUID(text))
    assert fast.is_safe == uuid.SafeUUID.unknown


@pytest.mark.parametrize("text", ["not-a-uuid", "1234567-81234-5678-1234-5678123456789", ""])
def test_fast_uuid_rejects_what_the_constructor_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        uuid.UUID(text)
    with pytest.raises(ValueError):
        _codec.parse_uuid(text)


def test_empty_metadata_decodes_to_a_new_dict_each_time() -> None:
    first = _codec.decode(b"{}")
    first["x"] = 1
    assert _codec.decode(b"{}") == {}


def test_decode_of_bytes_keeps_tagged_values_and_rejects_non_objects() -> None:
    value = {"id": uuid.uuid4(), "at": datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=UTC)}
    assert _codec.decode(_codec.encode(value)) == value
    with pytest.raises(_codec.SerializationError):
        _codec.decode(b"[1, 2]")
    with pytest.raises(_codec.SerializationError):
        _codec.decode(b"{nope")


def test_sqlite_microseconds_round_trip_exactly() -> None:
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    rng = random.Random(5)
    for _ in range(10_000):
        us = rng.randrange(-(10**16), 10**17)
        assert _from_us(us) == epoch + timedelta(microseconds=us)
        assert _to_us(_from_us(us)) == us


def test_record_to_event_builds_what_the_dataclass_constructor_builds() -> None:
    import dataclasses

    from evstore._types import RecordedEvent
    from evstore.spi._model import EventRecord
    from evstore.store.records import record_to_event

    at = datetime(2025, 1, 2, 3, 4, 5, 6, tzinfo=UTC)
    ident = uuid.uuid4()
    record = EventRecord("s-1", 3, 99, str(ident), "T", b'{"a": 1}', b"{}", 2, at, at)
    fast = record_to_event(record)
    slow = RecordedEvent("s-1", 3, 99, ident, "T", {"a": 1}, {}, 2, at, at)
    assert type(fast) is RecordedEvent
    assert fast == slow and hash(fast.event_id) == hash(ident) and repr(fast) == repr(slow)
    assert dataclasses.astuple(fast) == dataclasses.astuple(slow)
    assert dataclasses.replace(fast, version=4).version == 4
    with pytest.raises(dataclasses.FrozenInstanceError):
        fast.version = 5  # type: ignore[misc]


@pytest.mark.parametrize("ident", [uuid.uuid4() for _ in range(20)] + [uuid.UUID(int=0)])
def test_sqlite_uuid_blob_round_trips_through_the_canonical_text(ident: uuid.UUID) -> None:
    from evstore.backends.sqlite import _uuid_blob, _uuid_text

    assert _uuid_blob(str(ident)) == ident.bytes == _uuid_blob(ident.hex)
    assert _uuid_text(ident.bytes) == str(ident)


def test_sqlite_record_is_an_event_record_with_aware_datetimes() -> None:
    from evstore.backends.sqlite import _record
    from evstore.spi._model import EventRecord

    ident = uuid.uuid4()
    row = ("s", 1, 2, ident.bytes, "T", b"{}", b"{}", 1, 1_700_000_000_000_001, 0)
    record = _record(row)
    assert type(record) is EventRecord
    assert record == EventRecord(
        "s", 1, 2, str(ident), "T", b"{}", b"{}", 1, _from_us(row[8]), _from_us(row[9])
    )
    assert record.occurred_at.tzinfo is UTC and record.recorded_at == _from_us(0)
