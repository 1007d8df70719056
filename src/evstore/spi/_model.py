"""Values and rules shared by every backend: the rows that cross the backend interface.

A backend stores and returns these rows; it never sees user objects. Event payloads arrive
already encoded (JSON bytes), so serialization lives above the interface, once. The two
rules that every backend must apply inside its write transaction - the expected-version
check and idempotent re-append - are written here once, as pure functions.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, NamedTuple

from evstore._types import ANY, NO_STREAM, STREAM_EXISTS, AppendResult, ExpectedVersion
from evstore.errors import ConcurrencyError, DuplicateEventId, InvalidInput

UNREADABLE: datetime = datetime.min.replace(tzinfo=UTC)
"""Stands, by identity, for a stored timestamp a backend cannot turn into a ``datetime``.

A backend puts this very object (compared with ``is``, never ``==``) in ``occurred_at``,
``recorded_at`` or ``taken_at`` instead of failing a whole page on one corrupt row; the
layer above raises ``SerializationError`` naming that event's position when it reaches it.
"""


def readable_time(convert: Callable[[Any], datetime], raw: Any) -> datetime:
    """``convert(raw)``, or :data:`UNREADABLE` when the stored value cannot be converted."""
    try:
        return convert(raw)
    except (OverflowError, TypeError, ValueError):
        return UNREADABLE


class PendingEvent(NamedTuple):
    """An event on its way into a backend; ``data``/``metadata`` are encoded JSON.

    ``recorded_at`` is None for a new event (the backend stamps its own clock); import and
    copy (:mod:`evstore.ops`) set it to the source's value, which the backend then stores.
    """

    event_id: str
    type: str
    data: bytes
    metadata: bytes
    schema_version: int
    occurred_at: datetime
    recorded_at: datetime | None = None
    tags: tuple[str, ...] = ()  # also inside ``metadata`` (see TAGS_KEY); here to index


class EventRecord(NamedTuple):
    """An event as a backend stores and returns it."""

    stream_id: str
    version: int
    position: int
    event_id: str
    type: str
    data: bytes
    metadata: bytes
    schema_version: int
    occurred_at: datetime
    recorded_at: datetime
    partition: int = 0  # the log partition; ``position`` counts within it


class SnapshotRecord(NamedTuple):
    """A snapshot as a backend stores it; ``data`` is encoded JSON."""

    stream_id: str
    version: int
    data: bytes
    schema_version: int
    taken_at: datetime


class StreamSummary(NamedTuple):
    """One stream in a listing: its id, version and whether it is (soft/hard) deleted."""

    stream_id: str
    version: int
    state: str  # "live", "deleted" (soft) or "tombstoned" (hard)


class DeadLetter(NamedTuple):
    """An event a projection gave up on ("parked"), kept so that it can be listed and replayed.

    ``name`` is the projection's name and ``position`` the event's position in the global
    log; together they identify the letter (parking the same pair again replaces it). The
    event itself is not copied: replaying reads it back from the log by ``position``.
    ``stream_id``, ``version``, ``type`` and ``event_id`` describe it for listings; ``error``
    is the last error's text (at most a few KB, cut above the interface), ``attempts`` how
    often the handler was tried, ``parked_at`` an aware UTC datetime.
    """

    name: str
    position: int
    stream_id: str
    version: int
    type: str
    event_id: str
    error: str
    attempts: int
    parked_at: datetime


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a stream's events belong: its category and partition key with its stable hash.

    Computed above the interface once per append and stored with every event, so that
    backends can filter the global log by category and partition without parsing ids.
    ``log_partition`` is ``partition_hash % P`` in a store of ``P`` log partitions: the
    log whose positions the append takes (always 0 when ``P == 1``).
    """

    category: str
    partition_key: str
    partition_hash: int
    log_partition: int = 0


class PendingAppend(NamedTuple):
    """One stream's part of an atomic multi-stream append (``EventLog.append_many``)."""

    stream_id: str
    events: Sequence[PendingEvent]
    expected: ExpectedVersion
    placement: Placement


MAX_PARTITIONS = 1024


def partitions_option(value: object) -> int | None:
    """The ``partitions`` option of a backend: None (keep the store's) or ``1..1024``.

    A string (from a URL query) is read as a decimal int; anything else is ``InvalidInput``.
    """
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise InvalidInput(f"partitions must be an int, got {value!r}") from None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"partitions must be an int, got {value!r}")
    if not 1 <= value <= MAX_PARTITIONS:
        raise InvalidInput(f"partitions must be between 1 and {MAX_PARTITIONS}, got {value}")
    return value


def stable_hash(key: str) -> int:
    """A 32-bit hash of ``key`` that is the same on every machine and Python run."""
    return int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=4).digest(), "big")


