"""A small LRU cache bounded by entries and bytes, with hit/miss counters.

The seed's three caches are instances of it: the repository's recent aggregate states
(served, then brought up to date by reading only the events after the cached version, so
a hit is never stale) and stream snapshots, and the :class:`~evstore.EventRegistry`'s
type mappings (stored type and schema version -> class and upcaster chain).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Generic, TypeVar

from evstore.errors import InvalidInput

__all__ = ["CacheStats", "LRUCache"]

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class CacheStats:
    """A cache's counters: hits, misses, evictions, and what it holds now."""

    hits: int
    misses: int
    evictions: int
    entries: int
    bytes: int

    @property
    def hit_rate(self) -> float:
        """hits / (hits + misses), 0.0 before the first lookup."""
        total = self.hits + self.misses
        return self.hits / total if total else 0.0


class LRUCache(Generic[K, V]):
    """Least-recently-used cache holding at most ``max_entries`` and ``max_bytes``.

    The caller gives each value's size in bytes; a value larger than ``max_bytes`` is not
    kept. Safe to share between threads.
    """

    def __init__(self, max_entries: int = 1000, max_bytes: int = 32 * 1024 * 1024) -> None:
        for what, n in (("max_entries", max_entries), ("max_bytes", max_bytes)):
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                raise InvalidInput(f"{what} must be an int >= 1, got {n!r}")
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._items: OrderedDict[K, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._hits = self._misses = self._evictions = 0
        self._lock = threading.Lock()

    def get(self, key: K) -> V | None:
        """The cached value (now the most recent), or None; counts a hit or a miss."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                self._misses += 1
                return None
            self._items.move_to_end(key)
            self._hits += 1
            return item[0]

    def put(self, key: K, value: V, size: int) -> None:
        """Cache ``value`` (``size`` bytes), evicting the least recently used as needed."""
        with self._lock:
            self._drop(key)
            if size > self.max_bytes:
                return
            self._items[key] = (value, size)
            self._bytes += size
            while len(self._items) > self.max_entries or self._bytes > self.max_bytes:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped
                self._evictions += 1

    def discard(self, key: K) -> None:
        """Forget one key, if cached."""
        with self._lock:
            self._drop(key)

    def _drop(self, key: K) -> None:
        item = self._items.pop(key, None)
        if item is not None:
            self._bytes -= item[1]

    def clear(self) -> None:
        """Forget everything (the counters stay)."""
        with self._lock:
            self._items.clear()
            self._bytes = 0

    def __len__(self) -> int:
        return len(self._items)

    def __contains__(self, key: object) -> bool:
        return key in self._items

    @property
    def stats(self) -> CacheStats:
        """The counters and the current size."""
        with self._lock:
            return CacheStats(
                self._hits, self._misses, self._evictions, len(self._items), self._bytes
            )

    def __repr__(self) -> str:
        s = self.stats
        return (
            f"LRUCache(entries={s.entries}/{self.max_entries}, bytes={s.bytes}/{self.max_bytes}, "
            f"hits={s.hits}, misses={s.misses})"
        )
