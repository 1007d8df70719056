"""Checking a store's integrity, and its subscriptions. Written once for asyncio;
``verify.py`` is generated.

:func:`verify_store` reads the whole log once, in pages, and checks what every backend
promises: positions unique and increasing, each stream's versions 1, 2, 3 ... with no gap
or repeat (a stream with retention limits may start later: scavenge removed the versions
before), every event's id, data and metadata decodable, each stream's listed version
equal to its last event, no events left of a tombstoned stream, snapshots not ahead of
their stream and decodable, checkpoints and dead letters within the log. Memory grows with
the number of streams (one int each), not with the number of events.

A store of ``P > 1`` log partitions is checked partition by partition: positions within
each, a checkpoint ``name#j`` (a subscription's cursor component) within partition ``j``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from evstore import _codec
from evstore import _validation as check
from evstore.errors import InvalidInput, SerializationError, StreamDeleted
from evstore.ops import _format
from evstore.ops.log_async import (
    heads,
    page,
    partition_of_checkpoint,
    partitions,
    progress_names,
)
from evstore.spi._model import DeadLetter
from evstore.store.facade_async import AsyncEventStore

PAGE = 1000
LAG_LIMIT = 100_000  # events counted past a checkpoint before lag is reported as "at least"


@dataclass(frozen=True)
class Problem:
    """One thing wrong: ``kind`` (position, version, decode, stream, snapshot, checkpoint,
    dead_letter), where it is, and what is wrong."""

    kind: str
    where: str
    detail: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.where}: {self.detail}"


@dataclass
class VerifyReport:
    """What :func:`verify_store` checked and found."""

    events: int = 0
    streams: int = 0
    snapshots: int = 0
    checkpoints: int = 0
    head_position: int = 0
    problems: list[Problem] = field(default_factory=list)
    """The first ``max_problems`` problems found."""
    problem_count: int = 0
    """Every problem found (``problems`` keeps only the first ones)."""

    @property
    def ok(self) -> bool:
        """True when nothing is wrong."""
        return self.problem_count == 0

    def summary(self) -> str:
        """One line for operators."""
        checked = (
            f"{self.events} events, {self.streams} streams, {self.snapshots} snapshots, "
            f"{self.checkpoints} checkpoints"
        )
        if self.ok:
            return f"ok: {checked}"
        return f"{self.problem_count} problem(s) in {checked}"


class _Found:
    def __init__(self, report: VerifyReport, limit: int) -> None:
        self.report = report
        self.limit = limit

    def __call__(self, kind: str, where: str, detail: str) -> None:
        self.report.problem_count += 1
        if len(self.report.problems) < self.limit:
            self.report.problems.append(Problem(kind, where, detail))


async def verify_store(
    store: AsyncEventStore,
    *,
    progress: Callable[[int, int | None], None] | None = None,
    max_problems: int = 1000,
) -> VerifyReport:
    """Check the whole store; the report lists what is wrong (``report.ok`` when nothing).

    The log is checked up to the head at the start; the store may take writes meanwhile.
    """
    backend = store.backend
    report = VerifyReport()
    found = _Found(report, max_problems)
    count = partitions(backend)
    ends = await heads(backend)
    report.head_position = sum(ends)
    total = (await backend.stats()).get("events")
    last_version: dict[str, int] = {}
    for j, head in enumerate(ends):
        await _check_log(store, j, head, last_version, found, report, total, progress)
    await _check_streams(store, last_version, found, report, max_problems)

    checkpoints = await backend.list_checkpoints()
    now_heads = await heads(backend)
    for name, position in checkpoints.items():
        if name.startswith(_format.INTERNAL_PREFIX):
            continue
        report.checkpoints += 1
        part = partition_of_checkpoint(name, count)
        if part is None:
            found("checkpoint", name, f"not of one of the {count} log partitions (name#j)")
            continue
        if position < 0 or position > now_heads[part]:
            where = "the log" if count == 1 else f"partition {part}"
            found(
                "checkpoint", name, f"position {position} is outside {where} (0..{now_heads[part]})"
            )
        letter_after = 0
        while letters := await backend.dead_letters(name, letter_after, PAGE):
            for letter in letters:
                if letter.position > max(now_heads):
                    found("dead_letter", f"{name}@{letter.position}", "past the log's head")
            letter_after = letters[-1].position
    return report


async def _check_log(
    store: AsyncEventStore,
    partition: int,
    head: int,
    last_version: dict[str, int],
    found: _Found,
    report: VerifyReport,
    total: int | None,
    progress: Callable[[int, int | None], None] | None,
) -> None:
    """One pass over a log partition (the log when ``P == 1``) up to ``head``."""
    backend = store.backend
    after, previous = 0, 0
    while after < head:
        got = await page(backend, partition, after, PAGE)
        for r in got.events:
            if r.position > head:
                break
            report.events += 1
            where = f"{r.stream_id}@{r.version} (position {r.position})"
            if partitions(backend) > 1:
                where = f"{r.stream_id}@{r.version} (partition {partition}, position {r.position})"
            if r.position <= previous:
                found("position", where, f"not above the previous position {previous}")
            previous = max(previous, r.position)
            expected = last_version.get(r.stream_id, 0) + 1
            if expected == 1 < r.version and (await store.retention(r.stream_id)).limited:
                expected = r.version  # the versions before it expired and were scavenged
            if r.version != expected:
                found("version", where, f"expected version {expected}: a gap or a repeat")
            last_version[r.stream_id] = max(r.version, last_version.get(r.stream_id, 0))
            try:
                _codec.parse_uuid(r.event_id)
            except ValueError:
                found("decode", where, f"event id {r.event_id!r} is not a UUID")
            for name, raw in (("data", r.data), ("metadata", r.metadata)):
                try:
                    _codec.decode(raw)
                except SerializationError as e:
                    found("decode", where, f"{name}: {e}")
        if progress is not None:
            progress(report.events, total)
        if not got.events or got.scanned_to <= after:
            break
        after = got.scanned_to


async def _check_streams(
    store: AsyncEventStore,
    last_version: dict[str, int],
    found: _Found,
    report: VerifyReport,
    max_problems: int,
) -> None:
    """The stream list against what the log pass saw."""
    backend = store.backend
    stream_after: str | None = None
    while streams := await backend.list_streams(stream_after, PAGE):
        for s in streams:
            report.streams += 1
            seen = last_version.pop(s.stream_id, None)
            if s.state == "tombstoned":
                if seen is not None:
                    found("stream", s.stream_id, "tombstoned, yet events of it are in the log")
                continue
            if seen is None:
                # Written after the scan started (the log was read up to the head then).
                continue
            if s.version < seen:
                found("stream", s.stream_id, f"listed at version {s.version}, log has {seen}")
            await _check_snapshot(store, s.stream_id, s.version, found, report)
        if len(streams) < PAGE:
            break
        stream_after = streams[-1].stream_id
    for stream_id in sorted(last_version)[:max_problems]:
        found("stream", stream_id, "has events in the log but is not listed")


async def _check_snapshot(
    store: AsyncEventStore, stream_id: str, version: int, found: _Found, report: VerifyReport
) -> None:
    try:
        snapshot = await store.backend.get_snapshot(stream_id)
    except StreamDeleted:
        return
    if snapshot is None:
        return
    report.snapshots += 1
    if snapshot.version > version:
        found(
            "snapshot",
            stream_id,
            f"snapshot at version {snapshot.version} is ahead of the stream ({version})",
        )
    try:
        _codec.decode(snapshot.data)
    except SerializationError as e:
        found("snapshot", stream_id, f"data: {e}")


# -- subscriptions -------------------------------------------------------------------------


@dataclass(frozen=True)
class SubscriptionInfo:
    """A named subscription or projection: its checkpoint, lag and parked events."""

    name: str
    position: int
    lag: int
    """Events in the log after the checkpoint (at least this many when ``lag_capped``)."""
    lag_capped: bool
    parked: int


async def subscriptions(store: AsyncEventStore) -> list[SubscriptionInfo]:
    """Every named checkpoint with its lag in events and its number of parked events."""
    backend = store.backend
    count = partitions(backend)
    out = []
    for name, position in (await backend.list_checkpoints()).items():
        if name.startswith(_format.INTERNAL_PREFIX):
            continue
        lag, after = 0, position
        part = partition_of_checkpoint(name, count)
        while lag < LAG_LIMIT and part is not None:
            got = await page(backend, part, after, PAGE)
            lag += len(got.events)
            if len(got.events) < PAGE:
                break
            after = got.scanned_to
        parked, letter_after = 0, 0
        while letters := await backend.dead_letters(name, letter_after, PAGE):
            parked += len(letters)
            letter_after = letters[-1].position
        out.append(SubscriptionInfo(name, position, lag, lag >= LAG_LIMIT, parked))
    return out


def parked_names(store: AsyncEventStore, name: str, partition: int | None = None) -> list[str]:
    """Where projection ``name`` keeps its dead letters: its checkpoint name, or in a store
    of several log partitions one name per partition (``name#j``; only ``partition``'s if
    given)."""
    base = store.checkpoint_name(name)
    count = partitions(store.backend)
    if count == 1 or partition_of_checkpoint(base, count) is not None:
        if partition not in (None, 0) and count == 1:
            raise InvalidInput(f"partition {partition} does not exist: this store has one")
        return [base]
    if partition is None:
        return progress_names(base, count)
    if not 0 <= check.non_negative_int(partition, "partition") < count:
        raise InvalidInput(f"partition {partition} does not exist: this store has {count}")
    return [f"{base}#{partition}"]


async def parked_events(
    store: AsyncEventStore,
    name: str,
    *,
    after: int = 0,
    limit: int = 100,
    partition: int | None = None,
) -> list[DeadLetter]:
    """The events projection ``name`` parked (its dead letters), in position order.

    In a store of several log partitions: those of ``partition`` (positions within it), or
    without it those of every partition, partition by partition, each after ``after`` (a
    letter's ``name`` ends in ``#j``, its partition), as ``Projection.dead_letters`` lists
    them. Replaying them needs the projection's handler: ``Projection.replay()`` (or
    ``evstore subscriptions replay MODULE:FACTORY``).
    """
    check.non_negative_int(after, "after")
    limit = check.positive_int(limit, "limit")
    letters: list[DeadLetter] = []
    for stored_as in parked_names(store, name, partition):
        if len(letters) < limit:
            letters += await store.backend.dead_letters(stored_as, after, limit - len(letters))
    return letters


async def discard_parked(
    store: AsyncEventStore, name: str, position: int, *, partition: int | None = None
) -> bool:
    """Drop the event projection ``name`` parked at ``position`` (in a store of several log
    partitions, of ``partition``); return whether it was parked. The projection's
    checkpoint does not move: the event is not handled."""
    check.non_negative_int(position, "position")
    names = parked_names(store, name, partition)
    if len(names) > 1:
        raise InvalidInput(
            f"this store has {len(names)} log partitions, each with positions of its own: "
            "pass partition= to discard a parked event"
        )
    return await store.backend.unpark(names[0], position)


async def reset_checkpoint(store: AsyncEventStore, name: str, position: int = 0) -> int | None:
    """Move a named checkpoint (0: replay from the start); return where it was.

    Stop the subscription or projection first, and reset its read model yourself: on its
    next start it handles every event after ``position`` again.
    """
    if not isinstance(position, int) or isinstance(position, bool) or position < 0:
        raise InvalidInput(f"position must be a non-negative int, got {position!r}")
    part = partition_of_checkpoint(name, partitions(store.backend))
    if part is None:
        raise InvalidInput(f"{name!r} is not a checkpoint of one log partition (name#j)")
    head = (await heads(store.backend))[part]
    if position > head:
        raise InvalidInput(f"position {position} is past the log's head ({head})")
    before = await store.backend.get_checkpoint(name)
    await store.backend.set_checkpoint(name, position)
    return before
