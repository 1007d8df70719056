"""Backend rows become the public values here, once, for every read path."""

from __future__ import annotations

from evstore._codec import decode, parse_uuid
from evstore._types import RecordedEvent
from evstore.spi._model import EventRecord


def record_to_event(record: EventRecord) -> RecordedEvent:
    """Decode a backend row into the public :class:`RecordedEvent`."""
    return RecordedEvent(
        record.stream_id,
        record.version,
        record.position,
        parse_uuid(record.event_id),
        record.type,
        decode(record.data),
        decode(record.metadata),
        record.schema_version,
        record.occurred_at,
        record.recorded_at,
    )
