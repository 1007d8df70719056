"""Export, import, copy and verify (evstore.ops) on every backend."""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import orjson
import pytest

import evstore
from evstore import NewEvent, ops
from evstore.errors import InvalidInput
from evstore.testing import StoreFactory
from tests.ops_data import assert_same, populate


def _memory() -> evstore.EventStore:
    return evstore.connect("memory://")


@pytest.mark.parametrize("compression", ["none", "gzip", "zstd"])
def test_export_then_import_carries_everything(
    store_factory: StoreFactory, tmp_path: Path, compression: str
) -> None:
    path = tmp_path / "store.jsonl"
    with store_factory.connect() as source, _memory() as target:
        populate(source)
        exported = ops.export_store(source, path, compression=compression, source="x://")
        assert exported.problems == []
        assert exported.events == len(source.read_all())
        imported = ops.import_store(target, path)
        assert imported.problems == [], imported.problems
        assert_same(source, target)
        assert ops.verify_store(target).ok


def test_import_into_each_backend(store_factory: StoreFactory, tmp_path: Path) -> None:
    path = tmp_path / "store.jsonl.gz"
    with _memory() as source, store_factory.connect() as target:
        populate(source)
        ops.export_store(source, path)
        report = ops.import_store(target, path)
        assert report.problems == [], report.problems
        assert_same(source, target)
        assert ops.verify_store(target).ok, ops.verify_store(target).problems


def test_import_twice_writes_nothing_twice(store_factory: StoreFactory, tmp_path: Path) -> None:
    path = tmp_path / "store.jsonl"
    with _memory() as source, store_factory.connect() as target:
        populate(source)
        ops.export_store(source, path)
        ops.import_store(target, path)
        again = ops.import_store(target, path)
        assert again.problems == []
        assert_same(source, target)


class Interrupt(BaseException):
    """Stands for Ctrl-C or a killed process in the middle of a long run."""


def _interrupt_after(events: int) -> ops.transfer.Progress:
    def progress(done: int, total: int | None) -> None:
        if done >= events:
            raise Interrupt

    return progress


def test_import_interrupted_then_resumed(store_factory: StoreFactory, tmp_path: Path) -> None:
    path = tmp_path / "store.jsonl"
    with _memory() as source, store_factory.connect() as target:
        populate(source)
        for i in range(2500):  # several progress saves (every 1000 events)
            source.append(f"many-{i % 7}", [NewEvent("Many", {"i": i})])
        source.backend.set_checkpoint("late", source.read_all()[-10].position)
        ops.export_store(source, path)
        with pytest.raises(Interrupt):
            ops.import_store(target, path, progress=_interrupt_after(1800))
        assert 0 < len(target.read_all()) < len(source.read_all())
        resumed = ops.import_store(target, path)
        assert resumed.resumed and resumed.resumed_from > 0
        assert resumed.problems == []
        assert_same(source, target)


def test_truncated_export_is_refused_after_importing_what_it_has(tmp_path: Path) -> None:
    path = tmp_path / "store.jsonl"
    with _memory() as source, _memory() as target:
        populate(source)
        ops.export_store(source, path)
        lines = path.read_bytes().splitlines(keepends=True)
        cut = tmp_path / "cut.jsonl"
        cut.write_bytes(b"".join(lines[:-6]))
        with pytest.raises(InvalidInput, match="truncated"):
            ops.import_store(target, cut)
        ops.import_store(target, path)
        assert_same(source, target)


def test_a_file_that_is_not_an_export_is_invalid_input(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"kind": "header", "format": "other"}\n')
    with _memory() as target:
        with pytest.raises(InvalidInput, match="not an evstore export"):
            ops.import_store(target, bad)
        with pytest.raises(InvalidInput, match="cannot open"):
            ops.import_store(target, tmp_path / "missing.jsonl")
        assert target.read_all() == []


def test_export_header_records_format_version_and_source(tmp_path: Path) -> None:
    path = tmp_path / "store.jsonl"
    with _memory() as source:
        populate(source)
        ops.export_store(source, path, source="postgresql://app:secret@db:5432/prod")
    header = orjson.loads(path.read_bytes().splitlines()[0])
    assert header["format"] == "evstore-jsonl" and header["version"] == 1
    assert header["source"] == "postgresql://app:***@db:5432/prod"
    kinds = [orjson.loads(line)["kind"] for line in path.read_bytes().splitlines()]
    assert kinds == sorted(
        kinds,
        key=["header", "checkpoint", "stream", "event", "snapshot", "dead_letter", "end"].index,
    )


def test_copy_from_each_backend(store_factory: StoreFactory) -> None:
    with store_factory.connect() as source, _memory() as target:
        populate(source)
        report = ops.copy_store(source, target)
        assert report.problems == [], report.problems
        assert_same(source, target)


