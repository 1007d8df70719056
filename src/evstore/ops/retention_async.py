"""Scavenge: physically remove what retention has expired. Written once for asyncio;
``retention.py`` is generated.

Reads never return expired events (see :meth:`evstore.EventStore.set_retention`);
:func:`scavenge` frees their space. For every stream with a limit (its own or its
category's) it finds the lowest version still kept - by ``truncate_before``, by
``max_count`` against the stream's version now, and by ``max_age`` from the first event
recorded after the cut-off - and has the backend cut the stream below it
(:class:`~evstore.spi.AsyncTruncatableLog`). The last event of a stream always stays, so
its version is kept; versions never renumber, snapshots stay.

Safe beside writers and subscribers: a cut is computed from what is stored when the
stream is reached, appends only add versions above it, and the policy is read again just
before each cut, so a limit loosened meanwhile is honoured. Protected streams are never
touched.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from evstore.errors import InvalidInput, StreamDeleted
from evstore.spi.backend_async import AsyncTruncatableLog
from evstore.store._retention_rules import RetentionPolicy
from evstore.store.facade_async import AsyncEventStore

PAGE = 1000


@dataclass
class ScavengeReport:
    """What :func:`scavenge` examined and freed."""

    streams: int = 0
    """Streams examined (every stream of the store)."""
    truncated: int = 0
    """Streams that lost events."""
    events: int = 0
    """Events removed (with ``dry_run``: that would be removed, at most)."""
    protected: int = 0
    """Streams left alone because they are protected."""
    dry_run: bool = False

    def summary(self) -> str:
        """One line for operators."""
        verb = "would free up to" if self.dry_run else "freed"
        return (
            f"{verb} {self.events} events in {self.truncated} streams "
            f"({self.streams} streams examined, {self.protected} protected)"
        )


async def _cut(store: AsyncEventStore, stream_id: str, policy: RetentionPolicy) -> int:
    """The version below which the stream's events are expired now (1: none is)."""
    backend = store.backend
    last = await backend.stream_version(stream_id)
    if last == 0:
        # Soft-deleted (or empty): its events are hidden already; only a limit by
        # truncation applies (the stream's versions are not known to this API).
        return 1
    low = policy.floor(last)
    cutoff = policy.cutoff(datetime.now(UTC))
    if cutoff is not None:
        version = low
        while version <= last:
            page = await backend.read_stream(stream_id, version, None, PAGE, False)
            fresh = [r.version for r in page if r.recorded_at >= cutoff]
            if fresh:
                version = fresh[0]
                break
            if len(page) < PAGE:
                version = last + 1
                break
            version = page[-1].version + 1
        low = max(low, version)
    return min(low, last)  # the last event stays: the stream keeps its version


async def scavenge(
    store: AsyncEventStore,
    *,
    dry_run: bool = False,
    progress: Callable[[int, int | None], None] | None = None,
) -> ScavengeReport:
    """Remove every expired event from the store; return what was freed.

    ``dry_run``: find what would be removed (counted by versions: events a soft delete or
    an earlier scavenge removed already are counted again), remove nothing. Needs a
    backend with the :class:`~evstore.spi.AsyncTruncatableLog` tier (every built-in one);
    raises ``InvalidInput`` otherwise.
    """
    backend = store.backend
    if not isinstance(backend, AsyncTruncatableLog):
        raise InvalidInput(
            f"{type(backend).__name__} cannot remove events (no TruncatableLog tier); reads "
            "still leave expired events out"
        )
    report = ScavengeReport(dry_run=dry_run)
    view = store._retention
    rules = await view.refresh(force=True)
    after: str | None = None
    while True:
        page = await store.list_streams(after=after, limit=PAGE)
        for summary in page:
            report.streams += 1
            if summary.state == "tombstoned" or summary.stream_id == view.stream_id:
                continue
            policy = rules.effective(summary.stream_id)
            if policy.protected:
                report.protected += 1
                continue
            if not policy.limited:
                continue
            try:
                before = await _cut(store, summary.stream_id, policy)
                if before <= 1:
                    continue
                if dry_run:
                    removed = before - 1
                else:
                    rules = await view.refresh(force=True)  # a limit changed meanwhile counts
                    now = rules.effective(summary.stream_id)
                    if now != policy:
                        if not now.limited:
                            continue
                        before = min(before, await _cut(store, summary.stream_id, now))
                    removed = await backend.truncate_stream(summary.stream_id, before)
            except StreamDeleted:
                continue  # hard-deleted meanwhile: its events are gone already
            if removed:
                report.truncated += 1
                report.events += removed
        if progress is not None:
            progress(report.streams, None)
        if len(page) < PAGE:
            return report
        after = page[-1].stream_id
