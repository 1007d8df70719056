"""Contract: checkpoints in the public API - read, compare-and-set, list, delete."""

from __future__ import annotations

import threading

import pytest

import evstore
from evstore.testing._base import ContractBase, batch, eventually, unique
from evstore.testing._faces import Face

RACERS = 4


class CheckpointApiContract(ContractBase):
    """``get_checkpoint``, ``compare_and_set_checkpoint``, ``list_checkpoints`` and
    ``delete_checkpoint`` on the store, over the backend's checkpoint tier."""

    def test_checkpoints_are_read_compared_and_set_listed_and_deleted(
        self, store: evstore.EventStore
    ) -> None:
        name, other = unique("cp"), unique("cp/ünï")
        assert store.get_checkpoint(name) is None
        assert store.compare_and_set_checkpoint(name, None, 5)
        assert not store.compare_and_set_checkpoint(name, None, 6)  # it exists now
        assert not store.compare_and_set_checkpoint(name, 4, 7)  # not at 4
        assert store.get_checkpoint(name) == 5
        assert store.compare_and_set_checkpoint(name, 5, 7)
        assert store.compare_and_set_checkpoint(name, 7, 7)  # same position: allowed
        assert store.compare_and_set_checkpoint(other, None, 0)
        listed = store.list_checkpoints()
        assert listed == {name: 7, other: 0}
        assert list(listed) == sorted(listed)
        assert store.delete_checkpoint(name)
        assert not store.delete_checkpoint(name)
        assert store.get_checkpoint(name) is None
        assert store.list_checkpoints() == {other: 0}
        assert not store.compare_and_set_checkpoint(name, 7, 8)  # deleted: not at 7
        assert store.compare_and_set_checkpoint(name, None, 1)  # deleted: like never set
        assert store.get_checkpoint(name) == 1

    def test_a_named_subscription_checkpoint_is_read_and_reset_through_the_api(
        self, store: evstore.EventStore
    ) -> None:
        result = store.append(unique(), batch(3))
        seen: list[evstore.RecordedEvent] = []
        with store.subscribe(seen.append, name="mailer"):
            eventually(lambda: len(seen) == 3)
        stored = "mailer" if store.partitions == 1 else f"mailer#{result.partition}"
        assert store.get_checkpoint(stored) == result.positions[-1]
        assert stored in store.list_checkpoints()
        assert store.delete_checkpoint(stored)  # the subscription starts afresh
        again: list[evstore.RecordedEvent] = []
        with store.subscribe(again.append, name="mailer"):
            eventually(lambda: len(again) == 3)

    @pytest.mark.parametrize(
        ("name", "expected", "position"),
        [("", None, 1), ("cp", -1, 1), ("cp", None, -1), ("cp", "1", 2), ("cp", None, True)],
        ids=["empty-name", "negative-expected", "negative-position", "str-expected", "bool"],
    )
    def test_bad_checkpoint_arguments_are_invalid_input(
        self, store: evstore.EventStore, name: str, expected: object, position: object
    ) -> None:
        with pytest.raises(evstore.InvalidInput):
            store.compare_and_set_checkpoint(name, expected, position)  # type: ignore[arg-type]
        assert store.list_checkpoints() == {}
        for call in (store.get_checkpoint, store.delete_checkpoint):
            with pytest.raises(evstore.InvalidInput):
                call("")

    def test_racing_compare_and_set_lets_exactly_one_writer_win(self, face: Face) -> None:
        stores = [face.connect() for _ in range(RACERS)]
        name = unique("cp")
        try:
            for expected in (None, 100):
                barrier = threading.Barrier(RACERS)
                won: list[int] = []

                def race(
                    i: int,
                    expected: int | None = expected,
                    barrier: threading.Barrier = barrier,
                    won: list[int] = won,
                ) -> None:
                    barrier.wait()
                    if stores[i].compare_and_set_checkpoint(name, expected, 200 + i):
                        won.append(i)

                if expected is not None:
                    assert stores[0].compare_and_set_checkpoint(name, None, 0) is False
                    current = stores[0].get_checkpoint(name)
                    assert current is not None
                    assert stores[0].compare_and_set_checkpoint(name, current, expected)
                threads = [threading.Thread(target=race, args=(i,)) for i in range(RACERS)]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                assert len(won) == 1, won
                assert stores[1].get_checkpoint(name) == 200 + won[0]
        finally:
            for s in stores:
                s.close()

    def test_a_tenant_sees_only_its_own_checkpoints(self, face: Face) -> None:
        strategy = evstore.TenantPartitioning()
        with (
            face.connect(partitioning=strategy, tenant="acme") as acme,
            face.connect(partitioning=strategy, tenant="beta") as beta,
        ):
            assert acme.compare_and_set_checkpoint("orders", None, 3)
            assert beta.get_checkpoint("orders") is None
            assert beta.compare_and_set_checkpoint("orders", None, 9)
            assert acme.list_checkpoints() == {"orders": 3}
            assert beta.list_checkpoints() == {"orders": 9}
            assert acme.delete_checkpoint("orders")
            assert beta.get_checkpoint("orders") == 9
