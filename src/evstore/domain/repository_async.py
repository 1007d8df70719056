"""Load and save aggregates, with snapshots and a cache; ``_sync.repository`` is generated.

Loading takes the newest usable base - a cached state, else the stream's snapshot - and
applies only the events after it (``from_version = base + 1``: the seed applied the
snapshot's last event twice). Saving appends the pending events with
``expected_version`` = the version the aggregate was loaded at (0 for a new one: the
seed's ``-1`` never matched), so of two concurrent saves exactly one wins. A snapshot is
taken when a save *crosses* a multiple of ``snapshot_every`` (98 -> 103 does; the seed
only snapshotted when a save landed exactly on one).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from evstore import _aio, _codec
from evstore import _validation as check
from evstore._types import AppendResult, Snapshot
from evstore.domain.aggregate import Aggregate
from evstore.domain.cache import LRUCache
from evstore.domain.registry import EventRegistry
from evstore.errors import (
    ConcurrencyError,
    EvstoreError,
    InvalidInput,
    SerializationError,
    StreamDeleted,
    StreamNotFound,
)
from evstore.observability import track_cache
from evstore.store.facade_async import AsyncEventStore

log = logging.getLogger("evstore.repository")

A = TypeVar("A", bound=Aggregate)

DEFAULT_CACHE_ENTRIES = 1000
DEFAULT_CACHE_BYTES = 32 * 1024 * 1024


class AsyncRepository(Generic[A]):
    """Loads and saves aggregates of one class; the aggregate's ``id`` is its stream id.

    ``snapshot_every`` (default 100; ``None`` for never) sets how often snapshots are
    taken. A snapshot stored with another schema version than the class's
    (:meth:`Aggregate.snapshot_schema_version`) is ignored, and replaced at the next save.

    ``cache=True`` (default) keeps recent aggregate states and snapshots in two LRU caches
    (``states`` and ``snapshots``) bounded by ``cache_entries`` and ``cache_bytes`` each. A
    cached state is always brought up to date by reading the events after its version, so
    appends by other processes are never missed; a soft delete since the cached version (by
    any path) is noticed too, and the aggregate is rebuilt from what is visible.
    """

    def __init__(
        self,
        store: AsyncEventStore,
        aggregate_class: type[A],
        *,
        registry: EventRegistry,
        snapshot_every: int | None = 100,
        cache: bool = True,
        cache_entries: int = DEFAULT_CACHE_ENTRIES,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
    ) -> None:
        if not isinstance(store, AsyncEventStore):
            raise InvalidInput(f"store must be an AsyncEventStore, got {type(store).__name__}")
        if not (isinstance(aggregate_class, type) and issubclass(aggregate_class, Aggregate)):
            raise InvalidInput(f"aggregate_class must subclass Aggregate, got {aggregate_class!r}")
        if not isinstance(registry, EventRegistry):
            raise InvalidInput(f"registry must be an EventRegistry, got {type(registry).__name__}")
        if snapshot_every is not None and (
            isinstance(snapshot_every, bool)
            or not isinstance(snapshot_every, int)
            or snapshot_every < 1
        ):
            raise InvalidInput(
                f"snapshot_every must be an int >= 1 or None, got {snapshot_every!r}"
            )
        self._store = store
        self._cls = aggregate_class
        self._registry = registry
        self._every = snapshot_every
        self._schema = aggregate_class.snapshot_schema_version()
        self.states: LRUCache[str, tuple[int, bytes]] | None = None
        """Recent aggregate states (version, encoded state), or None when caching is off."""
        self.snapshots: LRUCache[str, Snapshot] | None = None
        """Recent snapshots read or written, or None when caching is off."""
        if cache:
            self.states = LRUCache(cache_entries, cache_bytes)
            self.snapshots = LRUCache(cache_entries, cache_bytes)
            track_cache(self.states, f"{aggregate_class.__name__}.states")
            track_cache(self.snapshots, f"{aggregate_class.__name__}.snapshots")

    def __repr__(self) -> str:
        every = "never" if self._every is None else f"every {self._every}"
        cached = "off" if self.states is None else f"{len(self.states)} states cached"
        return f"<{type(self).__name__} of {self._cls.__name__}: snapshots {every}, cache {cached}>"

    @property
    def store(self) -> AsyncEventStore:
        """The event store the repository reads and writes."""
        return self._store

    # -- loading ---------------------------------------------------------------------------

    async def get(
        self, id: str, *, version: int | None = None, full_replay: bool = False
    ) -> A | None:
        """The aggregate with this id at its latest version, or None if it has no events.

        ``version=N``: the aggregate as it was at version N, replayed from its events
        (``InvalidInput`` if the stream is shorter). ``full_replay=True``: ignore the cache
        and the snapshot and apply every event (the cache is then refreshed) - to check a
        snapshot, or after changing how events are applied.
        """
        if version is not None:
            return await self._as_of(id, check.positive_int(version, "version"))
        if not isinstance(full_replay, bool):
            raise InvalidInput(f"full_replay must be a bool, got {full_replay!r}")
        if full_replay:
            self.forget(id)
        try:
            return await self._load(id, use_snapshot=not full_replay)
        except StreamDeleted:
            self.forget(id)
            raise

    async def load(self, id: str, *, version: int | None = None, full_replay: bool = False) -> A:
        """Like :meth:`get`, but raise ``StreamNotFound`` when the aggregate does not exist."""
        aggregate = await self.get(id, version=version, full_replay=full_replay)
        if aggregate is None:
            raise StreamNotFound(id)
        return aggregate

    async def _as_of(self, id: str, version: int) -> A | None:
        if not isinstance(id, str):
            raise InvalidInput(f"aggregate id must be a str, got {type(id).__name__}: {id!r}")
        aggregate = self._cls.create(id)
        async for recorded in self._store.iter_events(id, 1, to_version=version):
            aggregate.apply(self._registry.decode(recorded))
            aggregate.version = recorded.version
        if aggregate.version == 0:
            return None
        if aggregate.version < version:
            raise InvalidInput(f"{id} has no version {version}: it is at {aggregate.version}")
        return aggregate

    async def _load(self, id: str, *, use_snapshot: bool = True) -> A | None:
        if not isinstance(id, str):
            raise InvalidInput(f"aggregate id must be a str, got {type(id).__name__}: {id!r}")
        due = False
        cached = self.states.get(id) if self.states is not None else None
        if cached is not None:
            aggregate = self._cls.from_snapshot(id, cached[0], _codec.decode(cached[1]))
        else:
            snapshot = await self._snapshot(id) if use_snapshot else None
            if snapshot is not None and snapshot.schema_version == self._schema:
                aggregate = self._cls.from_snapshot(id, snapshot.version, snapshot.data)
            else:
                aggregate = self._cls.create(id)
                due = snapshot is not None  # another schema: replace it at the next save
        base = aggregate.version
        if base and not await self._base_is_current(id, base):
            # The stream was soft-deleted after the cached state or snapshot was taken:
            # what is visible now starts after it. Replay what is visible, from nothing.
            self.forget(id)
            cached = None
            aggregate = self._cls.create(id)
            base = 0
        async for recorded in self._store.iter_events(id, base + 1):
            aggregate.apply(self._registry.decode(recorded))
            aggregate.version = recorded.version
        if aggregate.version == 0:
            return None
        replayed = aggregate.version - base
        aggregate._snapshot_due = due or (self._every is not None and replayed >= self._every)
        if cached is None or replayed:
            self._remember(aggregate)
        return aggregate

    async def _base_is_current(self, id: str, base: int) -> bool:
        """Whether a state at version ``base`` still holds: no soft delete hid it since.

        A soft delete hides every version up to the stream's last one and keeps the
        numbering, so a state taken before it starts at or above the first visible version
        only if that delete never happened.
        """
        first = await self._store.get_events(id, 1, limit=1)
        return bool(first) and first[0].version <= base

    async def _snapshot(self, id: str) -> Snapshot | None:
        if self.snapshots is not None:
            hit = self.snapshots.get(id)
            if hit is not None:
                return hit
        try:
            snapshot = await self._store.get_snapshot(id)
        except SerializationError as e:
            # A snapshot is only an optimisation: replay the events instead (a long replay
            # makes the next save take a new snapshot).
            log.warning("ignoring the unreadable snapshot of %s: %s", id, e)
            return None
        if snapshot is not None and self.snapshots is not None:
            self.snapshots.put(id, snapshot, len(_codec.encode(snapshot.data)))
        return snapshot

    def _remember(self, aggregate: A) -> None:
        if self.states is None:
            return
        try:
            state = _codec.encode(aggregate.to_snapshot(), "aggregate state")
        except EvstoreError as e:
            log.debug("not caching %s: its state is not JSON (%s)", aggregate.id, e)
            self.states.discard(aggregate.id)
            return
        self.states.put(aggregate.id, (aggregate.version, state), len(state))

    def forget(self, id: str) -> None:
        """Drop one aggregate from the caches."""
        for cache in (self.states, self.snapshots):
            if cache is not None:
                cache.discard(id)

    # -- saving ----------------------------------------------------------------------------

    async def save(
        self, aggregate: A, *, metadata: dict[str, Any] | None = None
    ) -> AppendResult | None:
        """Append the aggregate's pending events; None when there were none.

        Raises ``ConcurrencyError`` (nothing written) when the stream moved since the
        aggregate was loaded: reload and run the command again (see :meth:`retry`).
        ``metadata`` is stored with each event. Saving again after an error whose outcome
        is unknown (a lost connection) is safe: the events keep their ids, so a repeat is
        recognised and not stored twice.
        """
        if not isinstance(aggregate, self._cls):
            raise InvalidInput(
                f"this repository saves {self._cls.__name__}, got {type(aggregate).__name__}"
            )
        aggregate.check_created()
        if not aggregate._pending:
            return None
        before = aggregate.committed_version
        events = [
            self._registry.encode(event, metadata=metadata, event_id=event_id)
            for event, event_id in aggregate._pending
        ]
        try:
            result = await self._store.append(aggregate.id, events, expected_version=before)
        except ConcurrencyError as e:
            self.forget(aggregate.id)
            if before == 0:  # a new aggregate: its id is taken, reloading will not help
                e.args = (
                    f"stream {aggregate.id!r} already exists (at version {e.actual}): a new "
                    f"{type(aggregate).__name__} needs an id no stream has",
                )
            raise
        aggregate.mark_committed()
        aggregate.version = result.version
        every = self._every
        if every is not None and (
            before // every != result.version // every or aggregate._snapshot_due
        ):
            await self._take_snapshot(aggregate)
        self._remember(aggregate)
        return result

    async def _take_snapshot(self, aggregate: A) -> None:
        try:
            snapshot = Snapshot(
                aggregate.id, aggregate.version, aggregate.to_snapshot(), self._schema
            )
            await self._store.save_snapshot(snapshot)
        except InvalidInput as e:
            # The events are committed; a snapshot is only an optimisation.
            log.warning(
                "snapshot of %s at version %d skipped: %s", aggregate.id, aggregate.version, e
            )
            return
        aggregate._snapshot_due = False
        if self.snapshots is not None:
            self.snapshots.put(aggregate.id, snapshot, len(_codec.encode(snapshot.data)))

    async def retry(
        self,
        id: str,
        command: Callable[[A], Any],
        *,
        attempts: int = 10,
        backoff: float = 0.005,
        max_backoff: float = 0.5,
    ) -> A:
        """Load, run ``command(aggregate)``, save; on ``ConcurrencyError`` reload and retry.

        ``command`` (sync or async) decides again on fresh state each time, so a rule it
        checks is never bypassed. Before retry n it sleeps a random time between 0 and
        ``min(max_backoff, backoff * 2**(n-1))`` seconds (exponential backoff with full
        jitter), so writers contending for one aggregate spread out instead of colliding
        again. Raises ``StreamNotFound`` if the aggregate does not exist, and the last
        ``ConcurrencyError`` after ``attempts`` tries.
        """
        if isinstance(attempts, bool) or not isinstance(attempts, int) or attempts < 1:
            raise InvalidInput(f"attempts must be an int >= 1, got {attempts!r}")
        for value, what in ((backoff, "backoff"), (max_backoff, "max_backoff")):
            if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
                raise InvalidInput(f"{what} must be a number of seconds >= 0, got {value!r}")
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                ceiling = min(max_backoff, backoff * 2 ** (attempt - 2))
                await _aio.sleep(random.uniform(0, ceiling))
            aggregate = await self.load(id)
            await _aio.call(command, aggregate)
            try:
                await self.save(aggregate)
            except ConcurrencyError:
                if attempt == attempts:
                    raise
                log.info("%s changed concurrently: retry %d of %d", id, attempt, attempts - 1)
                continue
            return aggregate
        raise AssertionError("unreachable")  # pragma: no cover
