"""Contract: consumer groups - ``subscribe(partition=(i, n))`` members split the log.

With ``n`` dividing the store's ``P`` log partitions, member ``i`` reads the partitions
``j % n == i``, each with its own checkpoint (``name#j``); with ``P == 1`` the same call
filters the one log by the streams' hash slots. Either way every event reaches exactly one
member, in its stream's order, and a member killed mid-batch resumes exactly after its
checkpoints.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections import Counter, defaultdict
from typing import Any

import pytest

import evstore
from evstore.testing._base import ContractBase, eventually, unique
from evstore.testing._concurrency_contract import _worker_env
from evstore.testing._factory import StoreFactory
from evstore.testing._projection_contract import ReadModel, key, reached

MEMBERS = 4
WRITERS = 8
APPENDS = 25  # per writer


def _write(store: evstore.EventStore, w: int, errors: list[BaseException]) -> None:
    try:
        for k in range(APPENDS):
            sid = f"grp{w}-{k % 6}"
            store.append(sid, [evstore.NewEvent("G", {"w": w, "k": k, "j": j}) for j in range(2)])
    except BaseException as e:  # surfaced by the test
        errors.append(e)


def _all(store_factory: StoreFactory) -> list[evstore.RecordedEvent]:
    with store_factory.connect() as store:
        return store.read_all()


class ConsumerGroupContract(ContractBase):
    """Members of a consumer group see every event exactly once, in stream order."""

    def test_group_of_four_with_eight_writers_sees_each_event_once_in_order(
        self, store_factory: StoreFactory
    ) -> None:
        with store_factory.connect() as store:
            seen: list[list[evstore.RecordedEvent]] = [[] for _ in range(MEMBERS)]
            subs = [
                store.subscribe(seen[i].append, name="group", partition=(i, MEMBERS), batch_size=7)
                for i in range(MEMBERS)
            ]
            errors: list[BaseException] = []
            try:
                writers = [
                    threading.Thread(target=_write, args=(store, w, errors)) for w in range(WRITERS)
                ]
                for t in writers:
                    t.start()
                for t in writers:
                    t.join()
                assert not errors, errors
                head = store.head()
                for sub in subs:
                    assert sub.wait_until(head, timeout=60)
            finally:
                for sub in subs:
                    sub.stop()
            everything = store.read_all()
            assert len(everything) == WRITERS * APPENDS * 2
            delivered = Counter((e.stream_id, e.version) for member in seen for e in member)
            assert delivered == Counter((e.stream_id, e.version) for e in everything)
            assert max(delivered.values()) == 1  # exactly once
            owner: dict[str, int] = {}
            for i, member in enumerate(seen):
                versions: dict[str, list[int]] = defaultdict(list)
                for e in member:
                    assert owner.setdefault(e.stream_id, i) == i  # a stream has one member
                    versions[e.stream_id].append(e.version)
                    if store.partitions > 1:
                        assert e.partition % MEMBERS == i
                for sid, got in versions.items():
                    assert got == list(range(1, len(got) + 1)), sid  # stream order, no gap
            assert all(seen)  # 48 streams spread over every member

    def test_projection_group_of_four_with_eight_writers_applies_each_event_once(
        self, store_factory: StoreFactory
    ) -> None:
        """``Projection(..., partition=(i, 4))``: with P > 1 the four members share one
        name (a checkpoint per partition, each partition at one member); with P = 1 each
        member needs a name of its own (one log, one checkpoint per name)."""
        name = unique("pgroup")
        model = ReadModel(store_factory, name.replace("-", "_"))
        stores = [store_factory.connect() for _ in range(MEMBERS)]
        store = stores[0]

        def handle(event: evstore.RecordedEvent, tx: Any) -> None:
            model.apply(tx, key(event.partition, event.position))

        def member_name(i: int) -> str:
            return name if store.partitions > 1 else f"{name}-{i}of{MEMBERS}"

        members = [
            evstore.Projection(
                stores[i],
                member_name(i),
                handle,
                partition=(i, MEMBERS),
                batch_size=7,
                setup=model.setup if i == 0 else None,
            )
            for i in range(MEMBERS)
        ]
        errors: list[BaseException] = []
        try:
            members[0].catch_up()  # creates the read model's table
            for member in members:
                member.start()
            writers = [
                threading.Thread(target=_write, args=(store, w, errors)) for w in range(WRITERS)
            ]
            for t in writers:
                t.start()
            for t in writers:
                t.join()
            assert not errors, errors
            head = store.head()
            for member in members:
                assert member.wait_until(head, timeout=120), member.error
            if store.partitions > 1:
                assert reached(store, name, head)
            for member in members:
                member.stop()
            applied = members[0].query(model.positions)  # one table (or list) for all
        finally:
            for s in stores:
                s.close()
        everything = [key(e.partition, e.position) for e in _all(store_factory)]
        assert len(everything) == WRITERS * APPENDS * 2
        assert Counter(applied) == Counter(everything)  # every event applied exactly once

    def test_member_killed_mid_batch_resumes_exactly_after_its_checkpoints(
        self, store_factory: StoreFactory
    ) -> None:
        if not store_factory.across_processes:
            pytest.skip("this backend's data is private to one process")
        member, name = 1, "killed-group"
        with store_factory.connect() as store:
            for k in range(120):
                store.append(f"acct-{k}", [evstore.NewEvent("G", {"j": j}) for j in range(3)])
            mine = [e for e in store.read_all(partition=(member, MEMBERS))]
            assert len(mine) > 60
            with tempfile.TemporaryDirectory() as tmp:
                out = os.path.join(tmp, "delivered.txt")

                def lines() -> list[tuple[int, int, str, int]]:
                    with open(out) as f:
                        rows = [line.split() for line in f if line.endswith("\n")]
                    return [(int(p), int(q), sid, int(v)) for p, q, sid, v in rows]

                command = [
                    sys.executable,
                    "-m",
                    "evstore.testing._worker",
                    "group-member",
                    store_factory.url,
                    name,
                    f"{member}/{MEMBERS}",
                    out,
                ]
                env = _worker_env()
                first = subprocess.Popen(command, stdout=subprocess.PIPE, text=True, env=env)
                try:
                    assert first.stdout is not None
                    assert first.stdout.readline().strip() == "ready"
                    eventually(lambda: os.path.exists(out) and len(lines()) >= 25, timeout=60)
                    first.send_signal(signal.SIGKILL)  # mid-batch: batches are 10 events
                    first.wait(30)
                finally:
                    if first.poll() is None:
                        first.kill()
                before = lines()
                assert len(before) < len(mine), "the member finished before it was killed"
                parts = sorted({e.partition for e in mine}) if store.partitions > 1 else [0]
                backend_name = store.checkpoint_name(name)
                stored = {
                    j: store.backend.get_checkpoint(
                        backend_name if store.partitions == 1 else f"{backend_name}#{j}"
                    )
                    or 0
                    for j in parts
                }
                second = subprocess.run(
                    command, capture_output=True, text=True, env=env, timeout=120
                )
                assert second.returncode == 0, second.stderr
                after = lines()[len(before) :]

        wanted = {(e.partition, e.position): (e.stream_id, e.version) for e in mine}
        first_run = [((p, q), (sid, v)) for p, q, sid, v in before]
        second_run = [((p, q), (sid, v)) for p, q, sid, v in after]
        # Nothing skipped: up to its checkpoint the first run delivered every event of the
        # member's share; after it the second run delivered every one, each once.
        for j in parts:
            upto = [k for k, _ in first_run if k[0] == j and k[1] <= stored[j]]
            assert upto == sorted(k for k in wanted if k[0] == j and k[1] <= stored[j])
            resumed = [k for k, _ in second_run if k[0] == j]
            assert resumed == sorted(k for k in wanted if k[0] == j and k[1] > stored[j])
        # Nothing repeated past the checkpoint, and every delivery is an event of the share.
        assert len(second_run) == len({k for k, _ in second_run})
        assert all(wanted[k] == v for k, v in first_run + second_run)