@dataclass(frozen=True, slots=True)
class LogFilter:
    """Which events of the global log a reader wants. ``None`` fields match everything."""

    types: tuple[str, ...] | None = None
    type_prefix: str | None = None
    category: str | None = None
    partition: tuple[int, int] | None = None
    stream_prefix: str | None = None
    stream_id: str | None = None

    def accepts(self, type_: str, stream_id: str, category: str, partition_hash: int) -> bool:
        """Whether an event with these attributes passes (for backends that filter in Python)."""
        if self.types is not None and type_ not in self.types:
            return False
        if self.type_prefix is not None and not type_.startswith(self.type_prefix):
            return False
        if self.category is not None and category != self.category:
            return False
        if self.stream_prefix is not None and not stream_id.startswith(self.stream_prefix):
            return False
        if self.stream_id is not None and stream_id != self.stream_id:
            return False
        if self.partition is not None:
            slot, count = self.partition
            if partition_hash % count != slot:
                return False
        return True


ALL = LogFilter()

TAGS_KEY = "evstore:tags"
"""The key of an event's tags inside its encoded metadata, where they are stored on every
backend (the layer above takes them out again on read)."""


_TAGS_MARK = b'"evstore:tags"'


def tags_of(event: PendingEvent) -> tuple[str, ...]:
    """An event's tags: ``event.tags``, or those inside its metadata when a copy or an
    import passed the stored metadata along (so an index built from them stays whole)."""
    if event.tags or _TAGS_MARK not in event.metadata:
        return event.tags
    tags = json.loads(event.metadata).get(TAGS_KEY)
    return tuple(tags) if isinstance(tags, list) else ()


@dataclass(frozen=True, slots=True)
class TagQuery:
    """A DCB query as backends see it: events matching any item; an item is (types, tags):
    an event of one of ``types`` (any when empty) carrying every one of ``tags``. No
    items: every event."""

    items: tuple[tuple[tuple[str, ...], tuple[str, ...]], ...] = ()

    def matches(self, type_: str, tags: Sequence[str]) -> bool:
        """Whether an event of this type and tags matches (for backends filtering in Python)."""
        if not self.items:
            return True
        return any(
            (not types or type_ in types) and all(t in tags for t in item_tags)
            for types, item_tags in self.items
        )


class LogPage(NamedTuple):
    """A page of the global log and how far the backend has looked.

    ``scanned_to`` is the position up to which every event visible now or later has been
    considered: the last event's position when the page is full, otherwise the log's safe
    head at the time of the read. A reader continues from ``scanned_to``, so filtered
    subscriptions advance past events they do not want without reading them again.
    """

    events: list[EventRecord]
    scanned_to: int


def check_expected(
    stream_id: str, expected: ExpectedVersion, last_version: int, visible: bool
) -> None:
    """Raise ``ConcurrencyError`` unless ``expected`` admits the stream's state.

    ``last_version`` is the highest version ever stored (versions continue after a soft
    delete); ``visible`` says whether the stream has events that readers can see.
    """
    if expected is ANY:
        return
    if expected is NO_STREAM or expected == 0:
        if not visible:
            return
    elif expected is STREAM_EXISTS:
        if visible:
            return
    elif expected == last_version:
        return
    raise ConcurrencyError(stream_id, expected, last_version if visible else 0)


def replayed_result(
    stream_id: str,
    events: Sequence[PendingEvent],
    expected: ExpectedVersion,
    stored: Sequence[EventRecord],
) -> AppendResult:
    """The original result of an append being repeated, or ``DuplicateEventId``.

    ``stored`` are the already-stored records whose event ids appear in ``events``. The
    append is a repeat when every id is stored, in the same stream, consecutively, in the
    same order, where ``expected`` would have put them.
    """
    by_id = {r.event_id: r for r in stored}
    first = by_id.get(events[0].event_id)
    for i, event in enumerate(events):
        record = by_id.get(event.event_id)
        if record is None:
            raise DuplicateEventId(next(iter(by_id)), "the batch mixes stored and new events")
        if record.stream_id != stream_id:
            raise DuplicateEventId(
                event.event_id, f"in stream {record.stream_id!r}", stream_id=record.stream_id
            )
        if first is None or record.version != first.version + i:
            raise DuplicateEventId(event.event_id, "at another version of this stream")
    assert first is not None
    if isinstance(expected, int) and expected != first.version - 1:
        raise DuplicateEventId(first.event_id, f"at version {first.version}, not {expected + 1}")
    if expected is NO_STREAM and first.version != 1:
        raise DuplicateEventId(first.event_id, f"at version {first.version}, not 1")
    ordered = [by_id[e.event_id] for e in events]
    return AppendResult(
        ordered[-1].version, tuple(r.position for r in ordered), ordered[-1].partition
    )


def replayed_results(
    appends: Sequence[PendingAppend], stored: Sequence[EventRecord]
) -> list[AppendResult]:
    """The original results of a multi-stream append being repeated, or ``DuplicateEventId``.

    ``stored`` are the already-stored records whose event ids appear in ``appends`` (at
    least one). A multi-stream append is all or nothing, so it is a repeat only when every
    one of its events is stored, each stream's part as :func:`replayed_result` requires.
    """
    by_id = {r.event_id: r for r in stored}
    results = []
    for a in appends:
        mine = [by_id[e.event_id] for e in a.events if e.event_id in by_id]
        if len(mine) < len(a.events):
            raise DuplicateEventId(
                next(iter(by_id)), "the multi-stream append mixes stored and new events"
            )
        results.append(replayed_result(a.stream_id, a.events, a.expected, mine))
    return results
