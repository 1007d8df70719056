"""Retention as readers see it: the store's metadata, kept current, and the events it hides.

Written once for asyncio; ``retention.py`` is generated. :class:`AsyncRetentionView` reads
the ``$retention`` stream (see :mod:`evstore.store._retention_rules`) after the version it
has, before every stream read and every page of the global log, so a policy set by any
process is honoured by the next read; with no policy stored that is one read of an empty
stream, and nothing else is done. ``retention_refresh=`` (seconds) lets a store reuse what
it read for that long instead; its own changes and the protection checked by deletes are
always read at once.
"""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime

from evstore import _codec
from evstore.errors import ConcurrencyError
from evstore.spi._model import EventRecord, PendingEvent, Placement
from evstore.spi.backend_async import AsyncBackend
from evstore.store._retention_rules import EVENT_TYPE, RetentionPolicy, RetentionRules, encode


class AsyncRetentionView:
    """The retention metadata of one store, refreshed from its ``$retention`` stream."""

    def __init__(
        self, backend: AsyncBackend, stream_id: str, separator: str, interval: float = 0.0
    ) -> None:
        self.backend = backend
        self.stream_id = stream_id
        self.rules = RetentionRules(separator)
        self._interval = interval
        self._fresh_until = 0.0

    async def refresh(self, force: bool = False) -> RetentionRules:
        """The rules, with every metadata event stored so far applied (within the store's
        ``retention_refresh`` seconds unless ``force``)."""
        rules = self.rules
        if not force and self._interval and time.monotonic() < self._fresh_until:
            return rules
        for record in await self.backend.read_stream(
            self.stream_id, rules.version + 1, None, None, False
        ):
            rules.apply(record)
        self._fresh_until = time.monotonic() + self._interval
        return rules

    async def bounds(self, stream_id: str) -> tuple[int, datetime | None]:
        """For reads of one stream: the lowest version kept, and the oldest ``recorded_at``
        kept (None: no age limit)."""
        rules = await self.refresh()
        if not rules.limited:
            return 1, None
        policy = rules.effective(stream_id)
        if not policy.limited:
            return 1, None
        last = 0
        if policy.max_count is not None:
            last = await self.backend.stream_version(stream_id)
        return policy.floor(last), policy.cutoff(datetime.now(UTC))

    async def keep(self, records: list[EventRecord]) -> list[EventRecord]:
        """``records`` (of the global log) without the expired ones."""
        rules = await self.refresh()
        if not rules.limited or not records:
            return records
        now = datetime.now(UTC)
        limits: dict[str, tuple[int, datetime | None]] = {}
        kept = []
        for record in records:
            sid = record.stream_id
            bound = limits.get(sid)
            if bound is None:
                policy = rules.effective(sid)
                last = 0
                if policy.limited and policy.max_count is not None:
                    last = await self.backend.stream_version(sid)
                bound = limits[sid] = (
                    (policy.floor(last), policy.cutoff(now)) if policy.limited else (1, None)
                )
            floor, cutoff = bound
            if record.version < floor or (cutoff is not None and record.recorded_at < cutoff):
                continue
            kept.append(record)
        return kept

    async def set(
        self, kind: str, target: str, policy: RetentionPolicy, placement: Placement
    ) -> None:
        """Store ``policy`` for a stream or category (``InvalidInput`` if not allowed)."""
        while True:
            rules = await self.refresh(force=True)
            rules.check_change(kind, target, policy)
            event = PendingEvent(
                str(uuid.uuid4()), EVENT_TYPE, encode(kind, target, policy), _codec.EMPTY, 1,
                datetime.now(UTC),
            )  # fmt: skip
            try:
                # Expecting the version just read: a change by another process in between
                # is read and checked again (a protection cannot be raced past).
                await self.backend.append(self.stream_id, [event], rules.version, placement)
                await self.refresh(force=True)  # this store honours it at once
                return
            except ConcurrencyError:
                continue

    async def protected(self, stream_id: str) -> bool:
        """Whether the stream is never deletable (itself or by its category)."""
        return (await self.refresh(force=True)).effective(stream_id).protected