def test_copy_to_each_backend(store_factory: StoreFactory) -> None:
    with _memory() as source, store_factory.connect() as target:
        populate(source)
        back = ops.copy_store(source, target)
        assert back.problems == [], back.problems
        assert_same(source, target)
        assert ops.verify_store(target).ok


@contextmanager
def _backend_store(name: str, tmp_path: Path, stack: ExitStack) -> Iterator[evstore.EventStore]:
    module = importlib.import_module(f"tests.backends.{name}")
    (tmp_path / name).mkdir(parents=True, exist_ok=True)
    factory = stack.enter_context(module.factory(tmp_path / name))
    with factory.connect() as store:
        yield store


def test_copy_sqlite_postgresql_mongodb_sqlite_round_trip(tmp_path: Path) -> None:
    with ExitStack() as stack:
        stores = [
            stack.enter_context(_backend_store(n, tmp_path, stack))
            for n in ("sqlite", "postgresql", "mongodb", "postgresql_partitioned", "memory")
        ]
        last = stack.enter_context(_backend_store("sqlite", tmp_path / "back", stack))
        populate(stores[0])
        for source, target in zip(stores, [*stores[1:], last], strict=True):
            report = ops.copy_store(source, target)
            assert report.problems == [], report.problems
            assert_same(stores[0], target)
        # The translated checkpoint points at the same event on every store.
        subs = {s.name: s.lag for s in ops.subscriptions(last)}
        assert subs == {s.name: s.lag for s in ops.subscriptions(stores[0])}


def test_copy_while_a_writer_appends(store_factory: StoreFactory) -> None:
    with store_factory.connect() as source, _memory() as target:
        populate(source)
        stop = threading.Event()
        written: list[int] = []

        def writer() -> None:
            with store_factory.connect() as own:
                i = 0
                while not stop.is_set() or i < 300:
                    own.append(f"live-{i % 5}", [NewEvent("Live", {"i": i})])
                    written.append(i)
                    i += 1

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            first = ops.copy_store(source, target, settle=50)
        finally:
            stop.set()
            thread.join()
        assert first.problems == [], first.problems
        source.backend.set_checkpoint("after-writer", source.head_position())
        final = ops.copy_store(source, target)  # writers stopped: the final sync
        assert final.problems == [], final.problems
        assert not final.source_moved
        assert len(written) >= 300
        assert_same(source, target)


def test_copy_or_import_into_a_store_with_other_events_is_refused(tmp_path: Path) -> None:
    with _memory() as source, _memory() as target:
        populate(source)
        target.append("mine-1", [NewEvent("Mine", {})])
        with pytest.raises(InvalidInput, match="not empty"):
            ops.copy_store(source, target)
        ops.export_store(source, tmp_path / "x.jsonl")
        with pytest.raises(InvalidInput, match="not empty"):
            ops.import_store(target, tmp_path / "x.jsonl")
        assert [e.stream_id for e in target.read_all()] == ["mine-1"]


def test_copy_interrupted_then_resumed(store_factory: StoreFactory) -> None:
    with store_factory.connect() as source, _memory() as target:
        populate(source)
        for i in range(2500):
            source.append(f"many-{i % 3}", [NewEvent("Many", {"i": i})])
        with pytest.raises(Interrupt):  # before any progress was saved
            ops.copy_store(source, target, progress=_interrupt_after(1))
        with pytest.raises(Interrupt):
            ops.copy_store(source, target, progress=_interrupt_after(1500))
        resumed = ops.copy_store(source, target)
        assert resumed.resumed and resumed.resumed_from > 0
        assert resumed.problems == []
        assert_same(source, target)


def test_copy_reports_what_changed_under_it_that_it_cannot_carry() -> None:
    with _memory() as source, _memory() as target:
        populate(source)
        for i in range(1500):
            source.append(f"many-{i % 3}", [NewEvent("Many", {"i": i})])
        done = []

        def meanwhile(count: int, total: int | None) -> None:
            if count >= 1000 and not done:  # during the first pass: delete and rewrite
                done.append(count)
                source.delete_stream("user-1")
                source.append("user-1", [NewEvent("Back", {})])

        source.backend.set_checkpoint("ahead", source.head_position() + 50)
        report = ops.copy_store(source, target, progress=meanwhile, settle=1)
        assert done
        assert any("user-1" in p and "written again" in p for p in report.problems)
        assert any("ahead" in p and "past what was copied" in p for p in report.problems)
        assert report.rounds >= 2  # the rewrite was carried by a catch-up pass
        assert target.get_events("user-1")[-1].type == "Back"
