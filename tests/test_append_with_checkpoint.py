"""store.append_with_checkpoint: appends and a checkpoint's compare-and-set, both or neither
(the eventsourcing module's process recorders stand on it)."""

from __future__ import annotations

import pytest

from evstore import NO_STREAM, AppendRequest, ConcurrencyError, InvalidInput, NewEvent
from evstore.testing import StoreFactory


def test_appends_and_the_checkpoint_commit_together_or_not_at_all(
    store_factory: StoreFactory, request: pytest.FixtureRequest
) -> None:
    with store_factory.connect() as store:
        if request.node.callspec.params["store_factory"].startswith("nats"):
            with pytest.raises(InvalidInput, match="one transaction"):
                store.append_with_checkpoint([("a", [NewEvent("T", {})])], "cp", None, 1)
            assert store.stream_version("a") == 0
            return
        results = store.append_with_checkpoint(
            [AppendRequest("a", [NewEvent("T", {})], NO_STREAM), ("b", [NewEvent("T", {})])],
            "cp",
            None,
            7,
        )
        assert results is not None and [r.version for r in results] == [1, 1]
        assert store.get_checkpoint("cp") == 7
        # the checkpoint is not where the caller thinks: nothing is written
        assert store.append_with_checkpoint([("c", [NewEvent("T", {})])], "cp", 3, 9) is None
        assert (store.stream_version("c"), store.get_checkpoint("cp")) == (0, 7)
        # an append that conflicts: the checkpoint stays
        with pytest.raises(ConcurrencyError):
            store.append_with_checkpoint(
                [("c", [NewEvent("T", {})]), AppendRequest("a", [NewEvent("T", {})], NO_STREAM)],
                "cp",
                7,
                9,
            )
        assert (store.stream_version("c"), store.get_checkpoint("cp")) == (0, 7)
        assert store.append_with_checkpoint([], "cp", 7, 8) == []  # the checkpoint alone
        assert store.get_checkpoint("cp") == 8
