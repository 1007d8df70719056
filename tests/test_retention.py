"""Retention (stream metadata, expired events never read) and scavenge, on every backend."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

import evstore
from evstore import NewEvent, ops
from evstore.errors import InvalidInput
from evstore.examples.users import EmailChanged, User, registry
from evstore.spi import PendingEvent
from evstore.testing import StoreFactory

OLD = datetime.now(UTC) - timedelta(days=3)


def _old_events(store: evstore.EventStore, stream_id: str, n: int) -> None:
    """``n`` events recorded three days ago (import and copy store a given recorded_at)."""
    pending = [
        PendingEvent(str(uuid.uuid4()), "Old", b'{"i":%d}' % i, b"{}", 1, OLD, OLD)
        for i in range(n)
    ]
    store.backend.append(stream_id, pending, evstore.ANY, store._placement(stream_id))


def _versions(events: list[evstore.RecordedEvent], stream_id: str) -> list[int]:
    return [e.version for e in events if e.stream_id == stream_id]


def _populate(store: evstore.EventStore) -> None:
    for i in range(10):
        store.append("count-1", [NewEvent("E", {"i": i})])
        store.append("cut-1", [NewEvent("E", {"i": i})])
        store.append("keep-1", [NewEvent("E", {"i": i})])
    _old_events(store, "age-1", 4)
    store.append("age-1", [NewEvent("Fresh", {"i": 4}), NewEvent("Fresh", {"i": 5})])
    for i in range(6):
        store.append(f"cat-{i % 2}", [NewEvent("E", {"i": i})])
    store.set_retention("count-1", max_count=3)
    store.set_retention("cut-1", truncate_before=8)
    store.set_retention("age-1", max_age=timedelta(days=1))
    store.set_retention(category="cat", max_count=1)


EXPECTED = {
    "count-1": [8, 9, 10],
    "cut-1": [8, 9, 10],
    "keep-1": list(range(1, 11)),
    "age-1": [5, 6],
    "cat-0": [3],
    "cat-1": [3],
}


def _assert_only_unexpired(store: evstore.EventStore) -> None:
    everything = store.read_all()
    for sid, versions in EXPECTED.items():
        assert [e.version for e in store.get_events(sid)] == versions, sid
        assert [e.version for e in store.iter_events(sid, backwards=True)] == versions[::-1]
        assert [e.version for e in store.get_events(sid, limit=1)] == versions[:1]
        assert store.stream_version(sid) == versions[-1]  # versions never renumber
        assert _versions(everything, sid) == versions, sid
    assert [e.version for e in store.read_all(category="cat")] == [3, 3]
    assert _versions(list(store.iter_all(stream_id="count-1")), "count-1") == [8, 9, 10]
    seen: list[evstore.RecordedEvent] = []
    with store.subscribe(seen.append) as sub:
        assert sub.wait_caught_up(30)
    assert [(e.stream_id, e.version) for e in seen] == [
        (e.stream_id, e.version) for e in everything
    ]


def test_expired_events_are_never_returned_before_and_after_scavenge(
    store_factory: StoreFactory,
) -> None:
    with store_factory.connect() as store:
        _populate(store)
        _assert_only_unexpired(store)
        events_before = store.stats()["events"]
        report = ops.scavenge(store)
        # 7 + 7 + 4 + (2 + 2): the age stream keeps its fresh events
        assert (report.events, report.truncated) == (22, 5), report.summary()
        assert store.stats()["events"] == events_before - 22
        _assert_only_unexpired(store)
        assert ops.scavenge(store).events == 0  # nothing more to free
        verified = ops.verify_store(store)
        assert verified.ok, verified.problems
        store.append("count-1", [NewEvent("E", {"i": 10})], expected_version=10)
        assert [e.version for e in store.get_events("count-1")] == [9, 10, 11]


def test_the_last_event_stays_so_the_version_stays(store_factory: StoreFactory) -> None:
    with store_factory.connect() as store:
        _old_events(store, "gone-1", 5)
        store.set_retention("gone-1", max_age=60)
        assert store.get_events("gone-1") == []
        assert store.stream_version("gone-1") == 5
        assert ops.scavenge(store).events == 4
        assert store.get_events("gone-1") == []
        assert store.stream_version("gone-1") == 5
        with pytest.raises(evstore.ConcurrencyError):
            store.append("gone-1", [NewEvent("E", {})], expected_version=evstore.NO_STREAM)
        store.set_retention("gone-1")  # cleared: the one event left shows again
        assert [e.version for e in store.get_events("gone-1")] == [5]


def test_protected_streams_and_categories_are_never_deleted(
    store_factory: StoreFactory,
) -> None:
    with store_factory.connect() as store:
        store.append("audit-1", [NewEvent("A", {}), NewEvent("A", {})])
        store.append("vault", [NewEvent("A", {}), NewEvent("A", {})])
        store.set_retention(category="audit", protected=True)
        store.set_retention("vault", protected=True)
        for sid in ("audit-1", "vault", "audit-new"):
            with pytest.raises(InvalidInput):
                store.delete_stream(sid)
            with pytest.raises(InvalidInput):
                store.delete_stream(sid, hard=True)
            with pytest.raises(InvalidInput):
                store.set_retention(sid, max_count=1)
        for change in ({}, {"max_age": 5}):
            with pytest.raises(InvalidInput):
                store.set_retention("vault", **change)  # type: ignore[arg-type]
            with pytest.raises(InvalidInput):
                store.set_retention(category="audit", **change)  # type: ignore[arg-type]
        store.set_retention(category="audit", protected=True)  # the same again: fine
        store.set_retention(category="*", max_count=1)
        assert ops.scavenge(store).events == 0
        assert len(store.get_events("audit-1")) == 2
        assert store.retention("audit-1").protected


def test_bad_metadata_is_invalid_input_and_writes_nothing(store_factory: StoreFactory) -> None:
    with store_factory.connect() as store:
        store.append("s-1", [NewEvent("E", {})])
        head = store.head_position()
        bad: list[dict[str, object]] = [
            {"max_count": 0},
            {"max_count": -1},
            {"max_count": True},
            {"max_count": 2**63},
            {"truncate_before": 0},
            {"truncate_before": "3"},
            {"max_age": 0},
            {"max_age": -5},
            {"max_age": timedelta(0)},
            {"max_age": "1d"},
            {"protected": 1},
            {"protected": True, "max_count": 3},
        ]
        for kwargs in bad:
            with pytest.raises(InvalidInput):
                store.set_retention("s-1", **kwargs)  # type: ignore[arg-type]
        with pytest.raises(InvalidInput):
            store.set_retention("s-1", category="s", max_count=1)
        with pytest.raises(InvalidInput):
            store.set_retention(max_count=1)
        with pytest.raises(InvalidInput):
            store.set_retention(category="s-1", max_count=1)  # a stream id, not a category
        with pytest.raises(InvalidInput):
            store.set_retention("$retention", max_count=1)
        with pytest.raises(InvalidInput):
            store.append("$retention", [NewEvent("E", {})])
        with pytest.raises(InvalidInput):
            store.delete_stream("$retention")
        assert store.head_position() == head


def test_another_store_object_honours_metadata_at_once(store_factory: StoreFactory) -> None:
    with store_factory.connect() as one, store_factory.connect() as two:
        for i in range(5):
            one.append("x-1", [NewEvent("E", {"i": i})])
        assert len(two.get_events("x-1")) == 5
        one.set_retention("x-1", max_count=2)
        assert [e.version for e in two.get_events("x-1")] == [4, 5]
        assert two.retention("x-1").max_count == 2


def test_retention_refresh_lets_a_store_reuse_what_it_read(store_factory: StoreFactory) -> None:
    with store_factory.connect() as one, store_factory.connect(retention_refresh=3600) as lazy:
        for i in range(5):
            one.append("x-1", [NewEvent("E", {"i": i})])
        assert len(lazy.get_events("x-1")) == 5  # read the (empty) metadata: kept an hour
        one.set_retention("x-1", max_count=2)
        one.set_retention("y-1", protected=True)
        assert len(lazy.get_events("x-1")) == 5  # another store's change: not yet
        with pytest.raises(InvalidInput):
            lazy.delete_stream("y-1")  # protection is always read at once
        lazy.set_retention("x-1", max_count=3)  # its own change counts at once
        assert [e.version for e in lazy.get_events("x-1")] == [3, 4, 5]
        assert [e.version for e in one.get_events("x-1")] == [3, 4, 5]
    with pytest.raises(InvalidInput):
        evstore.connect("memory://", retention_refresh=-1)


def test_a_tenant_store_keeps_retention_metadata_of_its_own() -> None:
    with (
        evstore.connect("memory://tenants-retention", tenant="acme") as acme,
        evstore.connect("memory://tenants-retention", tenant="umbrella") as umbrella,
    ):
        for store in (acme, umbrella):
            prefix = store.partitioning.prefix(store.tenant)  # type: ignore[union-attr]
            for i in range(4):
                store.append(f"{prefix}order-1", [NewEvent("E", {"i": i})])
        a = acme.partitioning.prefix("acme")  # type: ignore[union-attr]
        u = umbrella.partitioning.prefix("umbrella")  # type: ignore[union-attr]
        acme.set_retention(f"{a}order-1", max_count=1)
        assert [e.version for e in acme.get_events(f"{a}order-1")] == [4]
        assert len(umbrella.get_events(f"{u}order-1")) == 4
        assert list(umbrella.retention_policies()) == []
        with pytest.raises(InvalidInput):
            acme.append(f"{a}$retention", [NewEvent("E", {})])
        with pytest.raises(InvalidInput):
            acme.set_retention(f"{u}order-1", max_count=1)  # not its stream


def test_aggregate_loads_and_snapshots_after_truncation(store_factory: StoreFactory) -> None:
    with store_factory.connect() as store:
        users = evstore.Repository(store, User, registry=registry, snapshot_every=4)
        user = User.register("user-9", "a@b.c", "Ada", "L", "web")
        for i in range(5):
            user.change_email(f"a{i}@b.c")
        users.save(user)  # versions 1..6, a snapshot at 6
        store.set_retention("user-9", truncate_before=6)
        ops.scavenge(store)
        assert [e.version for e in store.get_events("user-9")] == [6]
        loaded = users.load("user-9")
        assert (loaded.version, loaded.email) == (6, "a4@b.c")
        loaded.change_email("z@b.c")
        users.save(loaded)
        assert users.load("user-9").email == "z@b.c"
        assert registry.decode(store.get_events("user-9")[-1]).__class__ is EmailChanged


def test_projection_never_sees_expired_events(store_factory: StoreFactory) -> None:
    with store_factory.connect() as store:
        _populate(store)
        seen: list[tuple[str, int]] = []

        def handle(event: evstore.RecordedEvent, _tx: object) -> None:
            seen.append((event.stream_id, event.version))

        evstore.Projection(store, "counter", handle).catch_up(until=store.head_position())
        for sid, versions in EXPECTED.items():
            assert [v for s, v in seen if s == sid] == versions, sid


def test_export_and_copy_carry_the_metadata(store_factory: StoreFactory, tmp_path: Path) -> None:
    with store_factory.connect() as source, evstore.connect("memory://") as target:
        _populate(source)
        ops.export_store(source, tmp_path / "x.jsonl")
        report = ops.import_store(target, tmp_path / "x.jsonl")
        assert report.problems == [], report.problems
        assert target.retention_policies() == source.retention_policies()
        _assert_only_unexpired(target)


def test_export_import_and_copy_of_scavenged_streams_keep_their_versions(
    store_factory: StoreFactory, tmp_path: Path
) -> None:
    with store_factory.connect() as source:
        _populate(source)
        source.append("cut-1", [NewEvent("E", {})])
        source.delete_stream("cut-1")  # soft-deleted after the scavenge: stays hidden
        source.append("cut-1", [NewEvent("E", {"again": True})])
        ops.scavenge(source)
        ops.export_store(source, tmp_path / "x.jsonl")
        for target_url in ("memory://", f"sqlite:///{tmp_path / 'copy.db'}"):
            with evstore.connect(target_url) as copied, evstore.connect("memory://") as imported:
                report = ops.copy_store(source, copied)
                assert report.problems == [], report.problems
                loaded = ops.import_store(imported, tmp_path / "x.jsonl")
                assert loaded.problems == [], loaded.problems
                for target in (copied, imported):
                    for sid in ("count-1", "age-1", "cat-0", "keep-1"):
                        assert [e.version for e in target.get_events(sid)] == EXPECTED[sid]
                        assert target.stream_version(sid) == EXPECTED[sid][-1]
                    assert [e.data for e in target.get_events("cut-1")] == [{"again": True}]
                    assert target.stream_version("cut-1") == 12
                    target.append("count-1", [NewEvent("E", {})], expected_version=10)
                    verified = ops.verify_store(target)
                    assert verified.ok, verified.problems


WRITERS = 4
PER_WRITER = 150


def test_scavenge_beside_four_writers_and_a_subscriber(store_factory: StoreFactory) -> None:
    """Writers append to limited streams (max_count 5, by category) and to unlimited ones
    while scavenge runs again and again: nothing unexpired is lost, nothing is corrupted."""
    with store_factory.connect() as store:
        store.set_retention(category="lim", max_count=5)
        got: list[evstore.RecordedEvent] = []
        errors: list[BaseException] = []
        done = threading.Event()

        def write(w: int) -> None:
            try:
                with store_factory.connect() as own:
                    for i in range(PER_WRITER):
                        own.append(f"lim-{w}", [NewEvent("L", {"w": w, "i": i})])
                        own.append(f"all-{w}", [NewEvent("A", {"w": w, "i": i})])
            except BaseException as e:
                errors.append(e)

        freed = 0
        with store.subscribe(got.append, name="watcher") as sub:
            writers = [threading.Thread(target=write, args=(w,)) for w in range(WRITERS)]
            for t in writers:
                t.start()
            while any(t.is_alive() for t in writers):
                freed += ops.scavenge(store).events
                time.sleep(0.05)
            for t in writers:
                t.join()
            done.set()
            freed += ops.scavenge(store).events
            assert sub.wait_until(store.head_position(), 60)
        assert errors == []
        assert freed > 0
        for w in range(WRITERS):
            kept = store.get_events(f"lim-{w}")
            assert [e.version for e in kept] == list(range(PER_WRITER - 4, PER_WRITER + 1))
            assert [e.data["i"] for e in kept] == list(range(PER_WRITER - 5, PER_WRITER))
            assert store.stream_version(f"lim-{w}") == PER_WRITER
            full = store.get_events(f"all-{w}")
            assert [e.data["i"] for e in full] == list(range(PER_WRITER))
            # the subscriber got every event of the unlimited streams, in order, once
            mine = [e.data["i"] for e in got if e.stream_id == f"all-{w}"]
            assert mine == list(range(PER_WRITER))
            theirs = [e.version for e in got if e.stream_id == f"lim-{w}"]
            assert theirs == sorted(set(theirs)) and theirs[-5:] == list(
                range(PER_WRITER - 4, PER_WRITER + 1)
            )
        positions = [e.position for e in got]
        assert positions == sorted(set(positions))
        assert store.stats()["events"] <= WRITERS * (PER_WRITER + 5) + 1
        verified = ops.verify_store(store)
        assert verified.ok, verified.problems


def test_scavenge_reads_the_metadata_again_before_each_cut() -> None:
    """A limit cleared by another process while scavenge works out a cut is honoured."""
    with (
        evstore.connect("memory://retention-race") as store,
        evstore.connect("memory://retention-race") as other,
    ):
        for i in range(10):
            store.append("x-1", [NewEvent("E", {"i": i})])
        store.set_retention("x-1", max_count=2)
        original = store.backend.stream_version
        cleared: list[str] = []

        def racing(stream_id: str) -> int:
            if stream_id == "x-1" and not cleared:
                other.set_retention("x-1")  # no limits any more
                cleared.append(stream_id)
            return original(stream_id)

        store.backend.stream_version = racing  # type: ignore[method-assign]
        report = ops.scavenge(store)
        assert cleared and report.events == 0
        assert len(store.get_events("x-1")) == 10
