"""Backend rows become the public values here, once, for every read path."""

from __future__ import annotations

from dataclasses import fields

from evstore._codec import decode, parse_uuid
from evstore._types import RecordedEvent
from evstore.errors import SerializationError
from evstore.spi._model import TAGS_KEY, UNREADABLE, EventRecord

# ``RecordedEvent`` is a frozen slots dataclass: its generated ``__init__`` sets each field
# through ``object.__setattr__`` (a lookup by name per field), which cost about a third of
# turning a row into an event. The slots' own setters do the same work directly; the
# result is the same object (tests/test_codec_fast_paths.py compares them field by field).
_new = object.__new__
assert [f.name for f in fields(RecordedEvent)] == [*EventRecord._fields, "tags"]
(
    _set_stream_id,
    _set_version,
    _set_position,
    _set_event_id,
    _set_type,
    _set_data,
    _set_metadata,
    _set_schema_version,
    _set_occurred_at,
    _set_recorded_at,
    _set_partition,
    _set_tags,
) = (getattr(RecordedEvent, name).__set__ for name in (*EventRecord._fields, "tags"))


def record_to_event(record: EventRecord) -> RecordedEvent:
    """Decode a backend row into the public :class:`RecordedEvent`."""
    (
        stream_id,
        version,
        position,
        event_id,
        type_,
        data,
        metadata,
        schema_version,
        occurred_at,
        recorded_at,
    ) = record[:10]
    event = _new(RecordedEvent)
    try:
        if occurred_at is UNREADABLE or recorded_at is UNREADABLE:
            raise SerializationError("a stored timestamp is outside years 1-9999 UTC")
        _set_event_id(event, parse_uuid(event_id))
        _set_data(event, decode(data))
        meta = decode(metadata)
        tags = meta.pop(TAGS_KEY, None) if TAGS_KEY in meta else None
        _set_metadata(event, meta)
        _set_tags(event, () if tags is None else tuple(tags))
    except (SerializationError, ValueError, TypeError) as e:
        # One corrupt row fails the read of that event only, and says which one it is.
        raise SerializationError(
            f"the event at position {position} ({stream_id!r} version {version}) cannot be "
            f"read: {e}"
        ) from e
    _set_stream_id(event, stream_id)
    _set_version(event, version)
    _set_position(event, position)
    _set_type(event, type_)
    _set_schema_version(event, schema_version)
    _set_occurred_at(event, occurred_at)
    _set_recorded_at(event, recorded_at)
    # A backend written before partitions may build 10-field rows (tuple.__new__).
    _set_partition(event, record[10] if len(record) > 10 else 0)
    return event
