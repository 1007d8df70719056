"""Contract: process managers - events emitted with the checkpoint, exactly once.

Where the backend has the ``CheckpointedAppends`` tier (memory, SQLite, PostgreSQL,
MongoDB) the emitted events carry random ids, so an emission stored twice would show; on
a backend without it (NATS: at-least-once) they carry ids derived from their cause, which
is what the docs tell users to do there, and the tests check that this is enough.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from typing import Any, cast

import pytest

import evstore
from evstore.spi import AsyncCheckpointedAppends, CheckpointedAppends
from evstore.testing._base import ContractBase, batch, eventually, unique
from evstore.testing._concurrency_contract import _worker_env
from evstore.testing._faces import Face, SyncOverAsync
from evstore.testing._factory import StoreFactory

INSTANCES = 3


def emits_with_checkpoint(store: evstore.EventStore) -> bool:
    """Whether ``store``'s backend appends in the checkpoint's transaction."""
    backend: Any = store.backend
    if isinstance(backend, SyncOverAsync):
        backend = backend.target
    return isinstance(backend, CheckpointedAppends | AsyncCheckpointedAppends)


def emitter(store: evstore.EventStore, target: str, fail: dict[str, int] | None = None) -> Any:
    """A handler emitting one "Emitted" event per cause to ``target``; with ``fail``, a
    delivery of a cause whose id is in it raises after emitting (``fail[id]`` times)."""
    derived = not emits_with_checkpoint(store)

    def handle(event: evstore.RecordedEvent, outbox: evstore.Outbox) -> None:
        emitted = evstore.NewEvent("Emitted", {"cause": str(event.event_id)})
        if derived:
            emitted = evstore.NewEvent("Emitted", emitted.data, event_id=outbox.event_id(event))
        outbox.append(target, [emitted])
        if fail is not None and fail.get(str(event.event_id), 0) > 0:
            fail[str(event.event_id)] -= 1
            raise RuntimeError("crashed after emitting, before the commit")

    return handle


def causes(store: evstore.EventStore, target: str) -> Counter[str]:
    """How often each cause was emitted to ``target``."""
    return Counter(e.data["cause"] for e in store.get_events(target))


class ProcessManagerContract(ContractBase):
    """``ProcessManager``: a handler's appends commit with the checkpoint."""

    def _manager(
        self, face: Face, store: evstore.EventStore, name: str, handler: Any, **options: Any
    ) -> evstore.ProcessManager:
        if face.name == "async":
            target = cast(SyncOverAsync, store).target

            async def build() -> evstore.AsyncProcessManager:
                return evstore.AsyncProcessManager(target, name, handler, **options)

            runner = face.runner  # type: ignore[attr-defined]
            return cast(evstore.ProcessManager, SyncOverAsync(runner.run(build()), runner))
        return evstore.ProcessManager(store, name, handler, **options)

    def test_each_event_is_emitted_once_with_the_checkpoint(
        self, face: Face, store: evstore.EventStore
    ) -> None:
        category = f"c{uuid.uuid4().hex[:10]}"
        target = unique("emitted")
        sources = [store.append(unique(category), batch(3)) for _ in range(3)]
        manager = self._manager(
            face, store, "shipping", emitter(store, target), category=category, batch_size=4
        )
        assert manager.exactly_once is emits_with_checkpoint(store)
        assert manager.catch_up(until=_head(store)) == 9
        counted = causes(store, target)
        assert len(counted) == 9 and set(counted.values()) == {1}
        last = sources[-1]
        name = "shipping" if store.partitions == 1 else f"shipping#{last.partition}"
        stored = store.get_checkpoint(name)
        assert stored is not None and stored >= last.last_position
        assert manager.catch_up() == 0
        assert sum(causes(store, target).values()) == 9

    def test_a_handler_failing_after_emitting_stores_neither_events_nor_checkpoint(
        self, face: Face, store: evstore.EventStore
    ) -> None:
        category = f"c{uuid.uuid4().hex[:10]}"
        target = unique("emitted")
        source = unique(category)
        store.append(source, batch(4))
        ids = [str(e.event_id) for e in store.get_events(source)]
        fail = {ids[1]: 10**6}
        stopping = self._manager(
            face, store, "billing", emitter(store, target, fail), category=category,
            on_error="stop", max_attempts=1, batch_size=1,
        )  # fmt: skip
        with pytest.raises(RuntimeError, match="crashed after emitting"):
            stopping.catch_up()
        assert causes(store, target) == Counter({ids[0]: 1})  # the failed one left nothing
        fail = {ids[1]: 1, ids[3]: 1}  # each fails once, then succeeds
        retrying = self._manager(
            face, store, "billing", emitter(store, target, fail), category=category
        )
        retrying.catch_up(until=_head(store))
        assert causes(store, target) == Counter(dict.fromkeys(ids, 1))
        assert fail == {ids[1]: 0, ids[3]: 0}

    def test_an_emission_conflict_rolls_back_the_batch_and_retries_the_event(
        self, face: Face, store: evstore.EventStore
    ) -> None:
        """A process manager's append that conflicts is a handler failure: nothing of the
        batch is stored, the event is retried (and parked when it keeps conflicting)."""
        category = f"c{uuid.uuid4().hex[:10]}"
        taken = unique("taken")
        store.append(taken, batch(1))
        result = store.append(unique(category), batch(1))

        def claim(event: evstore.RecordedEvent, outbox: evstore.Outbox) -> None:
            outbox.append(taken, [evstore.NewEvent("Claimed", {})], evstore.NO_STREAM)

        manager = self._manager(
            face, store, "claims", claim, category=category, max_attempts=2, retry_delay=0
        )
        manager.catch_up(until=_head(store))
        letters = manager.dead_letters()
        assert [(d.position, "ConcurrencyError" in d.error) for d in letters] == [
            (result.last_position, True)
        ]
        assert store.stream_version(taken) == 1

    def test_racing_instances_emit_each_event_exactly_once(self, face: Face) -> None:
        writer = face.connect()
        stores = [face.connect() for _ in range(INSTANCES)]
        category = f"c{uuid.uuid4().hex[:10]}"
        target = unique("emitted")
        stop = threading.Event()
        errors: list[BaseException] = []
        try:
            managers = [
                self._manager(
                    face, s, "racing", emitter(s, target), category=category, batch_size=3
                )
                for s in stores
            ]

            def run(manager: evstore.ProcessManager) -> None:
                try:
                    while not stop.is_set():
                        manager.catch_up()
                except BaseException as e:  # pragma: no cover - reported below
                    errors.append(e)

            threads = [threading.Thread(target=run, args=(m,)) for m in managers]
            for t in threads:
                t.start()
            written = 0
            for _ in range(15):
                writer.append(unique(category), batch(2))
                written += 2
            eventually(lambda: sum(causes(writer, target).values()) >= written, timeout=60)
            stop.set()
            for t in threads:
                t.join()
            assert errors == [], [repr(e) for e in errors]
            counted = causes(writer, target)
            assert len(counted) == written and set(counted.values()) == {1}
        finally:
            stop.set()
            for s in (writer, *stores):
                s.close()

    def test_a_process_manager_killed_mid_batch_emits_each_event_once(
        self, store_factory: StoreFactory
    ) -> None:
        if not store_factory.across_processes:
            pytest.skip("this backend's data is private to one process")
        category = f"c{uuid.uuid4().hex[:10]}"
        with store_factory.connect() as store:
            for _ in range(20):
                store.append(unique(category), batch(5))
            ids = "random" if emits_with_checkpoint(store) else "derived"
            command = [sys.executable, "-m", "evstore.testing._worker", "process-manager",
                       store_factory.url, "killed", category, ids]  # fmt: skip
            for _ in range(3):
                worker = subprocess.Popen(
                    command, stdout=subprocess.PIPE, env=_worker_env(), text=True
                )
                assert worker.stdout is not None
                assert worker.stdout.readline().strip() == "ready"
                deadline = time.monotonic() + 10
                before = sum(causes(store, "emitted-killed").values())
                while sum(causes(store, "emitted-killed").values()) < before + 15:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.01)
                os.kill(worker.pid, signal.SIGKILL)
                worker.wait()
            finisher = evstore.ProcessManager(
                store, "killed", emitter_like_worker(ids), category=category
            )
            finisher.catch_up(until=_head(store))
            counted = causes(store, "emitted-killed")
            assert len(counted) == 100
            assert set(counted.values()) == {1}, counted.most_common(3)


def _head(store: evstore.EventStore) -> int | evstore.LogCursor:
    """Where the log ends now, as ``catch_up(until=)`` takes it."""
    return store.head_position() if store.partitions == 1 else store.head()


def emitter_like_worker(ids: str) -> Any:
    """The handler of ``_worker process-manager`` (for the run that finishes the work)."""

    def handle(event: evstore.RecordedEvent, outbox: evstore.Outbox) -> None:
        emitted = evstore.NewEvent("Emitted", {"cause": str(event.event_id)})
        if ids == "derived":
            emitted = evstore.NewEvent("Emitted", emitted.data, event_id=outbox.event_id(event))
        outbox.append("emitted-killed", [emitted])

    return handle
