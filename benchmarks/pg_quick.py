"""A quick look at the PostgreSQL backend against raw psycopg on the same server.

    .venv/bin/python -m benchmarks.pg_quick [--url postgresql://...] [--repeat 3]

Each figure is the median of ``--repeat`` runs, in events per second, each run in a fresh
schema. "raw" is what psycopg alone does for the same work on a plain table (bigserial
position, no version check, no gap safety): the floor the backend is measured against.
The full comparison lives in ``python -m benchmarks``; this stays small on purpose.
``--async-commit`` sets ``synchronous_commit=off`` on every connection (both sides) to
take the WAL flush wait out of single appends.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg
from psycopg.types.json import Jsonb

import evstore

SINGLES = 1000
BATCHES = 40
BATCH = 100
STREAM_LEN = 10_000
WRITERS = 4
PER_WRITER = 300
PAYLOAD = {"name": "Ada Lovelace", "email": "ada@example.com", "n": 1, "tags": ["a", "b"]}

RAW_TABLE = """
CREATE TABLE {s}.raw (
    position bigserial PRIMARY KEY, stream_id text NOT NULL, version bigint NOT NULL,
    type text NOT NULL, data jsonb NOT NULL, UNIQUE (stream_id, version))
"""


@contextmanager
def schema(url: str) -> Iterator[str]:
    name = f"bench_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {name}")
        admin.execute(RAW_TABLE.format(s=name))
        try:
            yield name
        finally:
            admin.execute(f"DROP SCHEMA {name} CASCADE")


def rate(n: int, seconds: float) -> float:
    return n / seconds


def timed(fn: Callable[[], int]) -> float:
    start = time.perf_counter()
    n = fn()
    return rate(n, time.perf_counter() - start)


def events(n: int) -> list[evstore.NewEvent]:
    return [evstore.NewEvent("Bench", {**PAYLOAD, "i": i}) for i in range(n)]


# -- evstore -------------------------------------------------------------------------------


def evstore_run(url: str, s: str, notify: bool) -> dict[str, float]:
    sep = "&" if "?" in url else "?"
    store_url = f"{url}{sep}schema={s}&notify={str(notify).lower()}"
    out: dict[str, float] = {}
    with evstore.connect(store_url, pool_max=WRITERS + 2) as store:

        def singles() -> int:
            for i in range(SINGLES):
                store.append("single-1", events(1), expected_version=i)
            return SINGLES

        def batches() -> int:
            for i in range(BATCHES):
                store.append("batch-1", events(BATCH), expected_version=i * BATCH)
            return BATCHES * BATCH

        out["single append (expected version)"] = timed(singles)
        out["100-event batches"] = timed(batches)
        for i in range(0, STREAM_LEN, 1000):
            store.append("long-1", events(1000), expected_version=i)
        out["stream read (10k events)"] = timed(lambda: len(store.get_events("long-1")))
        out["global log read"] = timed(lambda: len(store.read_all()))

        def writer(w: int) -> None:
            with evstore.connect(store_url) as own:
                for i in range(PER_WRITER):
                    own.append(f"w-{w}", events(1), expected_version=i)

        out[f"{WRITERS} concurrent writers"] = timed(lambda: parallel(writer))
    return out


def parallel(target: Callable[[int], None]) -> int:
    threads = [threading.Thread(target=target, args=(w,)) for w in range(WRITERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return WRITERS * PER_WRITER


# -- raw psycopg ---------------------------------------------------------------------------

INSERT = (
    "INSERT INTO {s}.raw (stream_id, version, type, data) VALUES (%s, %s, %s, %s) "
    "RETURNING position"
)


def raw_run(url: str, s: str) -> dict[str, float]:
    out: dict[str, float] = {}
    insert = INSERT.format(s=s)
    with psycopg.connect(url, autocommit=True) as conn:

        def singles() -> int:
            for i in range(SINGLES):
                conn.execute(insert, ("single-1", i + 1, "Bench", Jsonb({**PAYLOAD, "i": i})))
            return SINGLES

        def batches() -> int:
            for b in range(BATCHES):
                conn.execute(
                    f"INSERT INTO {s}.raw (stream_id, version, type, data) SELECT 'batch-1', "
                    "v, 'Bench', d FROM unnest(%s::bigint[], %s::jsonb[]) AS u(v, d)",
                    (
                        [b * BATCH + i + 1 for i in range(BATCH)],
                        [Jsonb({**PAYLOAD, "i": i}) for i in range(BATCH)],
                    ),
                )
            return BATCHES * BATCH

        out["single append (expected version)"] = timed(singles)
        out["100-event batches"] = timed(batches)
        conn.execute(
            f"INSERT INTO {s}.raw (stream_id, version, type, data) SELECT 'long-1', v, 'Bench', "
            "%s FROM generate_series(1, %s) v",
            (Jsonb(PAYLOAD), STREAM_LEN),
        )

        def read_stream() -> int:
            rows = conn.execute(
                f"SELECT * FROM {s}.raw WHERE stream_id = 'long-1' ORDER BY version"
            ).fetchall()
            return len(rows)

        def read_all() -> int:
            n, last = 0, 0
            while True:
                rows = conn.execute(
                    f"SELECT * FROM {s}.raw WHERE position > %s ORDER BY position LIMIT 1000",
                    (last,),
                ).fetchall()
                n += len(rows)
                if len(rows) < 1000:
                    return n
                last = rows[-1][0]

        out["stream read (10k events)"] = timed(read_stream)
        out["global log read"] = timed(read_all)

    def writer(w: int) -> None:
        with psycopg.connect(url, autocommit=True) as own:
            for i in range(PER_WRITER):
                own.execute(insert, (f"w-{w}", i + 1, "Bench", Jsonb({**PAYLOAD, "i": i})))

    out[f"{WRITERS} concurrent writers"] = timed(lambda: parallel(writer))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--url",
        default=os.environ.get("EVSTORE_POSTGRES_URL")
        or "postgresql://postgres@127.0.0.1:5432/postgres",
    )
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument(
        "--async-commit",
        action="store_true",
        help="synchronous_commit=off for every connection: measures the work per append "
        "without the WAL flush wait (which dominates, and is noisy, on a shared disk)",
    )
    args = parser.parse_args()
    if args.async_commit:
        sep = "&" if "?" in args.url else "?"
        args.url += f"{sep}options=-c%20synchronous_commit%3Doff"
    runs: dict[str, list[dict[str, float]]] = {"raw": [], "evstore": [], "evstore notify=off": []}
    for _ in range(args.repeat):
        with schema(args.url) as s:
            runs["raw"].append(raw_run(args.url, s))
        with schema(args.url) as s:
            runs["evstore"].append(evstore_run(args.url, s, notify=True))
        with schema(args.url) as s:
            runs["evstore notify=off"].append(evstore_run(args.url, s, notify=False))
    names = list(runs["raw"][0])
    print(
        f"{'events/s (median of ' + str(args.repeat) + ')':36}" + "".join(f"{k:>20}" for k in runs)
    )
    for name in names:
        medians = [statistics.median(r[name] for r in runs[k]) for k in runs]
        print(f"{name:36}" + "".join(f"{m:>20,.0f}" for m in medians))


if __name__ == "__main__":
    main()
