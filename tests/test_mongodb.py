"""MongoDB-specific tests: the global order under concurrent writers, hostile ids, and a
server killed with SIGKILL while writers and a named subscription run.

They run against SecantusDB (started by the tests) or ``$EVSTORE_MONGODB_URL``; the kill
test always starts its own file-backed SecantusDB.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient, monitoring

import evstore
from evstore.errors import BackendUnavailable
from tests.backends.mongodb import SecantusServer, fresh_database, with_database

HOSTILE = [
    "$where",
    "$gt",
    "a.b.c",
    ".leading",
    "trailing.",
    "$",
    '{"$gt": ""}',
    "{'$ne': null}",
    'it\'s "quoted"',
    "back\\slash",
    "$regex.*",
    "^.*$",
    "user-$or",
]


@pytest.fixture
def url() -> Iterator[str]:
    with fresh_database() as u:
        yield u


def _wait(condition: object, timeout: float = 180.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"condition not met within {timeout}s")
        time.sleep(0.05)


def test_eight_writers_and_a_subscriber_skip_nothing_and_repeat_nothing(url: str) -> None:
    writers, per_writer = 8, 40
    delivered: list[evstore.RecordedEvent] = []
    appended: list[str] = []
    lock = threading.Lock()
    with evstore.connect(url) as store:
        sub = store.subscribe(delivered.append, name="audit", batch_size=7)

        def write(w: int) -> None:
            with evstore.connect(url) as own:
                for i in range(per_writer):
                    events = [
                        evstore.NewEvent("Wrote", {"w": w, "i": i, "k": k})
                        for k in range(1 + i % 3)
                    ]
                    own.append(f"w{w}-{i % 5}", events)
                    with lock:
                        appended.extend(str(e.event_id) for e in events)

        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        _wait(lambda: len(delivered) >= len(appended) or not sub.running)
        sub.stop()
        ids = [str(e.event_id) for e in delivered]
        positions = [e.position for e in delivered]
        skipped = set(appended) - set(ids)
        duplicated = len(ids) - len(set(ids))
        assert (len(skipped), duplicated) == (0, 0)
        assert positions == sorted(positions)
        assert [e.position for e in store.read_all()] == positions


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_ids_and_types_are_stored_and_read_back_literally(url: str, hostile: str) -> None:
    with evstore.connect(url) as store:
        store.append("victim-1", [evstore.NewEvent("Secret", {"x": 1})])
        sid = f"{hostile}-1" if not hostile.endswith("-1") else hostile
        store.append(hostile, [evstore.NewEvent(hostile, {hostile: hostile}, {hostile: 1})])
        store.append(sid, [evstore.NewEvent("T", {})])
        [event] = store.get_events(hostile)
        assert (event.stream_id, event.type, event.data, event.metadata) == (
            hostile,
            hostile,
            {hostile: hostile},
            {hostile: 1},
        )
        assert store.stream_version(hostile) == 1
        assert [e.type for e in store.read_all(types=[hostile])] == [hostile]
        assert [e.stream_id for e in store.read_all(category=hostile)] == [hostile, sid][
            : len(store.read_all(category=hostile))
        ]
        assert all(e.stream_id != "victim-1" for e in store.read_all(category=hostile))
        store.save_snapshot(evstore.Snapshot(hostile, 1, {hostile: hostile}))
        snap = store.get_snapshot(hostile)
        assert snap is not None and snap.data == {hostile: hostile}
        assert store.get_snapshot("victim-1") is None
        with store.subscribe(lambda e: None, name=hostile) as sub:
            sub.wait_caught_up(60)
        assert store.backend.get_checkpoint(hostile) == store.head_position()
        assert store.backend.get_checkpoint("victim") is None
        store.delete_stream(hostile)
        assert store.get_events(hostile) == []
        assert store.get_events("victim-1") != []


def test_operator_looking_stream_id_does_not_match_other_streams(url: str) -> None:
    with evstore.connect(url) as store:
        store.append("a-1", [evstore.NewEvent("A", {})])
        for probe in ('{"$gt": ""}', "$gt", "$ne", ".*"):
            assert store.get_events(probe) == []
            assert store.stream_version(probe) == 0
            assert store.read_all(category=probe) == []
            assert store.read_all(types=[probe]) == []


def _append_forever(
    url: str, stop: threading.Event, acked: list[str], errors: list[BaseException], w: int
) -> None:
    with evstore.connect(url) as store:
        i = 0
        while not stop.is_set():
            events = [evstore.NewEvent("Tick", {"w": w, "i": i, "k": k}) for k in range(3)]
            while True:  # the same events again after a failure: appends are idempotent
                try:
                    store.append(f"tick-{w}", events)
                    break
                except BackendUnavailable as e:
                    if stop.is_set():
                        return
                    errors.append(e)
                    time.sleep(0.2)
            acked.extend(str(e.event_id) for e in events)
            i += 1


@pytest.mark.slow
def test_sigkill_of_the_server_loses_nothing_acknowledged_and_resumes_subscriptions(
    tmp_path: Path,
) -> None:
    # --sync-on-commit: without it SecantusDB acknowledged some j:true commits that a SIGKILL
    # then lost (one 3-event batch in 5 of 8 runs); with it, none in 10 of 10 runs. mongod
    # journals a w:majority/j:true commit before acknowledging it.
    server = SecantusServer(str(tmp_path / "data"), sync_on_commit=True)
    server.start()
    try:
        url = with_database(server.url, "killtest") + "&serverSelectionTimeoutMS=3000"
        acked: list[str] = []
        errors: list[BaseException] = []
        first: list[evstore.RecordedEvent] = []
        stop = threading.Event()
        writers = [
            threading.Thread(target=_append_forever, args=(url, stop, acked, errors, w))
            for w in range(3)
        ]
        for t in writers:
            t.start()
        sub_store = evstore.connect(url)
        sub = sub_store.subscribe(first.append, name="projector", batch_size=5)
        _wait(lambda: len(first) >= 30 and len(acked) >= 60)
        server.kill()
        _wait(lambda: not sub.running, 120)  # the subscription stops on the outage
        with pytest.raises(BackendUnavailable):
            sub.stop()
        sub_store.close()
        server.start()
        _wait(lambda: len(errors) > 0 or len(acked) > 200, 120)
        time.sleep(1.0)
        stop.set()
        for t in writers:
            t.join(180)
        with evstore.connect(url) as store:
            checkpoint = store.backend.get_checkpoint("projector")
            assert checkpoint is not None and checkpoint > 0
            assert checkpoint <= max(e.position for e in first)
            stored = {str(e.event_id) for e in store.read_all()}
            lost = set(acked) - stored
            assert not lost, f"{len(lost)} acknowledged events lost"
            second: list[evstore.RecordedEvent] = []
            sub2 = store.subscribe(second.append, name="projector", batch_size=5)
            _wait(lambda: len(second) >= len(stored) - checkpoint or not sub2.running)
            _wait(lambda: sub2.position >= store.head_position())
            sub2.stop()
            positions = [e.position for e in second]
            assert positions and min(positions) > checkpoint, "delivered again below checkpoint"
            assert len(positions) == len(set(positions)), "delivered twice"
            assert positions == sorted(positions)
            seen = {str(e.event_id) for e in first} | {str(e.event_id) for e in second}
            assert stored <= seen, "an event was never delivered"
    finally:
        server.stop()


def test_database_name_and_options_come_from_url_and_keywords(url: str) -> None:
    name = f"opt_{uuid.uuid4().hex[:8]}"
    with evstore.connect(url, database=name, retry_timeout=5) as store:
        store.append("s-1", [evstore.NewEvent("T", {})])
        assert store.backend._db.name == name  # type: ignore[attr-defined]
        store.backend._db.client.drop_database(name)  # type: ignore[attr-defined]
    with pytest.raises(evstore.InvalidInput):
        evstore.connect(url, retry_timeout="soon")


def test_sharded_index_layout_keeps_versions_unique_and_appends_idempotent(url: str) -> None:
    with evstore.connect(url, sharded=True) as store:
        events = [evstore.NewEvent("T", {"i": i}) for i in range(3)]
        first = store.append("s-1", events, expected_version=0)
        assert store.append("s-1", events, expected_version=0) == first
        with pytest.raises(evstore.DuplicateEventId):
            store.append("s-2", events[:1])
        with pytest.raises(evstore.ConcurrencyError):
            store.append("s-1", [evstore.NewEvent("T", {})], expected_version=1)
        names = store.backend._db.events.index_information()  # type: ignore[attr-defined]
        assert names["shard_stream_version"]["unique"] is True
        assert names["shard_stream_version"]["key"] == [
            ("log_partition", 1),
            ("stream_id", 1),
            ("version", 1),
        ]
        assert not names["event_id"].get("unique", False)


def _shard_prefix(doc: dict[str, object]) -> object:
    """The field every shard key of the sharded layout leads with."""
    assert "log_partition" in doc, f"no shard key prefix in {doc}"
    return doc["log_partition"]


@pytest.mark.parametrize("partitions", [1, 16])
def test_sharded_append_writes_documents_of_one_shard_key_prefix(url: str, partitions: int) -> None:
    """Every document an append's transaction writes (events, stream, counter) carries the
    append's log partition in ``log_partition``, the field each shard key leads with; the
    indexes a sharded cluster needs exist."""
    with evstore.connect(url, sharded=True, partitions=partitions) as store:
        single = {
            f"acct-{i}": store.append(
                f"acct-{i}", [evstore.NewEvent("T", {"n": n}) for n in range(2)]
            )
            for i in range(24)
        }
        many = store.append_many([(f"order-{i}", [evstore.NewEvent("T", {})]) for i in range(4)])
    db = MongoClient(url).get_default_database()
    try:
        groups = list(single.items()) + [(f"order-{i}", r) for i, r in enumerate(many)]
        for stream_id, result in groups:
            docs = list(db.events.find({"stream_id": stream_id}))
            assert len(docs) == len(result.positions)
            assert {d["_id"] & ((1 << 40) - 1) for d in docs} == set(result.positions)
            stream = db.streams.find_one({"_id": stream_id})
            assert stream is not None
            prefixes = {_shard_prefix(d) for d in docs} | {_shard_prefix(stream)}
            assert prefixes == {result.partition}, (stream_id, prefixes)
            assert {d["_id"] >> 40 for d in docs} == {result.partition}
        for j in range(partitions):
            counter = db.counters.find_one({"_id": "position" if j == 0 else f"position:{j}"})
            assert counter is not None and _shard_prefix(counter) == j
        if partitions == 16:
            assert len({r.partition for _, r in groups}) > 1, "all in one partition: no test"
        events = db.events.index_information()
        assert events["shard_stream_version"]["key"][0] == ("log_partition", 1)
        assert events["shard_stream_version"]["unique"] is True
        assert db.streams.index_information()["shard_key"]["key"] == [
            ("log_partition", 1),
            ("_id", 1),
        ]
        assert db.counters.index_information()["shard_key"]["key"] == [("log_partition", 1)]
    finally:
        db.client.close()


class _Commands:
    """Records the commands a client sends (pymongo command monitoring)."""

    def __init__(self) -> None:
        self.sent: list[dict[str, object]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.sent.append(dict(event.command))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def _targets(command: dict[str, Any]) -> list[object]:
    """The ``log_partition`` each document or filter of a command names (None: none)."""
    if "findAndModify" in command:
        return [command["query"].get("log_partition")]
    if "find" in command:
        return [command["filter"].get("log_partition")]
    if "insert" in command:
        return [d.get("log_partition") for d in command["documents"]]
    if "update" in command:
        return [u["q"].get("log_partition") for u in command["updates"]]
    raise AssertionError(f"unexpected command in an append's transaction: {command}")


def test_sharded_append_transaction_names_its_partition_in_every_command(url: str) -> None:
    """Every read and write inside an append's transaction names the append's log partition
    (what mongos routes on): a single-shard transaction under the zones of docs/mongodb.md."""
    commands = _Commands()
    listener = type("L", (monitoring.CommandListener,), {})()
    listener.started, listener.succeeded, listener.failed = (  # type: ignore[method-assign]
        commands.started,
        commands.succeeded,
        commands.failed,
    )
    with evstore.connect(url, sharded=True, partitions=16, event_listeners=[listener]) as store:
        store.append("warm-up", [evstore.NewEvent("T", {})])
        for i in range(6):
            commands.sent.clear()
            result = store.append(f"acct-{i}", [evstore.NewEvent("T", {}) for _ in range(2)])
            inside = [
                c
                for c in commands.sent
                if c.get("autocommit") is False
                and not {"commitTransaction", "abortTransaction"} & set(c)
            ]
            assert {next(iter(c)) for c in inside} >= {"findAndModify", "find", "insert", "update"}
            for c in inside:
                assert set(_targets(c)) == {result.partition}, c


def test_sharded_event_ids_stay_unique_across_log_partitions(url: str) -> None:
    with evstore.connect(url, sharded=True, partitions=16) as store:
        event = evstore.NewEvent("T", {})
        first = store.append("acct-0", [event])
        other = next(
            f"acct-{i}" for i in range(1, 200) if store.partition_of(f"acct-{i}") != first.partition
        )
        with pytest.raises(evstore.DuplicateEventId):
            store.append(other, [event])
        assert store.append("acct-0", [event], expected_version=0) == first
        assert store.stream_version(other) == 0


def test_sharded_streams_deleted_or_truncated_before_their_first_append(url: str) -> None:
    """delete/truncate cannot know a new stream's partition; the first append finds the
    document they left (log_partition null) and moves it into its partition."""
    with evstore.connect(url, sharded=True, partitions=16) as store:
        assert store.backend.truncate_stream("cut-1", 6) == 0  # type: ignore[attr-defined]
        result = store.append("cut-1", [evstore.NewEvent("T", {})])
        assert result.version == 6
        store.delete_stream("gone-1", hard=True)
        with pytest.raises(evstore.StreamDeleted):
            store.append("gone-1", [evstore.NewEvent("T", {})])
    db = MongoClient(url).get_default_database()
    try:
        stream = db.streams.find_one({"_id": "cut-1"})
        assert stream is not None and stream["log_partition"] == result.partition
        assert db.streams.count_documents({"_id": "cut-1"}) == 1
    finally:
        db.client.close()


def test_log_partitions_are_recorded_with_a_counter_each(url: str) -> None:
    with evstore.connect(url, partitions=4) as store:
        assert store.partitions == 4
        results = [store.append(f"acct-{i}", [evstore.NewEvent("T", {})]) for i in range(20)]
        heads = store.head()
        for j in range(4):
            mine = [r for r in results if r.partition == j]
            assert heads[j] == len(mine)
            assert sorted(p for r in mine for p in r.positions) == list(range(1, len(mine) + 1))
    with evstore.connect(url) as reopened:  # without the option: the recorded count
        assert reopened.partitions == 4
        assert len(reopened.read_all()) == 20

    async def partitions_async() -> int:
        async with evstore.connect_async(url) as store:
            return store.partitions

    assert asyncio.run(partitions_async()) == 4
    with pytest.raises(evstore.InvalidInput, match="partitions=4"):
        evstore.connect(url, partitions=8).head()
    with pytest.raises(evstore.InvalidInput, match="partitions=4"):
        evstore.connect(url + "&partitions=1" if "?" in url else url + "?partitions=1").head()
    client: MongoClient[dict[str, object]] = MongoClient(url)
    try:
        counters = {d["_id"] for d in client.get_default_database().counters.find()}
        assert counters == {"position", "position:1", "position:2", "position:3"}
    finally:
        client.close()
