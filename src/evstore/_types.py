"""The values users program with: events, snapshots, expected versions, results."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

from evstore import _validation as check
from evstore.errors import InvalidInput


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
    at the same place returns the original result. ``tags`` name what the event is about
    (``"course:c1"``), for reads by :class:`Query` and conditional appends (dynamic
    consistency boundaries); duplicates are dropped and the order kept.
    """

    type: str
    data: dict[str, Any]
    metadata: dict[str, Any] | None = None
    event_id: uuid.UUID = field(default_factory=_new_event_id)
    schema_version: int = 1
    occurred_at: datetime = field(default_factory=_utcnow)
    tags: Sequence[str] = ()  # kept as a tuple

    def __post_init__(self) -> None:
        check.event_type(self.type)
        if self.tags:
            object.__setattr__(self, "tags", check.tags(self.tags, "tags"))
        check.json_object(self.data, "data")
        if self.metadata is not None:
            check.json_object(self.metadata, "metadata")
        object.__setattr__(self, "event_id", check.event_id(self.event_id))
        check.positive_int(self.schema_version, "schema_version", check.MAX_INT32)
        check.aware_datetime(self.occurred_at, "occurred_at")


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    """An event as stored: its stream, version (1-based), position and payload.

    ``position`` is the event's place in its log partition (``partition``); a store of one
    partition (the default) has one global log and ``partition`` is always 0.
    """

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
    partition: int = 0
    """The log partition holding the event's stream (always 0 in a store of one partition);
    ``position`` counts within that partition."""
    tags: tuple[str, ...] = ()
    """The event's tags, as appended."""


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
    partition: int = 0
    """The log partition of the stream; ``positions`` count within it."""

    @property
    def first_position(self) -> int:
        """Global position of the first appended event."""
        return self.positions[0]

    @property
    def last_position(self) -> int:
        """Global position of the last appended event."""
        return self.positions[-1]


class AppendRequest(NamedTuple):
    """One stream's part of :meth:`~evstore.EventStore.append_many`: its events and the
    version it must be at (as for ``append``). A plain ``(stream_id, events)`` or
    ``(stream_id, events, expected_version)`` tuple means the same."""

    stream_id: str
    events: Sequence[NewEvent]
    expected_version: ExpectedVersion = ANY


@dataclass(frozen=True, slots=True)
class QueryItem:
    """Events of one of ``types`` (any type when empty) carrying every one of ``tags``."""

    types: Sequence[str] = ()  # kept as tuples
    tags: Sequence[str] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "types", check.names(self.types, "query types", check.event_type))
        object.__setattr__(self, "tags", check.tags(self.tags, "query tags"))


@dataclass(frozen=True, slots=True)
class Query:
    """Events matching any of ``items`` (a union); no items: every event.

    A dynamic consistency boundary: ``store.read_query(query)`` returns the matching events
    and the position it read to; ``append(..., condition=AppendCondition(query, after=that
    position))`` then fails with ``ConcurrencyError`` if an event matching the query was
    stored after it.
    """

    items: Sequence[QueryItem] = ()  # kept as a tuple

    def __post_init__(self) -> None:
        items = self.items
        if isinstance(items, QueryItem) or not isinstance(items, list | tuple):
            raise InvalidInput("Query items must be a list of QueryItem")
        for item in items:
            if not isinstance(item, QueryItem):
                raise InvalidInput(f"Query items must be QueryItem, got {type(item).__name__}")
        object.__setattr__(self, "items", tuple(items))

    def matches(self, type_: str, tags: Sequence[str]) -> bool:
        """Whether an event of this type and tags matches the query."""
        if not self.items:
            return True
        return any(
            (not item.types or type_ in item.types) and all(t in tags for t in item.tags)
            for item in self.items
        )


@dataclass(frozen=True, slots=True)
class AppendCondition:
    """Append only if no event matching ``fail_if_events_match`` is stored after ``after``."""

    fail_if_events_match: Query
    after: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.fail_if_events_match, Query):
            raise InvalidInput("fail_if_events_match must be a Query")
        check.non_negative_int(self.after, "after")


@dataclass(frozen=True, slots=True)
class QueryResult:
    """What :meth:`~evstore.EventStore.read_query` read: the matching ``events`` in
    position order and ``head``, the position it read to (the condition's ``after``)."""

    events: list[RecordedEvent]
    head: int


@dataclass(frozen=True, slots=True)
class LogCursor:
    """Where a reader of a partitioned log stands: one position per log partition.

    ``positions[j]`` is the last position of partition ``j`` already read (0: nothing).
    Cursors are plain values: ``str(cursor)`` is ``"3,0,17"`` and :meth:`parse` reads it
    back, so a cursor can be stored anywhere. ``read_all``, ``iter_all`` and
    ``subscribe(from_position=...)`` accept one; in a store of one partition a plain int
    position means the same as a cursor of one position.
    """

    positions: tuple[int, ...]

    def __post_init__(self) -> None:
        positions = self.positions
        if not isinstance(positions, tuple) or not positions:
            raise InvalidInput(f"a cursor needs a non-empty tuple of positions, got {positions!r}")
        for p in positions:
            check.non_negative_int(p, "cursor position")

    @classmethod
    def start(cls, partitions: int) -> LogCursor:
        """The cursor before the first event of every one of ``partitions`` partitions."""
        return cls((0,) * check.positive_int(partitions, "partitions"))

    @classmethod
    def parse(cls, text: str) -> LogCursor:
        """The cursor written by ``str(cursor)``."""
        if not isinstance(text, str):
            raise InvalidInput(f"a cursor is parsed from a str, got {type(text).__name__}")
        try:
            return cls(tuple(int(part) for part in text.split(",")))
        except ValueError:
            raise InvalidInput(f"{text!r} is not a cursor (comma-separated positions)") from None

    def __str__(self) -> str:
        return ",".join(map(str, self.positions))

    def __len__(self) -> int:
        return len(self.positions)

    def __getitem__(self, partition: int) -> int:
        return self.positions[partition]

    def advanced(self, event: RecordedEvent) -> LogCursor:
        """This cursor moved past ``event`` (in the event's partition)."""
        return self.moved(event.partition, max(self[event.partition], event.position))

    def moved(self, partition: int, position: int) -> LogCursor:
        """This cursor with ``position`` for ``partition`` (the other partitions kept)."""
        positions = list(self.positions)
        if not 0 <= partition < len(positions):
            raise InvalidInput(
                f"partition {partition} does not fit a cursor of {len(positions)} partitions"
            )
        positions[partition] = check.non_negative_int(position, "cursor position")
        return LogCursor(tuple(positions))

    def covers(self, other: LogCursor) -> bool:
        """Whether this cursor is at or past ``other`` in every partition."""
        if len(other) != len(self):
            raise InvalidInput(f"cursors of {len(self)} and {len(other)} partitions differ")
        return all(a >= b for a, b in zip(self.positions, other.positions, strict=True))
