"""Timestamps out of range never get in, and one corrupt stored row never stops the log.

Validation: an aware ``occurred_at``/``taken_at`` whose UTC value falls outside years
1-9999 is ``InvalidInput`` with nothing written, on every backend. Reading: a row damaged
in storage (a timestamp no ``datetime`` can hold, or JSON that does not decode) raises
``SerializationError`` naming its position for that event alone; every other event of the
stream and of the log stays readable, ``iter_all`` delivers the events before it, a
subscription stops at it (``wait()`` raises the error) and a projection parks it as a dead
letter and goes on. ``memory://`` keeps Python values and cannot hold such a row.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest
from psycopg import sql
from pymongo import MongoClient

import evstore
from evstore import NewEvent, Snapshot
from evstore.testing import StoreFactory

TOO_EARLY = datetime(1, 1, 1, tzinfo=timezone(timedelta(hours=1)))
TOO_LATE = datetime(9999, 12, 31, 23, tzinfo=timezone(timedelta(hours=-2)))
FIRST = datetime(1, 1, 1, tzinfo=UTC)
LAST = datetime(9999, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)


@pytest.fixture
def store(store_factory: StoreFactory) -> Any:
    s = store_factory.connect()
    yield s
    s.close()


def test_timestamps_outside_years_1_to_9999_utc_are_refused(store: evstore.EventStore) -> None:
    sid = f"t-{uuid.uuid4().hex[:8]}"
    for bad in (TOO_EARLY, TOO_LATE):
        with pytest.raises(evstore.InvalidInput, match="years 1-9999"):
            NewEvent("T", {}, occurred_at=bad)
        with pytest.raises(evstore.InvalidInput, match="years 1-9999"):
            Snapshot(sid, 1, {}, taken_at=bad)
    assert store.head_position() == 0
    # The edges themselves are stored and read back exactly.
    store.append(sid, [NewEvent("T", {}, occurred_at=FIRST), NewEvent("T", {}, occurred_at=LAST)])
    assert [e.occurred_at for e in store.get_events(sid)] == [FIRST, LAST]
    store.save_snapshot(Snapshot(sid, 2, {}, taken_at=LAST))
    snapshot = store.get_snapshot(sid)
    assert snapshot is not None and snapshot.taken_at == LAST


def _corrupt(factory: StoreFactory, sid: str, version: int, what: str) -> None:
    """Damage one stored row behind the store's back: ``what`` is "time", "data" or
    "snapshot" (the snapshot's taken_at)."""
    url = factory.url
    if url.startswith("sqlite"):
        with sqlite3.connect(urlsplit(url).path[1:] if url.startswith("sqlite:////") else
                             url[len("sqlite:///"):]) as db:  # fmt: skip
            if what == "time":
                db.execute(
                    "UPDATE events SET occurred_at = ? WHERE stream_id = ? AND version = ?",
                    (2**62, sid, version),
                )
            elif what == "data":
                db.execute(
                    "UPDATE events SET data = ? WHERE stream_id = ? AND version = ?",
                    (b"{not json", sid, version),
                )
            else:
                db.execute("UPDATE snapshots SET taken_at = ? WHERE stream_id = ?", (-(2**62), sid))
    elif url.startswith("postgresql"):
        schema = parse_qs(urlsplit(url).query)["schema"][0]
        base = url.split("?")[0]
        with psycopg.connect(base, autocommit=True) as conn:
            table = sql.Identifier(schema, "snapshots" if what == "snapshot" else "events")
            change = {
                "time": "occurred_at = '10000-01-01 00:00+00'",
                "data": "data = '\"not an object\"'",
                "snapshot": "taken_at = '0001-01-01 00:00+00'::timestamptz - interval '1 day'",
            }[what]
            row = "stream_id = %s AND " + ("%s > 0" if what == "snapshot" else "version = %s")
            statement = f"UPDATE {{}} SET {change} WHERE {row}"
            conn.execute(sql.SQL(statement).format(table), (sid, version))
    elif url.startswith("mongodb"):
        client: MongoClient[dict[str, Any]] = MongoClient(url)
        try:
            db = client[urlsplit(url).path.lstrip("/")]
            if what == "time":
                db.events.update_one(
                    {"stream_id": sid, "version": version}, {"$set": {"occurred_at": 2**62}}
                )
            elif what == "data":
                db.events.update_one(
                    {"stream_id": sid, "version": version}, {"$set": {"data": b"[1]"}}
                )
            else:
                db.snapshots.update_one({"_id": sid}, {"$set": {"taken_at": -(2**62)}})
        finally:
            client.close()
    else:
        pytest.skip(f"this test cannot damage a stored row of {url.split(':')[0]}")


@pytest.mark.parametrize("what", ["time", "data"])
def test_one_corrupt_row_fails_its_own_event_only(
    store_factory: StoreFactory, store: evstore.EventStore, what: str
) -> None:
    sid, other = f"c-{uuid.uuid4().hex[:8]}", f"o-{uuid.uuid4().hex[:8]}"
    store.append(sid, [NewEvent("T", {"i": i}) for i in range(3)])
    bad = store.get_events(sid)[1].position
    last = store.append(other, [NewEvent("T", {"i": 9})]).last_position
    _corrupt(store_factory, sid, 2, what)
    message = rf"position {bad} \('{sid}' version 2\)"
    with pytest.raises(evstore.SerializationError, match=message):
        store.get_events(sid)
    with pytest.raises(evstore.SerializationError, match=message):
        store.read_all()
    # Everything else stays readable: the log is not down.
    assert [e.version for e in store.get_events(sid, 3)] == [3]
    assert [e.version for e in store.get_events(sid, to_version=1)] == [1]
    assert [e.position for e in store.read_all(bad)] == [bad + 1, last]
    assert store.get_events(other)[0].data == {"i": 9}
    delivered: list[int] = []
    with pytest.raises(evstore.SerializationError, match=message):
        for event in store.iter_all():
            delivered.append(event.position)
    assert delivered == [bad - 1]
    # A subscription stops at it with the error; resumed after it, it goes on.
    seen: list[int] = []
    sub = store.subscribe(lambda e: seen.append(e.position))
    with pytest.raises(evstore.SerializationError, match=message):
        sub.wait(60)
    assert seen == [bad - 1]
    with store.subscribe(lambda e: seen.append(e.position), from_position=bad) as sub:
        assert sub.wait_caught_up(60)
    assert seen == [bad - 1, bad + 1, last]
    # A projection parks it like a poison event and handles the rest.
    handled: list[int] = []
    projection = evstore.Projection(store, "p", lambda e, tx: handled.append(e.position))
    projection.catch_up(until=last)
    assert handled == [bad - 1, bad + 1, last]
    (letter,) = projection.dead_letters()
    assert letter.position == bad and "SerializationError" in letter.error
    assert projection.replay() == 0 and len(projection.dead_letters()) == 1


def test_a_corrupt_snapshot_is_an_error_of_that_snapshot_only(
    store_factory: StoreFactory, store: evstore.EventStore
) -> None:
    sid = f"s-{uuid.uuid4().hex[:8]}"
    store.append(sid, [NewEvent("T", {})])
    store.save_snapshot(Snapshot(sid, 1, {"n": 1}))
    _corrupt(store_factory, sid, 1, "snapshot")
    with pytest.raises(evstore.SerializationError, match=f"snapshot of '{sid}' at version 1"):
        store.get_snapshot(sid)
    assert len(store.get_events(sid)) == 1


def test_a_repository_replays_past_a_corrupt_snapshot(
    store_factory: StoreFactory, store: evstore.EventStore
) -> None:
    from tests.test_repository_state import REGISTRY, Holder, Tagged

    sid = f"h-{uuid.uuid4().hex[:8]}"
    repo = evstore.Repository(store, Holder, registry=REGISTRY, snapshot_every=1, cache=False)
    holder = Holder.create(sid)
    holder.trigger(Tagged("a"))
    repo.save(holder)
    assert store.get_snapshot(sid) is not None
    _corrupt(store_factory, sid, 1, "snapshot")
    assert repo.load(sid).tags == ("a",)
