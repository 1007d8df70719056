"""Export, import, copy and verify on stores of 16 log partitions (memory, SQLite, MongoDB,
NATS): per-partition positions, checkpoints as cursors translated component by component."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

import evstore
from evstore import LogCursor, NewEvent, Snapshot, ops
from evstore.errors import InvalidInput
from evstore.testing import StoreFactory

P16 = ["memory_p16", "sqlite_p16", "mongodb_p16", "nats_p16"]


def _factory(name: str, tmp_path: Path) -> Any:
    tmp_path.mkdir(parents=True, exist_ok=True)
    return importlib.import_module(f"tests.backends.{name}").factory(tmp_path)


@pytest.fixture(params=P16)
def p16(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    with _factory(request.param, tmp_path / "a") as factory:
        yield factory


def _populate(store: evstore.EventStore) -> LogCursor:
    """Streams over many partitions (live, soft-deleted and rewritten, tombstoned), a
    snapshot, and a named subscription that handled part of the log: its cursor."""
    for i in range(60):
        store.append(f"s-{i % 23}", [NewEvent("E", {"i": i})])
    store.append("soft-1", [NewEvent("T", {}), NewEvent("T", {})])
    store.delete_stream("soft-1")
    store.append("soft-1", [NewEvent("Back", {})])
    store.append("gone-1", [NewEvent("T", {})])
    store.delete_stream("gone-1", hard=True)
    store.save_snapshot(Snapshot("s-3", 2, {"n": 2}))
    heads = store.head()
    # the subscription handled the first half of every partition
    cursor = LogCursor(tuple(h // 2 for h in heads.positions))
    for j, position in enumerate(cursor.positions):
        store.backend.set_checkpoint(f"sub#{j}", position)
    for i in range(10):  # and these it has not handled yet
        store.append(f"s-{i}", [NewEvent("Late", {"i": i})])
    return cursor


def _ids_after(store: evstore.EventStore, cursor: LogCursor) -> set[str]:
    return {str(e.event_id) for e in store.read_all(cursor)}


def _delivered(store: evstore.EventStore) -> set[str]:
    """What subscription "sub" delivers when it resumes from its stored cursor."""
    got: list[evstore.RecordedEvent] = []
    with store.subscribe(got.append, name="sub") as sub:
        assert sub.wait_until(store.head(), 30)
    assert len(got) == len({e.event_id for e in got})
    return {str(e.event_id) for e in got}


def _same(src: evstore.EventStore, dst: evstore.EventStore) -> None:
    for s in src.list_streams(limit=1000):
        if s.state == "tombstoned":
            with pytest.raises(evstore.StreamDeleted):
                dst.get_events(s.stream_id)
            continue
        assert dst.partition_of(s.stream_id) == src.partition_of(s.stream_id)
        assert [
            (e.version, e.event_id, e.data, e.recorded_at) for e in dst.get_events(s.stream_id)
        ] == [(e.version, e.event_id, e.data, e.recorded_at) for e in src.get_events(s.stream_id)]
        assert dst.stream_version(s.stream_id) == src.stream_version(s.stream_id)
    for j in range(16):  # each partition in its order
        assert [e.event_id for e in dst.read_all(partition=j)] == [
            e.event_id for e in src.read_all(partition=j)
        ]
    assert dst.get_snapshot("s-3") == src.get_snapshot("s-3")


def test_export_import_and_copy_of_a_partitioned_store(p16: StoreFactory, tmp_path: Path) -> None:
    with p16.connect() as source:
        cursor = _populate(source)
        unhandled = _ids_after(source, cursor)
        report = ops.export_store(source, tmp_path / "x.jsonl.gz")
        assert report.problems == [] and report.events == len(source.read_all())
        for name in ("memory_p16", "sqlite_p16"):
            with _factory(name, tmp_path / f"i-{name}") as factory, factory.connect() as target:
                imported = ops.import_store(target, tmp_path / "x.jsonl.gz")
                assert imported.problems == [], imported.problems
                _same(source, target)
                assert _delivered(target) == unhandled
                assert ops.verify_store(target).ok
            with _factory(name, tmp_path / f"c-{name}") as factory, factory.connect() as target:
                copied = ops.copy_store(source, target)
                assert copied.problems == [], copied.problems
                assert set(copied.checkpoints) == {f"sub#{j}" for j in range(16)}
                _same(source, target)
                assert _delivered(target) == unhandled
                verified = ops.verify_store(target)
                assert verified.ok, verified.problems
        verified = ops.verify_store(source)
        assert verified.ok, verified.problems
        assert verified.checkpoints == 16
        lags = {s.name: s.lag for s in ops.subscriptions(source)}
        assert sum(lags.values()) == len(unhandled)


def test_copy_into_a_partitioned_store_from_each_backend(p16: StoreFactory, tmp_path: Path) -> None:
    with evstore.connect("memory://", partitions=16) as source, p16.connect() as target:
        cursor = _populate(source)
        report = ops.copy_store(source, target)
        assert report.problems == [], report.problems
        _same(source, target)
        assert _delivered(target) == _ids_after(source, cursor)
        again = ops.copy_store(source, target)  # resumes: nothing written twice
        assert again.resumed and again.problems == []
        _same(source, target)


def test_verify_checks_each_partition(tmp_path: Path) -> None:
    with evstore.connect("memory://", partitions=16) as store:
        _populate(store)
        heads = store.head().positions
        store.backend.set_checkpoint("sub#5", heads[5] + 1)
        store.backend.set_checkpoint("loose", 1)
        report = ops.verify_store(store)
        kinds = sorted((p.kind, p.where) for p in report.problems)
        assert kinds == [("checkpoint", "loose"), ("checkpoint", "sub#5")]
        assert f"outside partition 5 (0..{heads[5]})" in str(report.problems[-1]) or any(
            f"outside partition 5 (0..{heads[5]})" in str(p) for p in report.problems
        )
        with pytest.raises(InvalidInput, match="past the log's head"):
            ops.reset_checkpoint(store, "sub#5", heads[5] + 1)
        assert ops.reset_checkpoint(store, "sub#5", heads[5]) == heads[5] + 1


def test_a_different_partition_count_is_refused_and_nothing_written(tmp_path: Path) -> None:
    with (
        evstore.connect("memory://", partitions=16) as source,
        evstore.connect("memory://", partitions=4) as four,
        evstore.connect("memory://") as one,
    ):
        _populate(source)
        ops.export_store(source, tmp_path / "x.jsonl")
        for target in (four, one):
            with pytest.raises(InvalidInput, match="same partitions="):
                ops.copy_store(source, target)
            with pytest.raises(InvalidInput, match="same partitions="):
                ops.import_store(target, tmp_path / "x.jsonl")
            with pytest.raises(InvalidInput, match="same partitions="):
                ops.copy_store(target, source)
            assert target.head_position() == 0
            assert target.backend.list_checkpoints() == {}


class Interrupt(BaseException):
    """Stands for Ctrl-C in the middle of a long run."""


def _interrupt_after(events: int) -> ops.transfer.Progress:
    def progress(done: int, total: int | None) -> None:
        if done >= events:
            raise Interrupt

    return progress


def test_an_interrupted_copy_and_import_resume_in_every_partition(tmp_path: Path) -> None:
    with evstore.connect("memory://", partitions=16) as source:
        cursor = _populate(source)
        for i in range(1500):  # past a progress save (every 1,000 events)
            source.append(f"many-{i % 37}", [NewEvent("Many", {"i": i})])
        source.backend.set_checkpoint("loose", 3)  # not of one partition
        path = tmp_path / "x.jsonl"
        ops.export_store(source, path)
        header = orjson.loads(path.read_bytes().split(b"\n", 1)[0])
        assert header["partitions"] == 16 and header["heads"] == list(source.head().positions)
        for run in ("copy", "import"):
            with evstore.connect("memory://", partitions=16) as target:

                def carry(
                    progress: Any = None, target: Any = target, run: str = run
                ) -> ops.TransferReport:
                    if run == "copy":
                        return ops.copy_store(source, target, progress=progress)
                    return ops.import_store(target, path, progress=progress)

                with pytest.raises(Interrupt):
                    carry(_interrupt_after(1200))
                assert 0 < target.stats()["events"] < source.stats()["events"]
                report = carry()
                assert report.resumed
                assert report.problems == [_loose_problem()], report.problems
                _same(source, target)
                assert _delivered(target) == _ids_after(source, cursor)


def _loose_problem() -> str:
    return (
        "checkpoint loose: not of one log partition (a subscription's are name#j in a store "
        "of several); not carried"
    )


def test_retention_and_scavenge_on_a_partitioned_store(p16: StoreFactory) -> None:
    with p16.connect() as store:
        for i in range(80):
            store.append(f"r-{i % 8}", [NewEvent("E", {"i": i})])
        store.set_retention(category="r", max_count=3)
        kept = {f"r-{k}": [8, 9, 10] for k in range(8)}
        for sid, versions in kept.items():
            assert [e.version for e in store.get_events(sid)] == versions
        logged = [(e.stream_id, e.version) for e in store.read_all() if e.stream_id != "$retention"]
        assert sorted(logged) == sorted((s, v) for s, vs in kept.items() for v in vs)
        report = ops.scavenge(store)
        assert (report.events, report.truncated) == (56, 8), report.summary()
        for sid, versions in kept.items():
            assert [e.version for e in store.get_events(sid)] == versions
            assert store.stream_version(sid) == 10
        assert _delivered(store) >= {str(e.event_id) for e in store.read_all(category="r")}
        verified = ops.verify_store(store)
        assert verified.ok, verified.problems
