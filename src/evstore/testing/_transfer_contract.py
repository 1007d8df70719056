"""Contract: what operators' tools (:mod:`evstore.ops`) need from the event log tier.

Export, import and copy carry each event's ``recorded_at`` (``PendingEvent.recorded_at``);
every named checkpoint (``list_checkpoints``) is tested with the checkpoint tier.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import evstore
from evstore import _codec
from evstore.spi._model import PendingEvent, Placement, stable_hash
from evstore.testing._base import ContractBase, unique


def _pending(recorded_at: datetime | None) -> PendingEvent:
    return PendingEvent(
        str(uuid.uuid4()),
        "Imported",
        _codec.encode({"x": 1}),
        _codec.EMPTY,
        1,
        datetime(2020, 1, 2, 3, 4, 5, 678901, tzinfo=UTC),
        recorded_at,
    )


class RecordedAtContract(ContractBase):
    """``PendingEvent.recorded_at``: import and copy keep the source's timestamps."""

    def test_an_appended_event_with_recorded_at_keeps_it(self, store: evstore.EventStore) -> None:
        sid = unique()
        stamped = datetime(2021, 6, 7, 8, 9, 10, 123456, tzinfo=UTC)
        placement = Placement("s", sid, stable_hash(sid))
        store.backend.append(sid, [_pending(stamped), _pending(None)], 0, placement)
        first, second = store.get_events(sid)
        assert first.recorded_at == stamped
        assert second.recorded_at > stamped  # None: the backend's own clock, now
        assert next(e.recorded_at for e in store.read_all() if e.stream_id == sid) == stamped
