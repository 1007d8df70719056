"""verify: each kind of corruption, written with the backend's driver directly, is found.

The corrupt rows bypass evstore (sqlite3, psycopg, pymongo, nats-py, or the memory backend's
own structures), as a bug, a hand-edit or a bad restore would. Where a backend's constraints make
a kind of corruption impossible to store (a unique position on SQLite, MongoDB and plain
PostgreSQL), that kind is tested where it can happen.
"""

from __future__ import annotations

import asyncio
import sqlite3
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from click.testing import CliRunner
from pymongo import MongoClient

import evstore
from evstore import NewEvent, Snapshot, ops
from evstore.backends.memory import MemoryBackend
from evstore.cli import main
from evstore.spi._model import EventRecord, PendingEvent, SnapshotRecord, stable_hash
from evstore.testing import StoreFactory


def _base(store: evstore.EventStore) -> None:
    store.append("s-1", [NewEvent("E", {"i": i}) for i in range(3)])
    store.append("t-1", [NewEvent("E", {})])
    store.delete_stream("t-1", hard=True)
    store.append("u-1", [NewEvent("E", {})])
    store.save_snapshot(Snapshot("s-1", 2, {"n": 2}))
    store.backend.set_checkpoint("proj", store.head_position())


def _kind(url: str) -> str:
    if url.startswith("memory://"):
        return "memory"
    if url.startswith("sqlite://"):
        return "sqlite"
    if url.startswith("postgresql://"):
        return "postgresql_partitioned" if "partitions=" in url else "postgresql"
    if url.startswith("nats://"):
        return "nats"
    return "mongodb"


# -- the corrupters, one per backend ---------------------------------------------------------


def _sqlite_path(url: str) -> str:
    return url.removeprefix("sqlite:///").split("?", 1)[0]


def _sqlite_event(url: str, stream_id: str, version: int, data: bytes = b"{}") -> None:
    db = sqlite3.connect(_sqlite_path(url))
    with db:
        db.execute(
            "INSERT INTO events (stream_id, version, event_id, type, data, metadata, "
            "schema_version, occurred_at, recorded_at, category, partition_key, partition_hash) "
            "VALUES (?, ?, ?, 'E', ?, '{}', 1, 0, 0, ?, ?, 0)",
            (stream_id, version, uuid.uuid4().bytes, data, stream_id.split("-")[0], stream_id),
        )
    db.close()


def _pg(url: str) -> tuple[psycopg.Connection[Any], str]:
    schema = parse_qs(urlsplit(url).query)["schema"][0]
    base = url.split("?", 1)[0]
    return psycopg.connect(base, autocommit=True), schema


def _pg_event(
    url: str, stream_id: str, version: int, data: str = "{}", position: int | None = None
) -> None:
    conn, s = _pg(url)
    with conn:
        if position is None:
            (position,) = conn.execute(f"SELECT max(position) + 1 FROM {s}.events").fetchone()  # type: ignore[misc]
        conn.execute(
            f"INSERT INTO {s}.events (position, stream_id, version, event_id, type, data, "
            "metadata, schema_version, occurred_at, recorded_at, category, partition_key, "
            "partition_hash) VALUES (%s, %s, %s, %s, 'E', %s, '{}', 1, now(), now(), %s, %s, 0)",
            (position, stream_id, version, uuid.uuid4(), data, stream_id.split("-")[0], stream_id),
        )


def _mongo(url: str) -> tuple[MongoClient[dict[str, Any]], Any]:
    client: MongoClient[dict[str, Any]] = MongoClient(url)
    return client, client.get_default_database()


def _mongo_event(url: str, stream_id: str, version: int, data: bytes = b"{}") -> None:
    client, db = _mongo(url)
    with client:
        template = db.events.find_one(sort=[("_id", -1)])
        counter = db.counters.find_one_and_update({}, {"$inc": {"value": 1}}, return_document=True)
        template.update(
            _id=counter["value"],
            stream_id=stream_id,
            version=version,
            event_id=str(uuid.uuid4()),
            data=data,
            partition_key=stream_id,
        )
        db.events.insert_one(template)


def _nats_publish(url: str, subject: str, body: bytes, headers: dict[str, str]) -> None:
    """Publish one message with nats-py, as evstore never would."""
    import nats

    async def publish() -> None:
        nc = await nats.connect(url.rsplit("/", 1)[0])
        try:
            await nc.jetstream().publish(subject, body, headers=headers)
        finally:
            await nc.close()

    asyncio.run(publish())


def _nats_names(url: str) -> Any:
    from evstore.backends.nats import _mapping as m

    return m, m.Names(url.rsplit("/", 1)[1])


def _nats_event(url: str, stream_id: str, version: int, data: bytes) -> None:
    m, names = _nats_names(url)
    event = PendingEvent(str(uuid.uuid4()), "E", data, b"{}", 1, datetime.now(UTC))
    body = m.event_body(event, stream_id.split("-")[0], stable_hash(stream_id), 0)
    subject = names.events(0, m.encode_token(stream_id))
    _nats_publish(url, subject, body, m.event_headers(event.event_id, version, 0))


def _memory_event(store: evstore.EventStore, stream_id: str, version: int, data: bytes) -> None:
    backend = store.backend
    assert isinstance(backend, MemoryBackend)
    d = backend._d  # one log partition: partition 0
    last = d.logs[0][-1]
    d.heads[0] += 1
    d.head += 1
    record = last._replace(
        stream_id=stream_id,
        version=version,
        position=d.heads[0],
        event_id=str(uuid.uuid4()),
        data=data,
    )
    d.logs[0].append(record)
    d.placement[0, record.position] = d.placement[0, last.position]


