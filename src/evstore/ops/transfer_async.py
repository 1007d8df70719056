"""Export, import and copy a whole store. Written once for asyncio; ``transfer.py`` is generated.

All three stream the log in pages (memory stays bounded by the page size, the number of
checkpoints and the number of streams with a soft-deleted prefix) and write to the
destination through the backend interface (:mod:`evstore.spi`), so that what the public API
hides is carried too: ``recorded_at`` (``PendingEvent.recorded_at``), soft and hard delete
state, every named checkpoint (``list_checkpoints``) and dead letters.

Events keep their stream, version, event id, type, data, metadata, schema version and both
timestamps; positions are the destination's own, so each named checkpoint is *translated*:
a checkpoint at source position ``P`` becomes the destination position just before the copy
of the first source event after ``P``, so a subscription resumes at the same event.

Both import and copy are resumable: progress is a checkpoint named ``$evstore.import.<id>``
or ``$evstore.copy`` in the destination, and appends are idempotent by event id, so running
the same command again after an interruption continues where it stopped.

A store of ``P > 1`` log partitions is carried partition by partition into a store of the
same ``P`` (each partition in its order; a stream's events go to the same partition on both
sides): progress is a checkpoint per partition (``...#j``), and a subscription's checkpoints
``name#j`` - its cursor - are translated component by component.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from evstore._types import ANY, AppendResult
from evstore.errors import (
    ConcurrencyError,
    DuplicateEventId,
    InvalidInput,
    StreamDeleted,
    StreamNotFound,
)
from evstore.ops import _format
from evstore.ops.log_async import (
    heads,
    page,
    partition_of_checkpoint,
    partitions,
    progress_names,
    records,
)
from evstore.spi._model import EventRecord, LogFilter, PendingEvent, StreamSummary
from evstore.spi.backend_async import AsyncBackend, AsyncTruncatableLog
from evstore.store.facade_async import AsyncEventStore

PAGE = 1000
MAX_BATCH = 500  # events of one stream appended at once
SAVE_EVERY = 1000  # events between two progress checkpoints
COPY_PROGRESS = _format.INTERNAL_PREFIX + "copy"

Progress = Callable[[int, int | None], None]
"""Called with (events done, events expected or None) as a long operation advances."""


@dataclass
class TransferReport:
    """What an export, import or copy did, and what it could not carry."""

    events: int = 0
    streams: int = 0
    snapshots: int = 0
    dead_letters: int = 0
    checkpoints: dict[str, tuple[int, int]] = field(default_factory=dict)
    """Each named checkpoint: (source position, destination position)."""
    problems: list[str] = field(default_factory=list)
    """What could not be carried, one sentence each."""
    notes: list[str] = field(default_factory=list)
    """What the destination keeps differently, with no event lost (e.g. tombstone versions)."""
    resumed: bool = False
    """This run continued an interrupted (or finished) run of the same import or copy."""
    resumed_from: int = 0
    """The source position it continued from (with ``P > 1``: the sum over partitions)."""
    rounds: int = 0
    """Copy: the passes over the source log (the first, catch-ups, the final sync)."""
    source_head: int = 0
    """The source position up to which events were carried."""
    source_moved: bool = False
    """Copy: the source took writes after the final sync (run copy again to carry them)."""

    def summary(self) -> str:
        """One line for operators."""
        text = (
            f"{self.events} events, {self.streams} streams, {self.snapshots} snapshots, "
            f"{len(self.checkpoints)} checkpoints, {self.dead_letters} dead letters"
        )
        if self.resumed:
            text += f"; resumed at source position {self.resumed_from}"
        if self.source_moved:
            text += "; the source took writes after the final sync: run again to carry them"
        if self.problems:
            text += f"; {len(self.problems)} problem(s)"
        return text


# -- reading a source ----------------------------------------------------------------------


async def _streams(backend: AsyncBackend) -> AsyncIterator[StreamSummary]:
    after: str | None = None
    while True:
        page = await backend.list_streams(after, PAGE)
        for summary in page:
            yield summary
        if len(page) < PAGE:
            return
        after = page[-1].stream_id


async def _hidden_through(backend: AsyncBackend, summary: StreamSummary) -> int:
    """The last version a soft delete hid (0: none): such events are in the log, unread."""
    if summary.state == "deleted":
        return summary.version
    if summary.state != "live":
        return 0
    try:
        first = await backend.read_stream(summary.stream_id, 1, None, 1, False)
    except StreamDeleted:
        return 0
    return first[0].version - 1 if first else 0


async def _checkpoints(backend: AsyncBackend) -> dict[str, int]:
    stored = await backend.list_checkpoints()
    return {n: p for n, p in stored.items() if not n.startswith(_format.INTERNAL_PREFIX)}


def _same_id(a: str, b: str) -> bool:
    return a == b or a.replace("-", "").lower() == b.replace("-", "").lower()


async def _find(
    backend: AsyncBackend, stream_id: str, version: int, event_id: str, partition: int = 0
) -> int | None:
    """The destination position of an event, by stream and version, checked by event id
    (``partition``: the stream's log partition)."""
    try:
        found = await backend.read_stream(stream_id, version, version, 1, False)
    except StreamDeleted:
        return None
    if found and _same_id(found[0].event_id, event_id):
        return found[0].position
    # Hidden by a soft delete: still in the log, found by scanning the stream's events.
    after = 0
    where = LogFilter(stream_prefix=stream_id)
    while True:
        found_page = await page(backend, partition, after, PAGE, where)
        for r in found_page.events:
            if r.stream_id == stream_id and _same_id(r.event_id, event_id):
                return r.position
        if len(found_page.events) < PAGE or found_page.scanned_to <= after:
            return None
        after = found_page.scanned_to


# -- writing a destination -----------------------------------------------------------------


class _Appender:
    """Appends source events to a destination in source order, batching runs of one stream."""

    def __init__(
        self,
        store: AsyncEventStore,
        report: TransferReport,
        progress_name: str,
        progress: Progress | None,
        total: int | None,
    ) -> None:
        self._store = store
        self._backend = store.backend
        self._report = report
        count = partitions(store.backend)
        self._progress_names = progress_names(progress_name, count)
        self._progress = progress
        self._total = total
        self._batch: list[EventRecord] = []
        self._unsaved = 0
        self.done = 0
        self.hidden: dict[str, int] = {}
        self.tombstoned: set[str] = set()
        # Per log partition (one entry when P == 1):
        self.last_source = [0] * count
        self.last_destination = [0] * count
        # Import: checkpoints waiting for the first event after them, ascending.
        self.pending: list[list[tuple[int, str]]] = [[] for _ in range(count)]

    async def add(self, record: EventRecord) -> None:
        batch = self._batch
        if batch and (
            record.stream_id != batch[0].stream_id
            or record.version != batch[-1].version + 1
            or len(batch) >= MAX_BATCH
        ):
            await self.flush()
        self._batch.append(record)
        if self.hidden.get(record.stream_id) == record.version:
            await self.flush()

    async def flush(self) -> None:
        batch, self._batch = self._batch, []
        if not batch:
            return
        first, last = batch[0], batch[-1]
        sid = first.stream_id
        pending = [
            PendingEvent(
                r.event_id, r.type, r.data, r.metadata, r.schema_version, r.occurred_at,
                r.recorded_at,
            )
            for r in batch
        ]  # fmt: skip
        try:
            result = await self._append(sid, pending, first.version)
        except (ConcurrencyError, DuplicateEventId, StreamDeleted) as e:
            self._report.problems.append(
                f"events {sid}@{first.version}..{last.version} (source positions "
                f"{first.position}..{last.position}) not written: {type(e).__name__}: {e}"
            )
        else:
            waiting = self.pending[first.partition]
            for record, position in zip(batch, result.positions, strict=True):
                while waiting and waiting[0][0] < record.position:
                    _, name = waiting.pop(0)
                    await self._set_checkpoint(name, position - 1)
            self.last_destination[result.partition] = result.positions[-1]
            if self.hidden.get(sid) == last.version:
                await self._soft_delete(sid, last.version)
        self.last_source[first.partition] = last.position
        self.done += len(batch)
        self._report.events += len(batch)
        self._unsaved += len(batch)
        if self._unsaved >= SAVE_EVERY:
            await self.save()
        if self._progress is not None:
            self._progress(self.done, self._total)

    async def _append(self, sid: str, pending: list[PendingEvent], version: int) -> AppendResult:
        """Append ``pending`` as versions ``version ...`` of ``sid``.

        A stream whose first versions were removed by retention (scavenge) starts at a
        later version: the destination's stream is started there
        (``truncate_stream``, as a soft delete through ``version - 1``), so versions never
        renumber.
        """
        placement = self._store._placement(sid)
        try:
            return await self._backend.append(sid, pending, version - 1, placement)
        except ConcurrencyError as e:
            if e.actual != 0 or version == 1:
                raise
            if not isinstance(self._backend, AsyncTruncatableLog):
                raise
            await self._backend.truncate_stream(sid, version)
        return await self._backend.append(sid, pending, version - 1, placement)

    async def save(self) -> None:
        """Store how far the source has been carried (a resumed run starts there)."""
        for name, last in zip(self._progress_names, self.last_source, strict=True):
            if last:
                await self._backend.set_checkpoint(name, last)
        self._unsaved = 0

    async def _set_checkpoint(self, name: str, position: int) -> None:
        await self._backend.set_checkpoint(name, position)
        source = self._report.checkpoints.get(name, (0, 0))[0]
        self._report.checkpoints[name] = (source, position)

    async def finish_pending(self) -> None:
        """Checkpoints at or past the last event: they point at the destination's end."""
        ends = await heads(self._backend)
        for j, waiting in enumerate(self.pending):
            for _, name in waiting:
                await self._set_checkpoint(name, self.last_destination[j] or ends[j])
            waiting.clear()

    async def _soft_delete(self, stream_id: str, version: int) -> None:
        try:
            await self._backend.delete_stream(stream_id, False, version)
        except (ConcurrencyError, StreamNotFound):
            # Already hidden by an earlier, interrupted run?
            if await self._backend.read_stream(stream_id, version, version, 1, False):
                self._report.problems.append(
                    f"stream {stream_id}: could not hide versions 1..{version} "
                    "(soft delete) on the destination"
                )

    async def tombstone(self, stream_id: str, version: int) -> None:
        with contextlib.suppress(StreamDeleted):  # already tombstoned (a resumed run)
            await self._backend.delete_stream(stream_id, True, ANY)
        self.tombstoned.add(stream_id)
        if version:
            self._report.notes.append(
                f"stream {stream_id}: tombstoned at version {version}; the destination's "
                "tombstone does not keep the version (its events were gone already)"
            )


async def _start(backend: AsyncBackend, progress_name: str) -> list[int] | None:
    """Where a run starts, per partition: after an interrupted run's progress, or at 0 in
    an empty store.

    A fresh run needs an empty destination (positions and checkpoints translate one to
    one), and marks its start before it writes anything, so that an interruption at any
    point leaves progress to resume from.
    """
    names = progress_names(progress_name, partitions(backend))
    stored = [await backend.get_checkpoint(name) for name in names]
    if any(position is not None for position in stored):
        return [position or 0 for position in stored]  # resumed
    if await backend.head_position() > 0:
        raise InvalidInput(
            "the destination is not empty (and holds no progress of an interrupted run of "
            "this import or copy); use a new, empty store"
        )
    for name in names:
        await backend.set_checkpoint(name, 0)
    return None  # a fresh run


def _same_partitions(source: int, destination: int, what: str) -> None:
    if source != destination:
        raise InvalidInput(
            f"{what} has {source} log partition(s), the destination {destination}: positions "
            "and checkpoints are carried partition by partition, so both need the same "
            "partitions= (to change it, see docs/scaling.md)"
        )


# -- export --------------------------------------------------------------------------------


async def export_store(
    store: AsyncEventStore,
    path: str | Path,
    *,
    compression: str | None = None,
    source: str = "",
    progress: Progress | None = None,
) -> TransferReport:
    """Write the whole store to ``path`` as JSON Lines (see :mod:`evstore.ops._format`).

    ``compression``: ``"none"``, ``"gzip"`` or ``"zstd"`` (default: from the file name,
    ``.gz`` or ``.zst``). The events are those up to the head at the start; the store may
    take writes meanwhile (they are left for the next export). ``source`` names the store
    in the header (a URL's password is removed).
    """
    kind = _format.compression_for(path, compression)
    backend = store.backend
    count = partitions(backend)
    ends = await heads(backend)
    head = sum(ends)
    stats = await backend.stats()
    checkpoints = await _checkpoints(backend)
    report = TransferReport(source_head=head)
    done = 0
    with _format.open_write(path, kind) as out:
        out.write(
            _format.dumps(
                {
                    "kind": "header",
                    "format": _format.FORMAT,
                    "version": _format.VERSION,
                    "id": uuid.uuid4().hex,
                    "source": _format.redact(source),
                    "exported_at": datetime.now(UTC).isoformat(),
                    "head_position": head,
                    "events": stats.get("events"),
                    "partitions": count,
                    "heads": ends,
                }
            )
        )
        for name, position in checkpoints.items():
            out.write(_format.dumps({"kind": "checkpoint", "name": name, "position": position}))
            report.checkpoints[name] = (position, position)
        async for summary in _streams(backend):
            hidden = await _hidden_through(backend, summary)
            out.write(_format.dumps(_format.stream_line(summary, hidden)))
            report.streams += 1
        for j in range(count):
            async for record in records(backend, j, 0, ends[j], PAGE):
                out.write(_format.dumps(_format.event_line(record, count > 1)))
                done += 1
                if progress is not None and done % PAGE == 0:
                    progress(done, stats.get("events"))
        report.events = done
        async for summary in _streams(backend):
            if summary.state == "tombstoned":
                continue
            snapshot = await backend.get_snapshot(summary.stream_id)
            if snapshot is not None:
                out.write(_format.dumps(_format.snapshot_line(snapshot)))
                report.snapshots += 1
        for name in checkpoints:
            after = 0
            while letters := await backend.dead_letters(name, after, PAGE):
                for letter in letters:
                    out.write(_format.dumps(_format.letter_line(letter)))
                report.dead_letters += len(letters)
                after = letters[-1].position
        out.write(
            _format.dumps(
                {
                    "kind": "end",
                    "counts": {
                        "events": report.events,
                        "streams": report.streams,
                        "snapshots": report.snapshots,
                        "checkpoints": len(checkpoints),
                        "dead_letters": report.dead_letters,
                    },
                }
            )
        )
    if progress is not None:
        progress(done, done)
    return report


# -- import --------------------------------------------------------------------------------

_ORDER = {"checkpoint": 1, "stream": 2, "event": 3, "snapshot": 4, "dead_letter": 5, "end": 6}


async def import_store(
    store: AsyncEventStore, path: str | Path, *, progress: Progress | None = None
) -> TransferReport:
    """Load an export file into ``store``; run it again to resume after an interruption.

    Idempotent: events already stored (same ids at the same place) are not written twice.
    Checkpoints are translated to this store's positions; dead letters point at the copies
    of their events. Raises ``InvalidInput`` for a file that is not an evstore export or is
    truncated (everything before the damage has been imported; fix the file and run again).
    """
    backend = store.backend
    with _format.open_read(path) as lines:
        header = _header(next(iter(lines), b""), path)
        count = partitions(backend)
        _same_partitions(int(header.get("partitions") or 1), count, f"the export {path}")
        progress_name = f"{_format.INTERNAL_PREFIX}import.{header.get('id', 'unknown')}"
        started = await _start(backend, progress_name)
        resume = started or [0] * count
        report = TransferReport(resumed=started is not None, resumed_from=sum(resume))
        report.source_head = int(header.get("head_position") or 0)
        appender = _Appender(store, report, progress_name, progress, header.get("events"))
        section = 0
        skipped = 0
        ended = False
        for number, line in enumerate(lines, start=2):
            try:
                obj = orjson.loads(line)
                kind = obj["kind"]
                order = _ORDER[kind]
            except (orjson.JSONDecodeError, KeyError, TypeError) as e:
                raise InvalidInput(f"{path}, line {number}: not an export line ({e!r})") from e
            if order < section:
                raise InvalidInput(f"{path}, line {number}: a {kind} line out of its section")
            if order > 3 >= section:
                await appender.flush()
                await appender.save()
                await appender.finish_pending()
            section = order
            if kind == "event":
                record = _format.event_from(obj)
                if not 0 <= record.partition < count:
                    raise InvalidInput(f"{path}, line {number}: no partition {record.partition}")
                if record.position < resume[record.partition]:
                    skipped += 1
                    waiting = appender.pending[record.partition]
                    while waiting and waiting[0][0] < record.position:
                        waiting.pop(0)
                    continue
                await appender.add(record)
            elif kind == "checkpoint":
                name, position = str(obj["name"]), int(obj["position"])
                j = partition_of_checkpoint(name, count)
                if j is None:
                    report.problems.append(_no_partition(name))
                    continue
                appender.pending[j].append((position, name))
                appender.pending[j].sort()
                report.checkpoints[name] = (position, 0)
            elif kind == "stream":
                await _import_stream(appender, obj, report)
            elif kind == "snapshot":
                await _save_snapshot(store, _format.snapshot_from(obj), report)
            elif kind == "dead_letter":
                await _carry_letter(store, _format.letter_from(obj), report)
            else:
                ended = True
        if section <= 3:
            await appender.flush()
            await appender.save()
            await appender.finish_pending()
    if not ended:
        raise InvalidInput(
            f"{path} ends before its 'end' line: the file is truncated; everything before "
            "the damage was imported (run the import again with a complete file to finish)"
        )
    return report


def _header(line: bytes, path: str | Path) -> dict[str, Any]:
    try:
        header = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        raise InvalidInput(f"{path} is not an evstore export (no JSON header line)") from e
    if not isinstance(header, dict) or header.get("format") != _format.FORMAT:
        raise InvalidInput(f"{path} is not an evstore export (format {_format.FORMAT!r})")
    if header.get("version") != _format.VERSION:
        raise InvalidInput(
            f"{path} has export format version {header.get('version')!r}; this evstore "
            f"reads version {_format.VERSION}"
        )
    return header


async def _import_stream(appender: _Appender, obj: dict[str, Any], report: TransferReport) -> None:
    report.streams += 1
    sid, state = str(obj["stream_id"]), str(obj["state"])
    if state == "tombstoned":
        await appender.tombstone(sid, int(obj.get("version") or 0))
    elif int(obj.get("hidden_through") or 0):
        appender.hidden[sid] = int(obj["hidden_through"])


async def _save_snapshot(store: AsyncEventStore, snapshot: Any, report: TransferReport) -> None:
    try:
        await store.backend.save_snapshot(snapshot)
    except StreamDeleted:
        report.problems.append(f"snapshot of {snapshot.stream_id}: the stream is tombstoned")
        return
    report.snapshots += 1


def _no_partition(name: str) -> str:
    return (
        f"checkpoint {name}: not of one log partition (a subscription's are name#j in a "
        "store of several); not carried"
    )


async def _carry_letter(store: AsyncEventStore, letter: Any, report: TransferReport) -> None:
    backend = store.backend
    part = store._placement(letter.stream_id).log_partition
    position = await _find(backend, letter.stream_id, letter.version, letter.event_id, part)
    if position is None:
        report.problems.append(
            f"dead letter {letter.name}@{letter.position} ({letter.stream_id}@{letter.version})"
            ": its event is not in the destination"
        )
        return
    await backend.park(letter._replace(position=position))
    report.dead_letters += 1


# -- copy ----------------------------------------------------------------------------------


async def copy_store(
    source: AsyncEventStore,
    destination: AsyncEventStore,
    *,
    progress: Progress | None = None,
    settle: int = 1000,
    max_rounds: int = 10,
) -> TransferReport:
    """Copy everything from ``source`` to ``destination``, while the source takes writes.

    A first pass copies the log up to the head it finds; catch-up passes copy what was
    written meanwhile, until a pass carries fewer than ``settle`` events (or after
    ``max_rounds`` passes): that pass is the final sync. Then stream delete states,
    snapshots, checkpoints (translated) and dead letters are carried. ``source_moved`` in
    the report says the source was written during the final sync: stop its writers and
    run the copy again, which resumes and carries the rest.
    """
    src, dst = source.backend, destination.backend
    count = partitions(src)
    _same_partitions(count, partitions(dst), "the source")
    started = await _start(dst, COPY_PROGRESS)
    resume = started or [0] * count
    report = TransferReport(resumed=started is not None, resumed_from=sum(resume))
    total = (await src.stats()).get("events")
    appender = _Appender(destination, report, COPY_PROGRESS, progress, total)
    async for summary in _streams(src):
        if summary.state == "tombstoned":
            await appender.tombstone(summary.stream_id, summary.version)
        else:
            hidden = await _hidden_through(src, summary)
            if hidden:
                appender.hidden[summary.stream_id] = hidden
    # Resume inclusive: the last event carried is appended again (idempotently), which
    # also tells where the destination stands.
    after = [max(r - 1, 0) for r in resume]
    while True:
        ends = await heads(src)
        before = appender.done
        for j in range(count):
            async for record in records(src, j, after[j], ends[j], PAGE):
                await appender.add(record)
            await appender.flush()
        await appender.save()
        after = [max(a, e) for a, e in zip(after, ends, strict=True)]
        report.rounds += 1
        if appender.done - before < settle or report.rounds >= max_rounds:
            break
    report.source_head = sum(after)
    await _reconcile_streams(src, dst, appender, report)
    async for summary in _streams(src):
        report.streams += 1
        if summary.state == "tombstoned":
            continue
        snapshot = await src.get_snapshot(summary.stream_id)
        if snapshot is not None:
            await _save_snapshot(destination, snapshot, report)
    names = await _checkpoints(src)
    for name, position in names.items():
        part = partition_of_checkpoint(name, count)
        if part is None:
            report.problems.append(_no_partition(name))
            continue
        translated = await _translate(src, dst, part, position, after[part], report, name)
        if translated is not None:
            await dst.set_checkpoint(name, translated)
            report.checkpoints[name] = (position, translated)
    for name in names:
        letter_after = 0
        while letters := await src.dead_letters(name, letter_after, PAGE):
            for letter in letters:
                await _carry_letter(destination, letter, report)
            letter_after = letters[-1].position
    report.source_moved = any(e > a for e, a in zip(await heads(src), after, strict=True))
    return report


async def _reconcile_streams(
    src: AsyncBackend, dst: AsyncBackend, appender: _Appender, report: TransferReport
) -> None:
    """Deletes the source took while it was copied: carry them now."""
    async for summary in _streams(src):
        sid = summary.stream_id
        if summary.state == "tombstoned":
            if sid not in appender.tombstoned:
                await appender.tombstone(sid, summary.version)
        elif summary.state == "deleted":
            try:
                visible = await dst.stream_version(sid)
            except StreamDeleted:
                continue
            if visible:
                await appender._soft_delete(sid, summary.version)
        elif appender.hidden.get(sid, 0) != await _hidden_through(src, summary):
            report.problems.append(
                f"stream {sid}: soft-deleted and written again while it was copied; the "
                "destination shows its older versions (copy again into an empty store)"
            )


async def _translate(
    src: AsyncBackend,
    dst: AsyncBackend,
    partition: int,
    position: int,
    copied_to: int,
    report: TransferReport,
    name: str,
) -> int | None:
    """The destination position that stands where ``position`` (of ``partition``) stands
    in the source (a stream's events are in the same partition on both sides)."""
    if position > copied_to:
        report.problems.append(
            f"checkpoint {name} ({position}) is past what was copied ({copied_to}): stop the "
            "source's writers and subscribers and copy again"
        )
    following = (await page(src, partition, position, 1)).events
    if not following or following[0].position > copied_to:
        return (await heads(dst))[partition]
    event = following[0]
    found = await _find(dst, event.stream_id, event.version, event.event_id, partition)
    if found is None:
        report.problems.append(
            f"checkpoint {name}: the event after it ({event.stream_id}@{event.version}) is "
            "not in the destination; checkpoint not carried"
        )
        return None
    return found - 1


__all__ = ["TransferReport", "copy_store", "export_store", "import_store"]
