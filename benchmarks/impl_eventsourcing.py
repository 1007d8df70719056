"""eventsourcing 9.5.6: its ApplicationRecorder (W1-W5, W7) and Application/Aggregate (W6).

Configured only through its documented environment keys (``PERSISTENCE_MODULE``,
``SQLITE_DBNAME``, ``POSTGRES_*``, passed as ``env=``), everything else at its defaults.
Payloads are encoded and decoded with the ``JSONTranscoder`` its ``Application`` uses (the
same transcodings registered), so reads are compared with decoded payloads.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from eventsourcing.persistence import (
    ApplicationRecorder,
    DatetimeAsISO,
    DecimalAsStr,
    InfrastructureFactory,
    JSONTranscoder,
    StoredEvent,
    UUIDAsHex,
)

from benchmarks._common import (
    AGGREGATE_EVENTS,
    PG_HOST,
    PG_PORT,
    PG_USER,
    Database,
    NotApplicable,
    payload,
    payloads,
)

NAME = "eventsourcing"
TOPIC = "benchmarks.impl_eventsourcing:Deposited"
POPULATE_BATCH = 1000


def environment(db: Database) -> dict[str, str]:
    if db.backend == "sqlite":
        assert db.sqlite_path is not None
        return {"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": db.sqlite_path}
    assert db.pg_dbname is not None
    return {
        "PERSISTENCE_MODULE": "eventsourcing.postgres",
        "POSTGRES_DBNAME": db.pg_dbname,
        "POSTGRES_HOST": PG_HOST,
        "POSTGRES_PORT": str(PG_PORT),
        "POSTGRES_USER": PG_USER,
        "POSTGRES_PASSWORD": "",
    }


def transcoder() -> JSONTranscoder:
    """The transcoder ``Application`` builds by default."""
    t = JSONTranscoder()
    for transcoding in (UUIDAsHex(), DecimalAsStr(), DatetimeAsISO()):
        t.register(transcoding)
    return t


class Impl:
    """One eventsourcing ApplicationRecorder on a fresh database."""

    name = NAME

    def __init__(self, db: Database) -> None:
        if db.backend == "nats":
            raise NotApplicable("eventsourcing 9.5.6 has no NATS JetStream persistence module")
        self.db = db
        self.env = environment(db)
        self.factory = InfrastructureFactory.construct(self.env)
        self.recorder: ApplicationRecorder = self.factory.application_recorder()
        self.transcoder = transcoder()

    def close(self) -> None:
        self.factory.close()

    def settings(self) -> dict[str, str]:
        if self.db.backend == "sqlite":
            datastore: Any = self.factory.datastore  # type: ignore[attr-defined]
            with datastore.transaction(commit=False) as cursor:
                cursor.execute("PRAGMA journal_mode")
                mode = cursor.fetchone()[0]
                cursor.execute("PRAGMA synchronous")
                sync = {0: "OFF", 1: "NORMAL", 2: "FULL", 3: "EXTRA"}[cursor.fetchone()[0]]
            return {"journal_mode": mode.upper(), "synchronous": f"{sync} (SQLite's default)"}
        return {"synchronous_commit": "server default"}

    def _stored(self, ident: uuid.UUID, version: int, data: dict[str, Any]) -> StoredEvent:
        return StoredEvent(ident, version, TOPIC, self.transcoder.encode(data))

    # -- writes -----------------------------------------------------------------------------

    def append_new_streams(self, ids: Sequence[uuid.UUID], datas: Sequence[dict[str, Any]]) -> None:
        recorder, stored = self.recorder, self._stored
        for ident, data in zip(ids, datas, strict=True):
            recorder.insert_events([stored(ident, 1, data)])

    def append_batches(
        self, ident: uuid.UUID, batches: Sequence[Sequence[dict[str, Any]]], version: int = 0
    ) -> None:
        recorder, stored = self.recorder, self._stored
        for batch in batches:
            recorder.insert_events([stored(ident, version + i, d) for i, d in enumerate(batch, 1)])
            version += len(batch)

    def append_singly(
        self, ident: uuid.UUID, datas: Sequence[dict[str, Any]], version: int = 0
    ) -> None:
        recorder, stored = self.recorder, self._stored
        for v, data in enumerate(datas, version + 1):
            recorder.insert_events([stored(ident, v, data)])

    def populate(self, ident: uuid.UUID, n: int, start: int = 0) -> None:
        for low in range(0, n, POPULATE_BATCH):
            datas = payloads(min(POPULATE_BATCH, n - low), start + low)
            self.recorder.insert_events(
                [self._stored(ident, low + i, d) for i, d in enumerate(datas, 1)]
            )

    # -- reads ------------------------------------------------------------------------------

    def read_stream(self, ident: uuid.UUID) -> int:
        decode = self.transcoder.decode
        events = [(e, decode(e.state)) for e in self.recorder.select_events(ident)]
        return len(events)

    def head(self) -> int:
        """The newest notification id (W10 reads the log after it)."""
        return int(self.recorder.max_notification_id() or 0)

    def read_log(self, page: int, after: int = 0) -> int:
        recorder, decode = self.recorder, self.transcoder.decode
        start, count = after, 0
        while True:
            notes = recorder.select_notifications(start, page, inclusive_of_start=False)
            count += len([(n, decode(n.state)) for n in notes])
            if len(notes) < page:
                return count
            start = notes[-1].id

    # -- subscriptions (W7) -----------------------------------------------------------------

    def append_one(self, ident: uuid.UUID, seq: int) -> None:
        self.recorder.insert_events([self._stored(ident, seq + 1, payload(seq))])

    def start_subscriber(self, on_event: Callable[[int], None]) -> Callable[[], None]:
        if self.db.backend == "sqlite":
            raise NotApplicable(
                "eventsourcing 9.5.6's SQLiteApplicationRecorder.subscribe() raises "
                "NotImplementedError"
            )
        recorder, decode = self.recorder, self.transcoder.decode
        subscription = recorder.subscribe(gt=recorder.max_notification_id())
        subscription.__enter__()

        def run() -> None:
            for notification in subscription:
                on_event(decode(notification.state)["sequence"])

        thread = threading.Thread(target=run, daemon=True)
        thread.start()

        def stop() -> None:
            subscription.stop()
            subscription.__exit__(None, None, None)
            thread.join(10)

        return stop

    def _max_connections(self) -> int:
        with self.recorder.datastore.get_connection() as conn, conn.cursor() as curs:
            curs.execute("SHOW max_connections")
            row = curs.fetchone()
        assert row is not None
        value = row["max_connections"] if isinstance(row, dict) else row[0]
        return int(value)

    def start_subscribers(
        self, count: int, on_event: Callable[[int, int], None]
    ) -> Callable[[], None]:
        """W11: ``count`` recorder subscriptions (LISTEN/NOTIFY, one connection and thread
        each; eventsourcing keeps no checkpoint for them)."""
        if self.db.backend == "postgresql":
            limit = self._max_connections()
            if count + 2 > limit:
                raise NotApplicable(
                    f"eventsourcing 9.5.6 holds one pooled connection per subscription: "
                    f"{count} subscriptions need more than the server's max_connections="
                    f"{limit}"
                )
        stops = [
            self.start_subscriber(lambda seq, index=index: on_event(index, seq))
            for index in range(count)
        ]

        def stop() -> None:
            for each in stops:
                each()

        return stop

    # -- the domain layer (W6) --------------------------------------------------------------

    def w6(self, n_aggregates: int, n_loads: int, n_cached_loads: int) -> dict[str, float]:
        return run_w6(self.env, n_aggregates, n_loads, n_cached_loads)


class Account(Aggregate):
    """The W6 aggregate: every event carries the common 5-field payload."""

    def __init__(self) -> None:
        self.balance = 0.0
        self.deposits = 0

    @event("Deposited")
    def deposit(
        self, account_id: str, amount: float, currency: str, description: str, sequence: int
    ) -> None:
        self.balance += amount
        self.deposits += 1


class Accounts(Application):  # type: ignore[type-arg]
    pass


def run_w6(env: dict[str, str], n_aggregates: int, n_loads: int, n_cached: int) -> dict[str, float]:
    """saves/s and loads/s (plain, from a snapshot at 100, from the cache).

    Three applications on one database, each at its defaults but for the one setting the
    figure is about: plain (no snapshots, no cache), ``IS_SNAPSHOTTING_ENABLED=y`` (a
    snapshot taken at version 100 with ``take_snapshot``), ``AGGREGATE_CACHE_MAXSIZE``.
    """
    accounts = []
    for k in range(n_aggregates):
        account = Account()  # the "created" event is event 1
        for i in range(AGGREGATE_EVENTS - 1):
            account.deposit(**payload(k * AGGREGATE_EVENTS + i))  # type: ignore[arg-type]
        accounts.append(account)
    ids = [a.id for a in accounts]
    app = Accounts(env=env)
    try:
        t = time.perf_counter()
        for account in accounts:
            app.save(account)
        saves = n_aggregates / (time.perf_counter() - t)
        loads = _loads(app, ids, n_loads)
    finally:
        app.close()
    app = Accounts(env={**env, "IS_SNAPSHOTTING_ENABLED": "y"})
    try:
        for ident in ids:
            app.take_snapshot(ident)
        snapshot_loads = _loads(app, ids, n_loads)
    finally:
        app.close()
    app = Accounts(env={**env, "AGGREGATE_CACHE_MAXSIZE": str(n_aggregates)})
    try:
        for ident in ids:
            app.repository.get(ident)  # warm the cache
        cached_loads = _loads(app, ids, n_cached)
    finally:
        app.close()
    return {
        "saves/s": saves,
        "loads/s": loads,
        "loads/s (snapshot)": snapshot_loads,
        "loads/s (cache)": cached_loads,
    }


def _loads(app: Application, ids: list[uuid.UUID], n: int) -> float:  # type: ignore[type-arg]
    get = app.repository.get
    t = time.perf_counter()
    for i in range(n):
        account = get(ids[i % len(ids)])
        assert account.version == AGGREGATE_EVENTS
    return n / (time.perf_counter() - t)