def _event(store: evstore.EventStore, url: str, stream_id: str, version: int, bad: bool) -> None:
    """Write an event row behind evstore's back (``bad``: data that does not decode)."""
    kind = _kind(url)
    if kind == "memory":
        _memory_event(store, stream_id, version, b"[1]" if bad else b"{}")
    elif kind == "sqlite":
        _sqlite_event(url, stream_id, version, b"not json" if bad else b"{}")
    elif kind.startswith("postgresql"):
        _pg_event(url, stream_id, version, "[1]" if bad else "{}")
    elif kind == "nats":
        _nats_event(url, stream_id, version, b"[1]" if bad else b"{}")
    else:
        _mongo_event(url, stream_id, version, b"[1]" if bad else b"{}")


def _snapshot_ahead(store: evstore.EventStore, url: str) -> None:
    kind = _kind(url)
    if kind == "memory":
        backend = store.backend
        assert isinstance(backend, MemoryBackend)
        snap = backend._d.snapshots["s-1"]
        backend._d.snapshots["s-1"] = snap._replace(version=99)
    elif kind == "sqlite":
        db = sqlite3.connect(_sqlite_path(url))
        with db:
            db.execute("UPDATE snapshots SET version = 99 WHERE stream_id = 's-1'")
        db.close()
    elif kind.startswith("postgresql"):
        conn, s = _pg(url)
        with conn:
            conn.execute(f"UPDATE {s}.snapshots SET version = 99 WHERE stream_id = 's-1'")
    elif kind == "nats":
        m, names = _nats_names(url)
        ahead = SnapshotRecord("s-1", 99, b"{}", 1, datetime.now(UTC))
        subject = f"$KV.{names.snapshots}.{m.encode_token('s-1')}"
        _nats_publish(url, subject, m.snapshot_body(ahead), {})
    else:
        client, db = _mongo(url)
        with client:
            db.snapshots.update_one({"_id": "s-1"}, {"$set": {"version": 99}})


CORRUPTIONS: dict[str, tuple[str, Callable[[evstore.EventStore, str], None]]] = {
    "version gap": ("version", lambda store, url: _event(store, url, "s-1", 5, False)),
    "undecodable data": ("decode", lambda store, url: _event(store, url, "s-1", 4, True)),
    "events of a tombstoned stream": (
        "stream",
        lambda store, url: _event(store, url, "t-1", 1, False),
    ),
    "snapshot ahead of its stream": ("snapshot", _snapshot_ahead),
    "checkpoint past the head": (
        "checkpoint",
        lambda store, url: store.backend.set_checkpoint("proj", store.head_position() + 10**6),
    ),
}


def test_a_sound_store_verifies_ok(store_factory: StoreFactory) -> None:
    with store_factory.connect() as store:
        _base(store)
        report = ops.verify_store(store)
        assert report.ok, report.problems
        assert (report.events, report.streams, report.snapshots, report.checkpoints) == (
            4,
            3,
            1,
            1,
        )


@pytest.mark.parametrize("corruption", list(CORRUPTIONS))
def test_verify_finds_each_kind_of_corruption(store_factory: StoreFactory, corruption: str) -> None:
    kind, corrupt = CORRUPTIONS[corruption]
    if kind == "stream" and _kind(store_factory.url) == "nats":
        # NATS keeps a stream's state in its messages: an event published after the
        # tombstone marker makes the stream live again, which verify cannot tell apart.
        pytest.skip("not detectable on NATS through the backend interface")
    with store_factory.connect() as store:
        _base(store)
        assert ops.verify_store(store).ok
        corrupt(store, store_factory.url)
        report = ops.verify_store(store)
        assert not report.ok
        assert kind in {p.kind for p in report.problems}, report.problems


def test_verify_finds_a_repeated_position_in_memory() -> None:
    with evstore.connect("memory://") as store:
        _base(store)
        backend = store.backend
        assert isinstance(backend, MemoryBackend)
        d = backend._d
        first: EventRecord = d.logs[0][0]
        d.logs[0].insert(
            1, first._replace(stream_id="dup-1", version=1, event_id=str(uuid.uuid4()))
        )
        report = ops.verify_store(store)
        assert "position" in {p.kind for p in report.problems}, report.problems


def test_verify_finds_a_repeated_position_and_version_on_partitioned_postgresql(
    tmp_path: Path,
) -> None:
    from tests.backends.postgresql_partitioned import factory

    with factory(tmp_path) as f, f.connect() as store:
        _base(store)
        (first,) = store.read_all(limit=1)
        # Unique only together with the partition key: another key stores the same position.
        _pg_event(f.url, "dup-1", 1, position=first.position)
        report = ops.verify_store(store)
        assert "position" in {p.kind for p in report.problems}, report.problems


def test_verify_command_exits_1_with_the_report(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'v.db'}"
    with evstore.connect(url) as store:
        _base(store)
    runner = CliRunner()
    ok = runner.invoke(main, ["verify", "--url", url])
    assert ok.exit_code == 0, ok.output
    assert ok.output.startswith("ok: 4 events")
    _sqlite_event(url, "s-1", 7)
    bad = runner.invoke(main, ["verify", "--url", url])
    assert bad.exit_code == 1
    assert "version: s-1@7" in bad.output and "problem(s)" in bad.output
