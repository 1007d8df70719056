"""The raw drivers: plain ``sqlite3`` and ``psycopg`` on evstore's table shape.

The fastest honest form of each operation: W1 is one autocommitted INSERT per event (the
unique index on ``(stream_id, version)`` is the "new stream" check), W2 one transaction per
batch with ``executemany`` (SQLite) or ``COPY`` (PostgreSQL), reads are one SELECT per
stream or page, payloads are encoded and decoded with orjson. SQLite runs with the same
durability as evstore (WAL, ``synchronous=FULL``); PostgreSQL with the server's defaults.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
import zlib
from collections.abc import Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import psycopg
from psycopg.adapt import Buffer, Loader

from benchmarks._common import EVENT_TYPE, Database, NotApplicable, payloads, stream_name

NAME = "raw"
POPULATE_BATCH = 1000
EMPTY = b"{}"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)

SQLITE_INSERT = (
    "INSERT INTO events (stream_id, version, event_id, type, data, metadata, schema_version, "
    "occurred_at, recorded_at, category, partition_key, partition_hash) "
    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
COLUMNS = (
    "stream_id, version, position, event_id, type, data, metadata, schema_version, "
    "occurred_at, recorded_at"
)

# evstore's PostgreSQL table and indexes (evstore.backends.postgresql), except the position:
# a plain identity column here, which is fast but not gap-safe under concurrent writers.
PG_SCHEMA = """
CREATE TABLE events (
    position       bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    stream_id      text        COLLATE "C" NOT NULL,
    version        bigint      NOT NULL,
    event_id       uuid        NOT NULL,
    type           text        COLLATE "C" NOT NULL,
    data           json        NOT NULL,
    metadata       json        NOT NULL,
    schema_version integer     NOT NULL,
    occurred_at    timestamptz NOT NULL,
    recorded_at    timestamptz NOT NULL DEFAULT now(),
    category       text        COLLATE "C" NOT NULL,
    partition_key  text        COLLATE "C" NOT NULL,
    partition_hash bigint      NOT NULL
);
CREATE UNIQUE INDEX events_stream_version ON events (stream_id, version);
CREATE UNIQUE INDEX events_event_id ON events (event_id);
CREATE INDEX events_type_occurred ON events (type, occurred_at);
CREATE INDEX events_category ON events (category, position);
"""
PG_INSERT = (
    "INSERT INTO events (stream_id, version, event_id, type, data, metadata, schema_version, "
    "occurred_at, category, partition_key, partition_hash) "
    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
)
PG_COPY = (
    "COPY events (stream_id, version, event_id, type, data, metadata, schema_version, "
    "occurred_at, category, partition_key, partition_hash) FROM STDIN"
)


def _hash(stream: str) -> int:
    return zlib.crc32(stream.encode())


class _JsonBytes(Loader):
    """Hand ``json`` columns over as bytes, for orjson (psycopg would use ``json.loads``)."""

    def load(self, data: Buffer) -> bytes:
        return bytes(data)


def _decode(row: Sequence[Any]) -> tuple[Any, ...]:
    return (*row[:5], orjson.loads(row[5]), orjson.loads(row[6]), *row[7:])


class _Shared:
    """What both drivers do with the same SQL but for the placeholder and the INSERT."""

    conn: Any
    P = "?"
    INSERT = SQLITE_INSERT

    def _row(self, stream: str, version: int, data: dict[str, Any]) -> tuple[Any, ...]:
        raise NotImplementedError

    def append_singly(
        self, ident: uuid.UUID, datas: Sequence[dict[str, Any]], version: int = 0
    ) -> None:
        execute, row, stream = self.conn.execute, self._row, stream_name(ident)
        for v, data in enumerate(datas, version + 1):
            execute(self.INSERT, row(stream, v, data))

    def read_stream(self, ident: uuid.UUID) -> int:
        rows = self.conn.execute(
            f"SELECT {COLUMNS} FROM events WHERE stream_id = {self.P} ORDER BY version",
            (stream_name(ident),),
        ).fetchall()
        return len([_decode(r) for r in rows])

    def head(self) -> int:
        """The newest position (W10 reads the log after it)."""
        row = self.conn.execute("SELECT coalesce(max(position), 0) FROM events").fetchone()
        assert row is not None
        return int(row[0])

    def read_log(self, page: int, after: int = 0) -> int:
        execute, position, count = self.conn.execute, after, 0
        p = self.P
        sql = f"SELECT {COLUMNS} FROM events WHERE position > {p} ORDER BY position LIMIT {p}"
        while True:
            rows = execute(sql, (position, page)).fetchall()
            count += len([_decode(r) for r in rows])
            if len(rows) < page:
                return count
            position = rows[-1][2]


class SQLiteImpl(_Shared):
    """sqlite3 in autocommit mode (``isolation_level=None``), WAL, ``synchronous=FULL``."""

    name = NAME

    def __init__(self, db: Database) -> None:
        from evstore.backends.sqlite import _SCHEMA  # the very same table shape

        assert db.sqlite_path is not None
        self.path = db.sqlite_path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        conn = self.conn
        conn.executescript(_SCHEMA)

    @property
    def conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            self._all.append(conn)
        return conn

    def close(self) -> None:
        for conn in self._all:
            conn.close()

    def settings(self) -> dict[str, str]:
        return {"journal_mode": "WAL", "synchronous": "FULL (set, as evstore does)"}

    def _row(self, stream: str, version: int, data: dict[str, Any]) -> tuple[Any, ...]:
        now = (datetime.now(UTC) - _EPOCH) // _US
        return (
            stream,
            version,
            uuid.uuid4().bytes,  # evstore's SQLite table keeps the id's 16 bytes
            EVENT_TYPE,
            orjson.dumps(data),
            EMPTY,
            1,
            now,
            now,
            "acct",
            stream,
            _hash(stream),
        )

    def append_new_streams(self, ids: Sequence[uuid.UUID], datas: Sequence[dict[str, Any]]) -> None:
        execute, row = self.conn.execute, self._row
        for ident, data in zip(ids, datas, strict=True):
            execute(SQLITE_INSERT, row(stream_name(ident), 1, data))

    def append_batches(
        self, ident: uuid.UUID, batches: Sequence[Sequence[dict[str, Any]]], version: int = 0
    ) -> None:
        conn, row, stream = self.conn, self._row, stream_name(ident)
        for batch in batches:
            conn.execute("BEGIN")
            conn.executemany(
                SQLITE_INSERT, [row(stream, version + i, d) for i, d in enumerate(batch, 1)]
            )
            conn.execute("COMMIT")
            version += len(batch)

    def populate(self, ident: uuid.UUID, n: int, start: int = 0) -> None:
        stream = stream_name(ident)
        for low in range(0, n, POPULATE_BATCH):
            datas = payloads(min(POPULATE_BATCH, n - low), start + low)
            self.append_batches_at(stream, low, datas)

    def append_batches_at(self, stream: str, version: int, datas: list[dict[str, Any]]) -> None:
        conn = self.conn
        conn.execute("BEGIN")
        conn.executemany(
            SQLITE_INSERT, [self._row(stream, version + i, d) for i, d in enumerate(datas, 1)]
        )
        conn.execute("COMMIT")

    def append_one(self, ident: uuid.UUID, seq: int) -> None:
        raise NotApplicable("no subscription mechanism in a raw driver")

    def start_subscriber(self, on_event: Callable[[int], None]) -> Callable[[], None]:
        raise NotApplicable("no subscription mechanism in a raw driver")

    def w6(self, n_aggregates: int, n_loads: int, n_cached_loads: int) -> dict[str, float]:
        raise NotApplicable("no domain layer in a raw driver")


class PostgresImpl(_Shared):
    """psycopg 3, autocommit connections (one per thread), the server's default durability."""

    P = "%s"
    INSERT = PG_INSERT

    name = NAME

    def __init__(self, db: Database) -> None:
        self._psycopg = psycopg
        self.conninfo = db.pg_conninfo
        self._local = threading.local()
        self._all: list[Any] = []
        with self.conn.transaction():
            self.conn.execute(PG_SCHEMA)

    @property
    def conn(self) -> Any:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._psycopg.connect(self.conninfo, autocommit=True)
            conn.adapters.register_loader("json", _JsonBytes)  # orjson decodes, not json
            self._local.conn = conn
            self._all.append(conn)
        return conn

    def close(self) -> None:
        for conn in self._all:
            conn.close()

    def settings(self) -> dict[str, str]:
        return {"synchronous_commit": "server default"}

    @staticmethod
    def _row(stream: str, version: int, data: dict[str, Any]) -> tuple[Any, ...]:
        return (
            stream,
            version,
            uuid.uuid4(),
            EVENT_TYPE,
            orjson.dumps(data).decode(),
            "{}",
            1,
            datetime.now(UTC),
            "acct",
            stream,
            _hash(stream),
        )

    def append_new_streams(self, ids: Sequence[uuid.UUID], datas: Sequence[dict[str, Any]]) -> None:
        execute, row = self.conn.execute, self._row
        for ident, data in zip(ids, datas, strict=True):
            execute(PG_INSERT, row(stream_name(ident), 1, data))

    def _copy(self, stream: str, version: int, datas: Sequence[dict[str, Any]]) -> None:
        conn = self.conn
        with conn.transaction(), conn.cursor() as cur, cur.copy(PG_COPY) as copy:
            for i, d in enumerate(datas, 1):
                copy.write_row(self._row(stream, version + i, d))

    def append_batches(
        self, ident: uuid.UUID, batches: Sequence[Sequence[dict[str, Any]]], version: int = 0
    ) -> None:
        stream = stream_name(ident)
        for batch in batches:
            self._copy(stream, version, batch)
            version += len(batch)

    def populate(self, ident: uuid.UUID, n: int, start: int = 0) -> None:
        stream = stream_name(ident)
        for low in range(0, n, POPULATE_BATCH):
            self._copy(stream, low, payloads(min(POPULATE_BATCH, n - low), start + low))

    append_one = SQLiteImpl.append_one
    start_subscriber = SQLiteImpl.start_subscriber
    w6 = SQLiteImpl.w6


def Impl(db: Database) -> Any:
    if db.backend == "nats":
        from benchmarks.impl_raw_nats import NatsImpl

        return NatsImpl(db)
    return SQLiteImpl(db) if db.backend == "sqlite" else PostgresImpl(db)
