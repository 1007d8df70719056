"""Contract: concurrent writers (threads and processes) and a writer killed mid-append."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter

import pytest

import evstore
from evstore.testing._base import ContractBase, new, unique
from evstore.testing._factory import StoreFactory

WRITERS = 4
PER_WRITER = 25


def _assert_dense_stream(store: evstore.EventStore, stream: str, total: int) -> None:
    events = store.get_events(stream)
    assert [e.version for e in events] == list(range(1, total + 1)), "hole or duplicate version"
    assert len({e.event_id for e in events}) == total
    positions = [e.position for e in events]
    assert positions == sorted(positions)


def _settled_version(store: evstore.EventStore, stream: str) -> int:
    """The stream's version once it stops moving.

    A killed client's last append may still commit: a server runs a statement it has
    received to the end. All or nothing still holds; it is just not visible at once.
    """
    version = store.stream_version(stream)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        time.sleep(0.2)
        again = store.stream_version(stream)
        if again == version:
            break
        version = again
    return version


def _worker_env() -> dict[str, str]:
    env = dict(os.environ)
    src = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(evstore.__file__))))
    env["PYTHONPATH"] = os.pathsep.join(p for p in (src, env.get("PYTHONPATH")) if p)
    return env


class ConcurrencyContract(ContractBase):
    """Optimistic concurrency holds under real parallel writers."""

    def test_exactly_one_of_racing_writers_with_same_expected_version_wins(
        self, store_factory: StoreFactory
    ) -> None:
        stores = [store_factory.connect() for _ in range(WRITERS)]
        try:
            for _ in range(10):
                sid = unique()
                stores[0].append(sid, [new()])
                barrier = threading.Barrier(WRITERS)
                outcomes: list[str] = []

                def race(
                    s: evstore.EventStore,
                    sid: str = sid,
                    barrier: threading.Barrier = barrier,
                    outcomes: list[str] = outcomes,
                ) -> None:
                    barrier.wait()
                    try:
                        s.append(sid, [new()], expected_version=1)
                        outcomes.append("won")
                    except evstore.ConcurrencyError:
                        outcomes.append("lost")

                threads = [threading.Thread(target=race, args=(s,)) for s in stores]
                for t in threads:
                    t.start()
                for t in threads:
                    t.join()
                assert Counter(outcomes) == {"won": 1, "lost": WRITERS - 1}
                assert stores[0].stream_version(sid) == 2
        finally:
            for s in stores:
                s.close()

    def test_threads_appending_to_one_stream_with_retry_leave_no_hole(
        self, store_factory: StoreFactory
    ) -> None:
        sid = unique()
        errors: list[BaseException] = []

        def writer() -> None:
            try:
                with store_factory.connect() as s:
                    done = 0
                    while done < PER_WRITER:
                        version = s.stream_version(sid)
                        try:
                            s.append(sid, [new("Counted", n=done)], expected_version=version)
                        except evstore.ConcurrencyError:
                            continue
                        done += 1
            except BaseException as e:  # surfaced below
                errors.append(e)

        threads = [threading.Thread(target=writer) for _ in range(WRITERS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        if errors:
            raise errors[0]
        with store_factory.connect() as s:
            _assert_dense_stream(s, sid, WRITERS * PER_WRITER)

    def test_processes_appending_to_one_stream_with_retry_leave_no_hole(
        self, store_factory: StoreFactory
    ) -> None:
        if not store_factory.across_processes:
            pytest.skip("this backend's data is private to one process")
        sid = unique()
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "evstore.testing._worker",
                    "retry-append",
                    store_factory.url,
                    sid,
                    str(PER_WRITER),
                ],
                env=_worker_env(),
            )
            for _ in range(WRITERS)
        ]
        for p in procs:
            assert p.wait(timeout=300) == 0
        with store_factory.connect() as s:
            _assert_dense_stream(s, sid, WRITERS * PER_WRITER)

    def test_writer_killed_mid_append_leaves_all_or_none(self, store_factory: StoreFactory) -> None:
        if not store_factory.across_processes:
            pytest.skip("this backend's data is private to one process")
        size = 1000
        rng = random.Random(7)
        with store_factory.connect() as s:
            for round_ in range(3):
                sid = unique()
                proc = subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "evstore.testing._worker",
                        "bulk-append",
                        store_factory.url,
                        sid,
                        str(size),
                    ],
                    stdout=subprocess.PIPE,
                    text=True,
                    env=_worker_env(),
                )
                assert proc.stdout is not None
                assert proc.stdout.readline().strip() == "ready"
                assert proc.stdout.readline().strip() == "ok"  # one batch acknowledged
                time.sleep(rng.uniform(0.0, 0.05) * (round_ + 1))
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=30)
                acknowledged = 1 + sum(1 for line in proc.stdout if line.strip() == "ok")
                version = _settled_version(s, sid)
                assert version % size == 0, f"partial batch visible: version {version}"
                assert version >= acknowledged * size, "an acknowledged batch was lost"
                _assert_dense_stream(s, sid, version)
