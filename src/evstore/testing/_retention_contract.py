"""Contract: the optional tier ``TruncatableLog`` (``truncate_stream``), which retention's
``scavenge`` and the copy of a scavenged stream use. On a backend without the tier each
test checks instead that reads still leave expired events out (retention is written above
the interface; only the physical removal needs the tier)."""

from __future__ import annotations

from typing import Any

import pytest

import evstore
from evstore.spi import AsyncTruncatableLog, TruncatableLog
from evstore.testing._base import ContractBase, batch, unique
from evstore.testing._faces import SyncOverAsync


def truncatable(store: evstore.EventStore) -> Any:
    """The store's backend if it offers ``truncate_stream``, else None (after checking
    that reads leave expired events out all the same)."""
    backend = store.backend
    if isinstance(backend, SyncOverAsync):
        found = isinstance(backend.target, AsyncTruncatableLog)
    else:
        found = isinstance(backend, TruncatableLog)
    if found:
        return backend
    sid = unique()
    store.append(sid, batch(4))
    store.set_retention(sid, max_count=1)
    assert [e.version for e in store.get_events(sid)] == [4]
    assert [e.version for e in store.read_all() if e.stream_id == sid] == [4]
    return None


class TruncatableLogContract(ContractBase):
    """``truncate_stream``: a prefix leaves for good; versions and positions never change."""

    def test_truncate_removes_a_prefix_and_keeps_the_rest(self, store: evstore.EventStore) -> None:
        backend = truncatable(store)
        if backend is None:
            return
        sid, other = unique(), unique()
        store.append(sid, batch(5))
        store.append(other, batch(2))
        before = {e.version: e.position for e in store.get_events(sid)}
        assert backend.truncate_stream(sid, 4) == 3
        kept = store.get_events(sid)
        assert [(e.version, e.position) for e in kept] == [(4, before[4]), (5, before[5])]
        assert [e.version for e in store.read_all(stream_id=sid)] == [4, 5]
        assert store.stream_version(sid) == 5
        assert backend.truncate_stream(sid, 4) == 0  # again: nothing more
        assert len(store.get_events(other)) == 2
        result = store.append(sid, batch(1), expected_version=5)
        assert result.version == 6
        assert [e.version for e in store.get_events(sid)] == [4, 5, 6]

    def test_truncate_to_the_end_starts_a_stream_at_a_version(
        self, store: evstore.EventStore
    ) -> None:
        backend = truncatable(store)
        if backend is None:
            return
        fresh, full = unique(), unique()
        assert backend.truncate_stream(fresh, 8) == 0
        assert store.stream_version(fresh) == 0 and store.get_events(fresh) == []
        with pytest.raises(evstore.ConcurrencyError):
            store.append(fresh, batch(1), expected_version=evstore.STREAM_EXISTS)
        assert store.append(fresh, batch(2), expected_version=7).version == 9
        assert [e.version for e in store.get_events(fresh)] == [8, 9]
        store.append(full, batch(3))
        assert backend.truncate_stream(full, 4) == 3
        assert store.get_events(full) == [] and store.stream_version(full) == 0
        assert store.append(full, batch(1), expected_version=3).version == 4

    def test_truncate_leaves_a_tombstone_and_a_snapshot_alone(
        self, store: evstore.EventStore
    ) -> None:
        backend = truncatable(store)
        if backend is None:
            return
        gone, kept = unique(), unique()
        store.append(gone, batch(2))
        store.delete_stream(gone, hard=True)
        assert backend.truncate_stream(gone, 2) == 0
        with pytest.raises(evstore.StreamDeleted):
            store.get_events(gone)
        store.append(kept, batch(4))
        store.save_snapshot(evstore.Snapshot(kept, 3, {"n": 3}))
        backend.truncate_stream(kept, 4)
        snapshot = store.get_snapshot(kept)
        assert snapshot is not None and snapshot.version == 3
