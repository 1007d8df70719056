"""Contract: several instances of one projection, racing live writers, lose and repeat nothing.

On a backend with ``run_with_checkpoint`` (exactly-once) every wanted event is applied to
the read model exactly once however many instances run; elsewhere (at-least-once) none is
lost. The read model lives in the backend's own transaction: a table on SQL backends, a
collection on MongoDB, a list where there is no transaction.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import evstore
from evstore.testing._base import ContractBase, batch, unique
from evstore.testing._factory import StoreFactory

INSTANCES = 3
WRITERS = 4
PER_WRITER = 150


class ReadModel:
    """An append-only list of applied positions kept in the projection's own transaction."""

    def __init__(self, store_factory: StoreFactory, table: str) -> None:
        self.table = table
        self.database = urlsplit(store_factory.url).path.lstrip("/") or "evstore"
        self.memory: list[int] = []
        self.lock = threading.Lock()

    def setup(self, tx: Any) -> None:
        if tx is None or _is_mongo(tx):
            return
        tx.execute(f"CREATE TABLE IF NOT EXISTS {self.table} (position BIGINT NOT NULL)")

    def apply(self, tx: Any, position: int) -> None:
        if tx is None:
            with self.lock:
                self.memory.append(position)
        elif isinstance(tx, sqlite3.Connection):
            tx.execute(f"INSERT INTO {self.table} VALUES (?)", (position,))
        elif _is_mongo(tx):
            tx.client[self.database][self.table].insert_one({"position": position}, session=tx)
        else:  # psycopg
            tx.execute(f"INSERT INTO {self.table} VALUES (%s)", (position,))

    def positions(self, tx: Any) -> list[int]:
        if tx is None:
            with self.lock:
                return list(self.memory)
        if _is_mongo(tx):
            found = tx.client[self.database][self.table].find({}, session=tx)
            return [int(d["position"]) for d in found]
        return [int(r[0]) for r in tx.execute(f"SELECT position FROM {self.table}").fetchall()]


def _is_mongo(tx: Any) -> bool:
    return hasattr(tx, "in_transaction") and hasattr(tx, "client")


def key(partition: int, position: int) -> int:
    """One int per event of a partitioned log (positions repeat across partitions)."""
    return (partition << 40) + position


def reached(store: evstore.EventStore, name: str, head: evstore.LogCursor) -> bool:
    """Whether projection ``name``'s stored checkpoints are at ``head`` in every partition."""
    base = store.checkpoint_name(name)
    if store.partitions == 1:
        return (store.backend.get_checkpoint(base) or 0) >= head[0]
    return all(
        (store.backend.get_checkpoint(f"{base}#{j}") or 0) >= head[j]
        for j in range(store.partitions)
    )


def lost_and_repeated(wanted: list[int], applied: list[int]) -> tuple[int, int]:
    """(how many wanted events were never applied, how many applications were repeats)."""
    return len(set(wanted) - set(applied)), len(applied) - len(set(applied))


class ProjectionContract(ContractBase):
    """N instances of one projection while writers append: nothing lost, nothing twice."""

    def test_instances_racing_live_writers_lose_and_repeat_no_event(
        self, store_factory: StoreFactory
    ) -> None:
        name = unique("twins")
        model = ReadModel(store_factory, name.replace("-", "_"))
        wanted: list[int] = []  # positions of the events the projection must apply
        errors: list[BaseException] = []
        lock = threading.Lock()
        seen_tx: list[bool] = []

        def handle(event: evstore.RecordedEvent, tx: Any) -> None:
            model.apply(tx, key(event.partition, event.position))
            seen_tx.append(tx is not None)
            time.sleep(0.0005)  # keep transactions open so the instances overlap

        def writer(w: int) -> None:
            try:
                with store_factory.connect() as s:
                    for i in range(PER_WRITER):
                        # every third event is filtered out: the "skipped" path runs too
                        kind = "Other" if i % 3 == 2 else "Counted"
                        result = s.append(f"w{w}-{i % 7}", [evstore.NewEvent(kind, {"i": i})])
                        if kind == "Counted":
                            with lock:
                                wanted.append(key(result.partition, result.last_position))
            except BaseException as e:  # surfaced below
                errors.append(e)

        stores = [store_factory.connect() for _ in range(INSTANCES)]
        try:
            # The read model's table exists before the instances race to set up.
            first = evstore.Projection(
                stores[0], name, handle, setup=model.setup, types=["Counted"], batch_size=7
            )
            instances = [first] + [
                evstore.Projection(s, name, handle, types=["Counted"], batch_size=7)
                for s in stores[1:]
            ]
            first.catch_up()
            for p in instances:
                p.start()
            writers = [threading.Thread(target=writer, args=(w,)) for w in range(WRITERS)]
            for t in writers:
                t.start()
            for t in writers:
                t.join()
            assert errors == []
            last = stores[0].head()
            deadline = time.monotonic() + 180
            while not reached(stores[0], name, last):
                assert time.monotonic() < deadline, "the instances did not reach the head"
                assert all(p.running for p in instances), [p.error for p in instances]
                time.sleep(0.05)
            for p in instances:
                p.stop()
            applied = first.query(model.positions)
            lost, repeated = lost_and_repeated(wanted, applied)
            assert len(wanted) == WRITERS * (PER_WRITER - PER_WRITER // 3)
            assert lost == 0, f"{lost} of {len(wanted)} events never applied"
            if first.exactly_once:
                assert all(seen_tx)
                assert repeated == 0, f"{repeated} events applied twice"
        finally:
            for s in stores:
                s.close()

    def test_projection_keeps_a_checkpoint_per_log_partition(
        self, store: evstore.EventStore
    ) -> None:
        results = [store.append(unique(), batch(2)) for _ in range(12)]
        projection = evstore.Projection(store, unique("p"), lambda e, tx: None)
        projection.catch_up()
        assert projection.cursor == store.head()
        stored = store.backend.list_checkpoints()
        base = store.checkpoint_name(projection.name)
        if store.partitions == 1:
            assert stored[base] == results[-1].last_position
            return
        last = {r.partition: r.last_position for r in results}  # each partition's last
        assert {k: v for k, v in stored.items() if k.startswith(f"{base}#")} == {
            f"{base}#{j}": position for j, position in last.items()
        }
