"""The values users program with: events, snapshots, expected versions, results."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from evstore import _validation as check


class _ExpectedVersionMode:
    """A symbolic ``expected_version``: ``ANY``, ``NO_STREAM`` or ``STREAM_EXISTS``."""

    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name

    def __reduce__(self) -> str:
        return self._name


ANY: Final = _ExpectedVersionMode("ANY")
"""Append whatever the stream's version is (no concurrency check)."""
NO_STREAM: Final = _ExpectedVersionMode("NO_STREAM")
"""Append only if the stream has no events (same as ``expected_version=0``)."""
STREAM_EXISTS: Final = _ExpectedVersionMode("STREAM_EXISTS")
"""Append only if the stream already has events."""

ExpectedVersion = int | _ExpectedVersionMode


def _new_event_id() -> uuid.UUID:
    return uuid.uuid4()


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True)
class NewEvent:
    """An event to append: its type name, JSON-like ``data`` and optional ``metadata``.

    ``event_id`` (a UUID) makes the append idempotent: appending the same ids again
    at the same place returns the original result.
    """

    type: str
    data: dict[str, Any]
    metadata: dict[str, Any] | None = None
    event_id: uuid.UUID = field(default_factory=_new_event_id)
    schema_version: int = 1
    occurred_at: datetime = field(default_factory=_utcnow)

    def __post_init__(self) -> None:
        check.event_type(self.type)
        check.json_object(self.data, "data")
        if self.metadata is not None:
            check.json_object(self.metadata, "metadata")
        object.__setattr__(self, "event_id", check.event_id(self.event_id))
        check.positive_int(self.schema_version, "schema_version", check.MAX_INT32)
        check.aware_datetime(self.occurred_at, "occurred_at")


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored: its stream, version (1-based), global position and payload."""

    stream_id: str
    version: int
    position: int
    event_id: uuid.UUID
    type: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    schema_version: int
    occurred_at: datetime
    recorded_at: datetime


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The state of a stream's aggregate at ``version``, to load from instead of replaying."""

    stream_id: str
    version: int
    data: dict[str, Any]
    schema_version: int = 1
    taken_at: datetime = field(default_factory=_utcnow)

    def __post_init__(self) -> None:
        check.stream_id(self.stream_id)
        check.positive_int(self.version, "snapshot version")
        check.json_object(self.data, "snapshot data")
        check.positive_int(self.schema_version, "schema_version", check.MAX_INT32)
        check.aware_datetime(self.taken_at, "taken_at")


@dataclass(frozen=True, slots=True)
class AppendResult:
    """What an append stored: the stream's new ``version`` and each event's position."""

    version: int
    positions: tuple[int, ...]

    @property
    def first_position(self) -> int:
        """Global position of the first appended event."""
        return self.positions[0]

    @property
    def last_position(self) -> int:
        """Global position of the last appended event."""
        return self.positions[-1]
