"""``memory://`` - an in-process backend for tests and prototypes.

``memory://`` gives a fresh private store; ``memory://NAME`` shares one store among every
connection of this process that uses the same name. One lock serializes writers, so
positions are handed out in commit order and readers can never skip an event.

``memory://?partitions=16`` (or ``partitions=16``) makes a store of 16 log partitions, each
with positions of its own (fixed when the named store is first opened).
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from evstore._types import AppendResult, ExpectedVersion
from evstore.errors import AppendConditionFailed, InvalidInput, StreamDeleted, StreamNotFound
from evstore.spi._model import (
    DeadLetter,
    EventRecord,
    LogFilter,
    LogPage,
    PendingAppend,
    PendingEvent,
    Placement,
    SnapshotRecord,
    StreamSummary,
    TagQuery,
    check_expected,
    partitions_option,
    replayed_result,
    replayed_results,
    tags_of,
)
from evstore.spi.backend import (
    CheckpointedAppends,
    CheckpointStore,
    DeadLetterStore,
    EventLog,
    Operations,
    PartitionedLog,
    SnapshotStore,
    TruncatableLog,
)


@dataclass
class _Stream:
    events: list[EventRecord] = field(default_factory=list)
    last_version: int = 0
    visible_from: int = 1  # a soft delete moves this past the last version
    tombstoned: bool = False

    @property
    def visible(self) -> bool:
        return self.last_version >= self.visible_from


@dataclass
class _Data:
    lock: threading.Condition = field(default_factory=threading.Condition)
    streams: dict[str, _Stream] = field(default_factory=dict)
    partitions: int = 1
    logs: list[list[EventRecord]] = field(default_factory=lambda: [[]])  # per partition
    heads: list[int] = field(default_factory=lambda: [0])  # per partition
    # (partition, position) -> placement
    placement: dict[tuple[int, int], Placement] = field(default_factory=dict)
    by_event_id: dict[str, EventRecord] = field(default_factory=dict)
    tags: dict[int, tuple[str, ...]] = field(default_factory=dict)  # position -> tags
    snapshots: dict[str, SnapshotRecord] = field(default_factory=dict)
    checkpoints: dict[str, int] = field(default_factory=dict)
    dead_letters: dict[str, dict[int, DeadLetter]] = field(default_factory=dict)
    head: int = 0  # the sum of the partition heads

    def __post_init__(self) -> None:
        self.logs = [[] for _ in range(self.partitions)]
        self.heads = [0] * self.partitions


_shared: dict[str, _Data] = {}
_shared_lock = threading.Lock()


class MemoryBackend(
    EventLog,
    SnapshotStore,
    CheckpointStore,
    DeadLetterStore,
    Operations,
    PartitionedLog,
    TruncatableLog,
    CheckpointedAppends,
):
    """Events in Python lists, guarded by one lock."""

    def __init__(self, name: str = "", partitions: int | None = None) -> None:
        if name:
            with _shared_lock:
                self._d = _shared.setdefault(name, _Data(partitions=partitions or 1))
        else:
            self._d = _Data(partitions=partitions or 1)
        if partitions is not None and partitions != self._d.partitions:
            raise InvalidInput(
                f"memory://{name} was created with partitions={self._d.partitions}, not "
                f"{partitions}: the number of log partitions is fixed when a store is created"
            )
        self.log_partitions = self._d.partitions

    def _live(self, stream_id: str) -> _Stream | None:
        stream = self._d.streams.get(stream_id)
        if stream is not None and stream.tombstoned:
            raise StreamDeleted(stream_id)
        return stream

    def append(
        self,
        stream_id: str,
        events: Sequence[PendingEvent],
        expected: ExpectedVersion,
        placement: Placement,
    ) -> AppendResult:
        d = self._d
        with d.lock:
            stream = self._live(stream_id) or _Stream()
            stored = [d.by_event_id[e.event_id] for e in events if e.event_id in d.by_event_id]
            if stored:
                return replayed_result(stream_id, events, expected, stored)
            check_expected(stream_id, expected, stream.last_version, stream.visible)
            return self._store(stream_id, stream, events, placement)

    supports_tags = True
    max_name_bytes = 65_535  # stream ids and event types: no limit of its own; evstore's

    def read_tagged(self, query: TagQuery, after: int, limit: int) -> LogPage:
        d = self._d
        with d.lock:
            log = d.logs[0]
            out: list[EventRecord] = []
            for record in log[bisect_right(log, after, key=lambda r: r.position) :]:
                if query.matches(record.type, d.tags.get(record.position, ())):
                    out.append(record)
                    if len(out) == limit:
                        return LogPage(out, record.position)
            return LogPage(out, d.heads[0])

    def append_unless(
        self,
        stream_id: str,
        events: Sequence[PendingEvent],
        expected: ExpectedVersion,
        placement: Placement,
        query: TagQuery,
        after: int,
    ) -> AppendResult:
        d = self._d
        with d.lock:  # re-entrant: append() takes it again
            if not any(e.event_id in d.by_event_id for e in events):
                found = self.read_tagged(query, after, 1).events
                if found:
                    raise AppendConditionFailed(stream_id, after, found[0].position)
            return self.append(stream_id, events, expected, placement)

    def append_many(self, appends: Sequence[PendingAppend]) -> list[AppendResult]:
        with self._d.lock:
            return self._append_many_locked(appends)

    def append_with_checkpoint(
        self, name: str, expected: int | None, position: int, work: Callable[[Any], Any]
    ) -> list[AppendResult] | None:
        """``work(None)`` runs first, outside the lock (no read model shares a transaction
        here, and the handler may read the store); then, under the lock, the compare-and-set,
        the appends and the checkpoint happen together."""
        appends = work(None) or []
        d = self._d
        with d.lock:
            if d.checkpoints.get(name) != expected:
                return None
            results = self._append_many_locked(appends) if appends else []
            d.checkpoints[name] = position
            return results

    def _append_many_locked(self, appends: Sequence[PendingAppend]) -> list[AppendResult]:
        d = self._d
        stored = [
            d.by_event_id[e.event_id]
            for a in appends
            for e in a.events
            if e.event_id in d.by_event_id
        ]
        if stored:
            return replayed_results(appends, stored)
        streams = []
        for a in appends:  # every check before the first write
            stream = self._live(a.stream_id) or _Stream()
            check_expected(a.stream_id, a.expected, stream.last_version, stream.visible)
            streams.append(stream)
        return [
            self._store(a.stream_id, stream, a.events, a.placement)
            for a, stream in zip(appends, streams, strict=True)
        ]

    def _store(
        self,
        stream_id: str,
        stream: _Stream,
        events: Sequence[PendingEvent],
        placement: Placement,
    ) -> AppendResult:
        """Store checked events at the end of ``stream`` (the caller holds the lock)."""
        d = self._d
        now = datetime.now(UTC)
        records = []
        part = placement.log_partition
        for i, e in enumerate(events, start=1):
            position = d.heads[part] + i
            record = EventRecord(
                stream_id,
                stream.last_version + i,
                position,
                e.event_id,
                e.type,
                e.data,
                e.metadata,
                e.schema_version,
                e.occurred_at,
                now if e.recorded_at is None else e.recorded_at,
                part,
            )
            records.append(record)
            d.by_event_id[e.event_id] = record
            d.placement[part, position] = placement
            tags = tags_of(e)
            if tags:
                d.tags[position] = tags
        d.streams[stream_id] = stream
        stream.events.extend(records)
        stream.last_version += len(records)
        d.logs[part].extend(records)
        d.heads[part] += len(records)
        d.head += len(records)
        d.lock.notify_all()
        return AppendResult(stream.last_version, tuple(r.position for r in records), part)

    def read_stream(
        self,
        stream_id: str,
        from_version: int,
        to_version: int | None,
        limit: int | None,
        backwards: bool,
    ) -> list[EventRecord]:
        with self._d.lock:
            stream = self._live(stream_id)
            if stream is None:
                return []
            low = max(from_version, stream.visible_from)
            high = stream.last_version if to_version is None else to_version
            chosen = [e for e in stream.events if low <= e.version <= high]
        if backwards:
            chosen.reverse()
        return chosen if limit is None else chosen[:limit]

    def read_all(self, after: int, limit: int, where: LogFilter) -> LogPage:
        if self._d.partitions > 1:
            raise InvalidInput("a store of several log partitions is read one partition at a time")
        return self.read_partition(0, after, limit, where)

    def read_partition(self, partition: int, after: int, limit: int, where: LogFilter) -> LogPage:
        d = self._d
        with d.lock:
            log = d.logs[partition]
            start = bisect_right(log, after, key=lambda r: r.position)
            out: list[EventRecord] = []
            for record in log[start:]:
                p = d.placement[partition, record.position]
                if where.accepts(record.type, record.stream_id, p.category, p.partition_hash):
                    out.append(record)
                    if len(out) == limit:
                        return LogPage(out, record.position)
            return LogPage(out, d.heads[partition])

    def partition_heads(self) -> list[int]:
        with self._d.lock:
            return list(self._d.heads)

    def stream_version(self, stream_id: str) -> int:
        with self._d.lock:
            stream = self._live(stream_id)
            return stream.last_version if stream is not None and stream.visible else 0

    def head_position(self) -> int:
        return self._d.head

    def get_snapshot(self, stream_id: str) -> SnapshotRecord | None:
        with self._d.lock:
            self._live(stream_id)
            return self._d.snapshots.get(stream_id)

    def save_snapshot(self, snapshot: SnapshotRecord) -> None:
        with self._d.lock:
            self._live(snapshot.stream_id)
            current = self._d.snapshots.get(snapshot.stream_id)
            if current is None or current.version <= snapshot.version:
                self._d.snapshots[snapshot.stream_id] = snapshot

    def delete_stream(self, stream_id: str, hard: bool, expected: ExpectedVersion) -> None:
        d = self._d
        with d.lock:
            stream = self._live(stream_id) or _Stream()
            check_expected(stream_id, expected, stream.last_version, stream.visible)
            if not hard and not stream.visible:
                raise StreamNotFound(stream_id)
            d.snapshots.pop(stream_id, None)
            if hard:
                gone = {(r.partition, r.position) for r in stream.events}
                d.logs = [
                    [r for r in log if (r.partition, r.position) not in gone] for log in d.logs
                ]
                for r in stream.events:
                    d.by_event_id.pop(r.event_id, None)
                    d.placement.pop((r.partition, r.position), None)
                stream.events = []
                stream.tombstoned = True
            else:
                stream.visible_from = stream.last_version + 1
            d.streams[stream_id] = stream

    def truncate_stream(self, stream_id: str, before: int) -> int:
        d = self._d
        with d.lock:
            stream = d.streams.get(stream_id) or _Stream()
            if stream.tombstoned:
                return 0
            if before - 1 >= stream.last_version:  # cut to the end: hidden, as soft-deleted
                stream.last_version = before - 1
                stream.visible_from = max(stream.visible_from, before)
                d.streams[stream_id] = stream
            gone = [r for r in stream.events if r.version < before]
            if not gone:
                return 0
            stream.events = [r for r in stream.events if r.version >= before]
            for part in {r.partition for r in gone}:
                positions = {r.position for r in gone if r.partition == part}
                d.logs[part] = [r for r in d.logs[part] if r.position not in positions]
            for r in gone:
                d.by_event_id.pop(r.event_id, None)
                d.placement.pop((r.partition, r.position), None)
            return len(gone)

    def get_checkpoint(self, name: str) -> int | None:
        return self._d.checkpoints.get(name)

    def set_checkpoint(self, name: str, position: int) -> None:
        with self._d.lock:
            self._d.checkpoints[name] = position

    def set_checkpoints(self, positions: dict[str, int]) -> None:
        with self._d.lock:
            self._d.checkpoints.update(positions)

    def list_checkpoints(self) -> dict[str, int]:
        with self._d.lock:
            return dict(sorted(self._d.checkpoints.items()))

    def compare_and_set_checkpoint(self, name: str, expected: int | None, position: int) -> bool:
        with self._d.lock:
            if self._d.checkpoints.get(name) != expected:
                return False
            self._d.checkpoints[name] = position
            return True

    def delete_checkpoint(self, name: str) -> bool:
        with self._d.lock:
            return self._d.checkpoints.pop(name, None) is not None

    def park(self, letter: DeadLetter) -> None:
        with self._d.lock:
            self._d.dead_letters.setdefault(letter.name, {})[letter.position] = letter

    def dead_letters(self, name: str, after: int, limit: int) -> list[DeadLetter]:
        with self._d.lock:
            letters = self._d.dead_letters.get(name, {})
            return [letters[p] for p in sorted(letters) if p > after][:limit]

    def unpark(self, name: str, position: int) -> bool:
        with self._d.lock:
            return self._d.dead_letters.get(name, {}).pop(position, None) is not None

    def wait_for_events(self, after: int, timeout: float) -> None:
        with self._d.lock:
            self._d.lock.wait_for(lambda: self._d.head > after, timeout)

    def list_streams(self, after: str | None, limit: int) -> list[StreamSummary]:
        with self._d.lock:
            ids = sorted(s for s in self._d.streams if after is None or s > after)[:limit]
            return [_summary(i, self._d.streams[i]) for i in ids]

    def stats(self) -> dict[str, int]:
        d = self._d
        with d.lock:
            return {
                "events": sum(len(log) for log in d.logs),
                "streams": sum(1 for s in d.streams.values() if s.visible and not s.tombstoned),
                "snapshots": len(d.snapshots),
                "checkpoints": len(d.checkpoints),
                "head_position": d.head,
            }

    def close(self) -> None:
        pass


def _summary(stream_id: str, stream: _Stream) -> StreamSummary:
    state = "tombstoned" if stream.tombstoned else "live" if stream.visible else "deleted"
    return StreamSummary(stream_id, stream.last_version, state)


def open_backend(url: str, **options: object) -> MemoryBackend:
    """Open ``memory://`` (private) or ``memory://NAME`` (shared in this process).

    Option ``partitions`` (also ``?partitions=N``): the number of log partitions.
    """
    rest = url.removeprefix("memory://")
    name, _, query = rest.partition("?")
    merged: dict[str, object] = {**dict(parse_qsl(query)), **options}
    unknown = set(merged) - {"partitions"}
    if unknown:
        raise InvalidInput(f"memory:// takes only the option partitions, got {sorted(unknown)}")
    return MemoryBackend(name.strip("/"), partitions_option(merged.get("partitions")))
