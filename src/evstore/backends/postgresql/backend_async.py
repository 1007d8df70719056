"""PostgreSQL storage (psycopg 3); the sync twin ``backend.py`` is generated from this file.

Gap safety without a table lock
-------------------------------
Concurrent transactions commit out of the order in which they drew numbers from a
sequence, so a reader of ``position > last`` can pass a position whose event commits a
moment later and skip it for good. We do not serialize writers (eventsourcing's ``LOCK
TABLE ... EXCLUSIVE``) and we do not keep a high-water mark that can stall (Marten).
Instead every event's position is derived from the id of the transaction that wrote it::

    position = pg_current_xact_id() << 20 | ordinal-in-the-append (1 .. 2**20 - 1)

and a reader of the global log only reads rows below a *horizon* below which the set of
rows is final. Two horizons are used, both safe:

1. The cheap one, in the same statement as the read::

       horizon = pg_snapshot_xmin(pg_current_snapshot()) << 20

   ``xmin`` is the oldest transaction id still running when the statement's snapshot was
   taken; every transaction below it has ended, so nothing can commit below it later.
2. When committed events wait above that horizon (some transaction in the *cluster* holds
   an older id - any database, any work), a precise one, then the read in a *later*
   statement: the oldest id held by an append of this schema still in flight, capped by
   the snapshot's ``xmax``. Every append takes a shared advisory lock (``_sql.LOCK_CLASS``,
   hash of the schema) before it gets its transaction id and releases it only after its
   commit is visible, so an append that is not in ``pg_locks`` with an older id has ended
   and the next snapshot sees all of its events. Unrelated transactions (reports, other
   databases, DDL) therefore do not hold readers back; only appends in flight do.

A new event always belongs to a transaction above every position a reader has been given.
Writers to different streams proceed in parallel. An empty page reports ``scanned_to`` =
the last event below the horizon, so filtered subscribers advance.

The costs:

- An append in flight holds back readers of events committed after it until it ends (a
  stuck append statement, e.g. one waiting for a lock); nothing is lost.
  :meth:`AsyncPostgresBackend.gap_status` and ``stats()`` report the events waiting and
  the blocking append's pid and transaction age, and ``read_all`` logs a warning when the
  log has been held back longer than ``stall_warning`` seconds - readers never stall
  silently. The precise horizon costs two more round trips and a look at ``pg_locks``,
  paid only while the cheap horizon is held back.
- An append must be the first write of its transaction, or a stream's events could be
  delivered out of version order. Every append here is one autocommit statement whose
  snapshot is taken before its transaction id is assigned, so a later version always gets
  a higher transaction id.
- Positions are sparse (about 2**20 apart per transaction); the global order is exact.
- A hard delete takes the appenders' lock exclusively: it waits for appends in flight and
  holds new ones at their gate (``append_gate``) until its tombstone commits, so a racing
  append can leave no event behind it.
- After a dump/restore into a new cluster, transaction ids restart; opening the store
  refuses to work until the next id is above the highest stored one (``pg_resetwal -x``).

Appends cost one statement: a data-modifying CTE checks the expected version (over
``max(version)`` of the stream and its delete marker) and inserts the batch from ``unnest``
arrays - no BEGIN/COMMIT ping-pong, no per-row round trip. Two writers racing on one
version both pass the check in their snapshots; the unique index ``(stream_id, version)``
lets exactly one commit, and the loser's violation becomes ``ConcurrencyError`` (or a
retry, for ``ANY``).

Live delivery: every append sends a ``pg_notify`` in the same round trip, in a transaction
of its own after the append's (see ``_then_notify``), which wakes listeners. It is a hint
only: waiters always re-read the
table, fall back to polling at the subscription's interval when the LISTEN connection is
down, and the listener reconnects on its own. Connection failures are retried with backoff
for ``retry_timeout`` seconds (reads, idempotent appends, checkpoints); after that the
caller gets ``BackendUnavailable``.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from datetime import UTC, datetime
from typing import Any

import psycopg
import psycopg.errors
from psycopg import AsyncConnection, sql
from psycopg.adapt import Buffer, Loader
from psycopg.rows import TupleRow
from psycopg.types.datetime import TimestamptzBinaryLoader, TimestamptzLoader
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from evstore import _aio
from evstore._types import ANY, NO_STREAM, STREAM_EXISTS, AppendResult, ExpectedVersion
from evstore.backends.postgresql._sql import (
    LOCK_CLASS,
    MAX_BATCH,
    MIGRATIONS,
    ORDINAL_BITS,
    PARTITIONED_INDEXES,
    PLAIN_INDEXES,
    SCHEMA_VERSION,
    TABLES,
    XMIN,
    statements,
)
from evstore.errors import (
    AppendConditionFailed,
    BackendUnavailable,
    ConcurrencyError,
    InvalidInput,
    StreamDeleted,
    StreamNotFound,
)
from evstore.spi._errormap import ErrorMap
from evstore.spi._model import (
    UNREADABLE,
    DeadLetter,
    EventRecord,
    LogFilter,
    LogPage,
    PendingAppend,
    PendingEvent,
    Placement,
    SnapshotRecord,
    StreamSummary,
    TagQuery,
    check_expected,
    replayed_result,
    replayed_results,
    stable_hash,
)
from evstore.spi.backend_async import (
    AsyncCheckpointedAppends,
    AsyncDeadLetterStore,
    AsyncEventLog,
    AsyncOperations,
    AsyncSnapshotStore,
    AsyncTransactionalCheckpoints,
    AsyncTruncatableLog,
)

log = logging.getLogger("evstore.postgresql")

SCHEMA_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,47}$")


class _JsonBytes(Loader):
    """Return ``json`` columns as the stored bytes: the facade decodes them, once."""

    def load(self, data: Buffer) -> bytes:
        return bytes(data)


class _JsonBytesBinary(_JsonBytes):
    """The same for results in binary format (json's binary form is its text)."""

    format = psycopg.pq.Format.BINARY


class _TolerantTimestamptz(TimestamptzLoader):
    """A ``timestamptz`` outside Python's years 1-9999 loads as :data:`UNREADABLE`."""

    def load(self, data: Buffer) -> datetime:
        try:
            return super().load(data)
        except psycopg.DataError:
            return UNREADABLE


class _TolerantTimestamptzBinary(TimestamptzBinaryLoader):
    """The same for results in binary format."""

    def load(self, data: Buffer) -> datetime:
        try:
            return super().load(data)
        except psycopg.DataError:
            return UNREADABLE


_tuple_new = tuple.__new__


def _record(row: Sequence[Any]) -> EventRecord:
    # tuple.__new__ skips the NamedTuple's Python-level __new__ (same object).
    return _tuple_new(EventRecord, row)


# A notification is a hint (waiters re-read the table), so its transaction - NOTIFY needs
# a transaction id, hence a commit record - does not wait for the WAL flush.
_NOTIFY = "SELECT set_config('synchronous_commit', 'off', true), pg_notify(%s, '')"


def append_params(
    stream_id: str, events: Sequence[PendingEvent], expected: ExpectedVersion, placement: Placement
) -> dict[str, Any]:
    """The parameters of the append statement (``statements()["append"]`` in ``_sql``)."""
    mode, n = _mode(expected)
    return {
        "sid": stream_id,
        "mode": mode,
        "n": n,
        "ids": [e.event_id for e in events],
        "types": [e.type for e in events],
        "data": [e.data.decode() for e in events],
        "meta": [e.metadata.decode() for e in events],
        "svs": [e.schema_version for e in events],
        "ats": [e.occurred_at for e in events],
        "recs": [e.recorded_at for e in events],
        "cat": placement.category,
        "pkey": placement.partition_key,
        "phash": placement.partition_hash,
    }


_REORDER_RETRIES = 20


class _Reordered(Exception):
    """An emitted event would sit below an earlier version of its stream: run again."""


def append_many_params(appends: Sequence[PendingAppend]) -> dict[str, Any]:
    """The parameters of the multi-stream append (``statements()["append_many"]``)."""
    modes = [_mode(a.expected) for a in appends]
    events = [(i, k, e) for i, a in enumerate(appends, 1) for k, e in enumerate(a.events, 1)]
    return {
        "sids": [a.stream_id for a in appends],
        "modes": [mode for mode, _ in modes],
        "ns": [n for _, n in modes],
        "cats": [a.placement.category for a in appends],
        "pkeys": [a.placement.partition_key for a in appends],
        "phashes": [a.placement.partition_hash for a in appends],
        "part": [i for i, _, _ in events],
        "k": [k for _, k, _ in events],
        "ids": [e.event_id for _, _, e in events],
        "types": [e.type for _, _, e in events],
        "data": [e.data.decode() for _, _, e in events],
        "meta": [e.metadata.decode() for _, _, e in events],
        "svs": [e.schema_version for _, _, e in events],
        "ats": [e.occurred_at for _, _, e in events],
        "recs": [e.recorded_at for _, _, e in events],
    }


def _tag_filter(query: TagQuery, params: dict[str, Any]) -> str:
    """SQL narrowing the log to events matching ``query`` (through the events_tags index)."""
    if not query.items:
        return ""
    clauses = []
    for i, (types, tags) in enumerate(query.items):
        parts = []
        if tags:
            parts.append(
                "(metadata::jsonb) ? 'evstore:tags' AND "
                f"((metadata::jsonb) -> 'evstore:tags') @> %(dcb_tags{i})s::jsonb"
            )
            params[f"dcb_tags{i}"] = json.dumps(list(tags))
        if types:
            parts.append(f"type = ANY(%(dcb_types{i})s::text[])")
            params[f"dcb_types{i}"] = list(types)
        clauses.append("(" + (" AND ".join(parts) or "true") + ")")
    return "AND (" + " OR ".join(clauses) + ")"


def _mode(expected: ExpectedVersion) -> tuple[int, int]:
    """The expected version as (mode, n) for the append statement (see ``_APPEND``)."""
    if expected is ANY:
        return 0, 0
    if expected is NO_STREAM or expected == 0:
        return 1, 0
    if expected is STREAM_EXISTS:
        return 2, 0
    assert isinstance(expected, int)
    return 3, expected


def _is_load_error(e: psycopg.DataError) -> bool:
    """Whether the driver, not the server, failed: loading a value of a fetched row."""
    return e.sqlstate is None


def _is_disconnect(e: BaseException) -> bool:
    """Whether ``e`` means the connection or server went away (worth a retry)."""
    if isinstance(e, PoolTimeout | psycopg.InterfaceError):
        return True
    if isinstance(e, psycopg.OperationalError):
        state = e.sqlstate
        return state is None or state.startswith("08") or state in ("57P01", "57P02", "57P03")
    return False


# Server answers that waiting does not change (as opposed to "starting up", "too many clients").
_TRANSIENT = ("starting up", "shutting down", "recovery", "too many", "connection slots")


def _permanent(e: psycopg.OperationalError) -> bool:
    """Whether a connection error is the server refusing us for good (FATAL, not busy)."""
    text = str(e)
    return "FATAL:" in text and not any(word in text for word in _TRANSIENT)


def _one_line(e: BaseException) -> str:
    """A driver error as one line: the server's reason, without libpq's preamble."""
    text = str(e).strip()
    if "FATAL:" in text:
        text = text.rsplit("FATAL:", 1)[1]
    return " ".join(text.split())


class AsyncPostgresBackend(
    AsyncEventLog,
    AsyncSnapshotStore,
    AsyncTransactionalCheckpoints,
    AsyncDeadLetterStore,
    AsyncOperations,
    AsyncTruncatableLog,
    AsyncCheckpointedAppends,
):
    """Events in PostgreSQL tables of one schema, shared by any number of processes."""

    def __init__(
        self,
        conninfo: str,
        *,
        schema: str = "evstore",
        pool_min: int = 1,
        pool_max: int = 10,
        pool_timeout: float = 10.0,
        retry_timeout: float = 10.0,
        notify: bool = True,
        table_partitions: int | None = None,
        create_schema: bool = True,
        stall_warning: float = 10.0,
    ) -> None:
        if not SCHEMA_NAME.match(schema):
            raise InvalidInput(
                f"schema {schema!r} must be a lower-case SQL name: letters, digits and _, "
                "at most 48 characters, not starting with a digit"
            )
        if pool_min < 0 or pool_max < max(1, pool_min):
            raise InvalidInput(
                f"need 0 <= pool_min <= pool_max and pool_max >= 1; got {pool_min}, {pool_max}"
            )
        if table_partitions is not None and not 0 <= table_partitions <= 1024:
            raise InvalidInput(
                f"table_partitions must be between 0 and 1024, got {table_partitions}"
            )
        self._conninfo = conninfo
        self._name = schema
        # Quoted in every statement: a valid name may be a reserved word ("user").
        self._schema = f'"{schema}"'
        self._errors = self._error_map()
        self._pool_timeout = pool_timeout
        self._retry_timeout = retry_timeout
        self._notify = notify
        self._partitions = table_partitions
        self._create_schema = create_schema
        self._stall_warning = stall_warning
        self._channel = f"evstore_{schema}"
        self._lock_key = stable_hash(schema) & 0x7FFFFFFF
        self._pool: AsyncConnectionPool[AsyncConnection[TupleRow]] = AsyncConnectionPool(
            conninfo,
            min_size=pool_min,
            max_size=pool_max,
            open=False,
            kwargs={"autocommit": True},
            configure=self._configure,
            timeout=pool_timeout,
            name=f"evstore-{schema}",
        )
        self._ready = False
        self._closed = False
        self._partitioned = False
        self._sql: dict[str, str] = {}
        self._wakeup = _aio.Event()
        self._listener: _aio.Runner | None = None
        self._listening = False
        self._stalled_since: float | None = None
        self._warned_at = 0.0

    # -- connections and errors ------------------------------------------------------------

    @staticmethod
    async def _configure(conn: AsyncConnection[TupleRow]) -> None:
        conn.adapters.register_loader("json", _JsonBytes)
        conn.adapters.register_loader("json", _JsonBytesBinary)
        await conn.execute("SET TIME ZONE 'UTC'")

    def _where(self) -> str:
        return f"PostgreSQL schema {self._name!r}"

    def _unavailable(self, e: BaseException) -> BackendUnavailable:
        return BackendUnavailable(f"{self._where()}: {type(e).__name__}: {e}".rstrip())

    def _error_map(self) -> ErrorMap:
        """psycopg's errors as evstore errors: the one translation table of this backend.

        Integrity errors are not in it: the statements that can violate a constraint
        catch them where they decide what the violation means (a concurrent append, a
        repeated event id). A connection lost mid-statement is retried in ``_query``
        before it comes here.
        """
        return ErrorMap({psycopg.Error: self._unavailable, PoolTimeout: self._unavailable})

    async def open(self) -> None:
        """Connect the pool and create or check the schema; later calls do nothing.

        Safe to call concurrently: opening the pool is idempotent and the schema is
        prepared under an advisory lock.
        """
        if self._ready:
            return
        if self._closed:
            raise BackendUnavailable("the store is closed")
        await self._probe()
        await self._pool.open(wait=False)
        try:
            async with self._pool.connection(timeout=self._pool_timeout) as conn:
                await self._prepare_schema(conn, create=self._create_schema)
        except PoolTimeout as e:
            reason = await self._connect_error() or str(e)
            raise BackendUnavailable(
                f"cannot connect to PostgreSQL within {self._pool_timeout}s ({reason}); is "
                "the server running and the URL right?"
            ) from e
        except psycopg.Error as e:
            raise self._errors.translate(e) from e
        self._ready = True

    async def _probe(self) -> None:
        """Fail at once, in one line, on what waiting cannot fix: no such database or role,
        a refused password, a bad URL parameter. (The pool would retry them for
        ``pool_timeout`` seconds, logging a warning each time.) A server that is not
        answering yet is left to the pool's retries."""
        try:
            conn = await AsyncConnection.connect(
                self._conninfo, connect_timeout=max(2, round(self._pool_timeout))
            )
        except psycopg.ProgrammingError as e:
            raise InvalidInput(f"bad PostgreSQL URL: {_one_line(e)}") from None
        except psycopg.OperationalError as e:
            if _permanent(e):
                raise InvalidInput(f"cannot connect to PostgreSQL: {_one_line(e)}") from None
            return
        await conn.close()

    async def _connect_error(self) -> str | None:
        """Why a direct connection fails (the pool only says that it timed out)."""
        try:
            conn = await AsyncConnection.connect(self._conninfo, connect_timeout=5)
        except psycopg.Error as e:
            return str(e).strip()
        await conn.close()
        return None

    async def _query(
        self,
        query: str,
        params: Sequence[Any] | Mapping[str, Any],
        *,
        retry: bool = True,
        binary: bool = False,
        notify: str | None = None,
    ) -> list[TupleRow]:
        """Run one statement in autocommit and fetch its rows.

        A lost connection (server restart, failover) is retried with backoff for
        ``retry_timeout`` seconds; every caller's statement is safe to repeat. Integrity
        errors are left to the caller; other driver errors become ``BackendUnavailable``.
        """
        if not self._ready:
            await self.open()
        deadline = time.monotonic() + self._retry_timeout
        delay = 0.05
        while True:
            try:
                async with self._pool.connection() as conn:
                    if notify is not None:
                        return await self._then_notify(conn, query, params, notify)
                    try:
                        cur = await conn.execute(query, params, binary=binary)
                        return await cur.fetchall() if cur.description is not None else []
                    except psycopg.DataError as e:
                        if not _is_load_error(e):
                            raise
                    # A stored value the driver cannot load (a timestamp out of Python's
                    # range) fails only its own event: read again, marking it unreadable.
                    cur = conn.cursor(binary=binary)
                    cur.adapters.register_loader("timestamptz", _TolerantTimestamptz)
                    cur.adapters.register_loader("timestamptz", _TolerantTimestamptzBinary)
                    await cur.execute(query, params)
                    return await cur.fetchall() if cur.description is not None else []
            except psycopg.IntegrityError:
                raise
            except (psycopg.Error, PoolTimeout) as e:
                if self._closed:
                    raise BackendUnavailable("the store is closed") from e
                if not (retry and _is_disconnect(e)) or time.monotonic() + delay > deadline:
                    raise self._errors.translate(e) from e
                log.info("%s: connection lost (%s); retrying in %.2fs", self._where(), e, delay)
                await self._pool.check()
                await _aio.sleep(delay)
                delay = min(delay * 2, 1.0)

    @staticmethod
    async def _then_notify(
        conn: AsyncConnection[TupleRow],
        query: str,
        params: Sequence[Any] | Mapping[str, Any],
        channel: str,
    ) -> list[TupleRow]:
        """``query``, then - in its own transaction - a NOTIFY, in one round trip.

        Pipeline mode sends both statements before reading either result. A Sync between
        them ends the append's implicit transaction before the NOTIFY starts, so the
        append commits (and flushes) without the cluster-wide lock that NOTIFY holds
        through its commit; that commit is asynchronous (see ``_NOTIFY``), so the append's
        caller waits for one flush, its own.
        """
        async with conn.pipeline() as pipeline:
            cur = await conn.execute(query, params)
            pipeline._enqueue_sync()  # Sync without waiting for results (no public API)
            await conn.execute(_NOTIFY, (channel,))
        return await cur.fetchall()

    # -- schema ----------------------------------------------------------------------------

    async def _statement(self, name: str) -> str:
        if not self._ready:
            await self.open()
        return self._sql[name]

    async def _prepare_schema(self, conn: AsyncConnection[TupleRow], *, create: bool) -> int:
        """Bring the schema to ``SCHEMA_VERSION``; return the version found before."""
        meta = f"{self._schema}.evstore_schema"
        cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (meta,))
        row = await cur.fetchone()
        found = 0
        if row is not None and row[0]:
            cur = await conn.execute(f"SELECT version, partitions FROM {meta}")
            row = await cur.fetchone()
            found = 0 if row is None else int(row[0])
        if found != SCHEMA_VERSION:
            if found > SCHEMA_VERSION:
                raise BackendUnavailable(
                    f"{self._where()} has evstore schema version {found}, newer than this "
                    f"evstore ({SCHEMA_VERSION}); upgrade evstore"
                )
            if not create and found == 0:
                raise InvalidInput(
                    f"no evstore database in {self._where()}; `evstore migrate --url ...` "
                    "creates one"
                )
            if not create:
                raise BackendUnavailable(
                    f"{self._where()} is at evstore schema version {found}, this evstore "
                    f"needs {SCHEMA_VERSION}; run `evstore migrate --url ...` first"
                )
            found = await self._migrate(conn)
        cur = await conn.execute(f"SELECT version, partitions FROM {meta}")
        row = await cur.fetchone()
        assert row is not None
        stored_partitions = int(row[1])
        if self._partitions is not None and self._partitions != stored_partitions:
            raise InvalidInput(
                f"{self._where()} was created with table_partitions={stored_partitions}; the "
                f"option asks for {self._partitions} (the events table's partitioning is "
                "chosen when the schema is created)"
            )
        self._partitioned = stored_partitions > 0
        self._sql = statements(self._schema, self._partitioned)
        await self._check_xid_horizon(conn)
        return found

    async def _migrate(self, conn: AsyncConnection[TupleRow]) -> int:
        """Create or upgrade the schema under an advisory lock (safe for racing processes)."""
        meta = f"{self._schema}.evstore_schema"
        async with conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                (f"evstore schema {self._name}",),
            )
            await conn.execute(f"CREATE SCHEMA IF NOT EXISTS {self._schema}")
            cur = await conn.execute("SELECT to_regclass(%s) IS NOT NULL", (meta,))
            row = await cur.fetchone()
            found = 0
            if row is not None and row[0]:
                cur = await conn.execute(f"SELECT version FROM {meta}")
                version_row = await cur.fetchone()
                found = 0 if version_row is None else int(version_row[0])
            if found == 0:
                partitions = self._partitions or 0
                if partitions == 1:
                    partitions = 0
                clause = "PARTITION BY HASH (partition_key)" if partitions else ""
                ddl = TABLES.format(s=self._schema, partition_clause=clause)
                ddl += (PARTITIONED_INDEXES if partitions else PLAIN_INDEXES).format(s=self._schema)
                for i in range(partitions):
                    ddl += (
                        f"CREATE TABLE {self._schema}.events_p{i} PARTITION OF "
                        f"{self._schema}.events FOR VALUES WITH (MODULUS {partitions}, "
                        f"REMAINDER {i});\n"
                    )
                ddl += (
                    f"CREATE TABLE {meta} (version integer NOT NULL, partitions integer NOT "
                    "NULL, created_at timestamptz NOT NULL DEFAULT now());\n"
                    f"INSERT INTO {meta} (version, partitions) VALUES (1, {partitions});\n"
                )
                await conn.execute(ddl)
            for version in range(max(found, 1) + 1, SCHEMA_VERSION + 1):
                ddl = MIGRATIONS[version].format(s=self._schema, k1=LOCK_CLASS, k2=self._lock_key)
                await conn.execute(ddl)
            await conn.execute(f"UPDATE {meta} SET version = %s", (SCHEMA_VERSION,))
        return found

    async def migrate(self) -> tuple[int, int]:
        """Create or upgrade the schema explicitly; return (version before, version now)."""
        await self._probe()
        await self._pool.open(wait=False)
        try:
            async with self._pool.connection(timeout=self._pool_timeout) as conn:
                found = await self._prepare_schema(conn, create=True)
        except (psycopg.Error, PoolTimeout) as e:
            raise self._errors.translate(e) from e
        self._ready = True
        return found, SCHEMA_VERSION

    async def _check_xid_horizon(self, conn: AsyncConnection[TupleRow]) -> None:
        cur = await conn.execute(
            f"SELECT (SELECT max(position) FROM {self._schema}.events) >> {ORDINAL_BITS}, "
            "pg_snapshot_xmax(pg_current_snapshot())::text::bigint"
        )
        row = await cur.fetchone()
        if row is not None and row[0] is not None and row[0] >= row[1]:
            raise BackendUnavailable(
                f"{self._where()} holds events of transaction {row[0]}, but this cluster's next "
                f"transaction id is {row[1]} (restored from a dump into a new cluster?). New "
                "events would sort before stored ones; raise the next id first, e.g. "
                f"pg_resetwal -x {row[0] + 1} (see docs/postgresql.md)"
            )

    # -- appending -------------------------------------------------------------------------

    async def append(
        self,
        stream_id: str,
        events: Sequence[PendingEvent],
        expected: ExpectedVersion,
        placement: Placement,
    ) -> AppendResult:
        if len(events) > MAX_BATCH:
            raise InvalidInput(f"at most {MAX_BATCH} events per append, got {len(events)}")
        params = append_params(stream_id, events, expected, placement)
        while True:
            try:
                rows = await self._query(
                    await self._statement("append"),
                    params,
                    notify=self._channel if self._notify else None,
                )
            except psycopg.errors.UniqueViolation as e:
                stored = await self._stored(events)
                if stored:
                    return replayed_result(stream_id, events, expected, stored)
                if expected is ANY:
                    continue  # another writer took the version we computed; go again
                last, visible, tombstoned = await self._state(stream_id)
                if tombstoned:
                    raise StreamDeleted(stream_id) from None
                raise ConcurrencyError(stream_id, expected, last if visible else 0) from e
            last, visible, tombstoned, positions, gate_open = rows[0]
            if tombstoned or not gate_open:
                raise StreamDeleted(stream_id)
            if positions is None:
                stored = await self._stored(events)
                if stored:
                    return replayed_result(stream_id, events, expected, stored)
                # The statement's CASE refused: it carries check_expected's verdict (proven
                # equal for every state and mode in tests/test_expected_rule.py).
                raise ConcurrencyError(stream_id, expected, last if visible else 0)
            self._wake()
            return AppendResult(last + len(events), tuple(positions))

    async def append_many(self, appends: Sequence[PendingAppend]) -> list[AppendResult]:
        """Every stream's check and insert in one statement (``_sql.append_many``): one
        snapshot for all the checks, one transaction id for all the positions."""
        events = [e for a in appends for e in a.events]
        if len(events) > MAX_BATCH:
            raise InvalidInput(f"at most {MAX_BATCH} events per append, got {len(events)}")
        params = append_many_params(appends)
        while True:
            try:
                rows = await self._query(
                    await self._statement("append_many"),
                    params,
                    notify=self._channel if self._notify else None,
                )
            except psycopg.errors.UniqueViolation:
                stored = await self._stored(events)
                if stored:
                    return replayed_results(appends, stored)
                continue  # another writer took a version we computed: check again
            if all(row[5] is not None for row in rows):
                self._wake()
                return [
                    AppendResult(int(row[1]) + len(a.events), tuple(row[5]))
                    for a, row in zip(appends, rows, strict=True)
                ]
            stored = await self._stored(events)
            if stored:
                return replayed_results(appends, stored)
            for a, (_, last, visible, tombstoned, gate_open, _) in zip(appends, rows, strict=True):
                if tombstoned or not gate_open:
                    raise StreamDeleted(a.stream_id)
                check_expected(a.stream_id, a.expected, int(last), bool(visible))

    async def _stored(self, events: Sequence[PendingEvent]) -> list[EventRecord]:
        rows = await self._query(await self._statement("stored"), ([e.event_id for e in events],))
        return [_record(r) for r in rows]

    async def _state(self, stream_id: str) -> tuple[int, bool, bool]:
        """(last version ever stored, whether readers see events, whether tombstoned)."""
        rows = await self._query(await self._statement("state"), {"sid": stream_id})
        return int(rows[0][0]), bool(rows[0][1]), bool(rows[0][2])

    # -- reading ---------------------------------------------------------------------------

    async def read_stream(
        self,
        stream_id: str,
        from_version: int,
        to_version: int | None,
        limit: int | None,
        backwards: bool,
    ) -> list[EventRecord]:
        if not self._ready:
            await self.open()
        query = (await self._statement("read_stream")).format(order="DESC" if backwards else "ASC")
        rows = await self._query(
            query,
            {
                "sid": stream_id,
                "low": from_version,
                "high": 2**62 if to_version is None else to_version,
                "limit": limit,
            },
            binary=True,
        )
        if rows and rows[0][1]:
            raise StreamDeleted(stream_id)
        return [_record(r[2:]) for r in rows if r[4] is not None]

    async def read_all(self, after: int, limit: int, where: LogFilter) -> LogPage:
        if not self._ready:
            await self.open()
        filters: list[str] = []
        params: dict[str, Any] = {"after": after, "limit": limit}
        if where.types is not None:
            filters.append("AND type = ANY(%(types)s::text[])")
            params["types"] = list(where.types)
        if where.type_prefix is not None:
            filters.append("AND starts_with(type, %(type_prefix)s)")
            params["type_prefix"] = where.type_prefix
        if where.category is not None:
            filters.append("AND category = %(category)s")
            params["category"] = where.category
        if where.stream_prefix is not None:
            filters.append("AND starts_with(stream_id, %(prefix)s)")
            params["prefix"] = where.stream_prefix
        if where.stream_id is not None:
            filters.append("AND stream_id = %(stream_id)s")
            params["stream_id"] = where.stream_id
        if where.partition is not None:
            filters.append("AND partition_hash %% %(count)s = %(slot)s")
            params["slot"], params["count"] = where.partition
        return await self._read_log(after, limit, filters, params)

    async def _read_log(
        self, after: int, limit: int, filters: list[str], params: dict[str, Any]
    ) -> LogPage:
        """The log after ``after`` below the horizon, narrowed by the SQL ``filters``."""
        template = await self._statement("read_all")
        query = template.format(horizon=XMIN, filters=" ".join(filters))
        rows = await self._query(query, params, binary=True)
        # head: the last event below the horizon; nothing can ever appear below it.
        head, held_back = int(rows[0][0]), bool(rows[0][1])
        if held_back and sum(r[4] is not None for r in rows) < limit:
            # Committed events wait above the cluster-wide horizon: compute the precise one
            # (only our appends in flight count) and read again in a later snapshot.
            params["horizon"], _, _ = await self._appenders()
            query = template.format(horizon="%(horizon)s::bigint", filters=" ".join(filters))
            rows = await self._query(query, params, binary=True)
            head, held_back = int(rows[0][0]), bool(rows[0][1])
        events = [_record(r[2:]) for r in rows if r[4] is not None]
        if len(events) == limit:
            return LogPage(events, events[-1].position)
        await self._note_horizon(held_back)
        return LogPage(events, max(after, head))

    # -- dynamic consistency boundaries (TaggedLog) -----------------------------------------

    supports_tags = True
    # A B-tree entry holds at most 2,704 bytes: (stream_id, version), (type, occurred_at),
    # (category, position) and the names' primary keys stay below that.
    max_name_bytes = 2_048

    async def read_tagged(self, query: TagQuery, after: int, limit: int) -> LogPage:
        if not self._ready:
            await self.open()
        params: dict[str, Any] = {"after": after, "limit": limit}
        return await self._read_log(after, limit, [_tag_filter(query, params)], params)

    async def append_unless(
        self,
        stream_id: str,
        events: Sequence[PendingEvent],
        expected: ExpectedVersion,
        placement: Placement,
        query: TagQuery,
        after: int,
    ) -> AppendResult:
        """The check and the append in one transaction that holds the appends' advisory
        lock exclusively (as a hard delete does): appends in flight end first and new ones
        wait, so no event can slip in between the check and the insert, and the check's
        snapshot, taken after the lock, sees every committed event. Plain appends pay
        nothing for it; conditional appends take turns."""
        if len(events) > MAX_BATCH:
            raise InvalidInput(f"at most {MAX_BATCH} events per append, got {len(events)}")
        statement = await self._statement("append")
        params: dict[str, Any] = {"after": after}
        check = (
            f"SELECT position FROM {self._schema}.events WHERE position > %(after)s "
            f"{_tag_filter(query, params)} ORDER BY position LIMIT 1"
        )
        try:
            async with self._pool.connection() as conn, conn.transaction():
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, self._lock_key)
                )
                found = await (await conn.execute(check, params)).fetchone()
                if found is None:
                    cur = await conn.execute(
                        statement, append_params(stream_id, events, expected, placement)
                    )
                    rows = await cur.fetchall()
        except psycopg.errors.UniqueViolation as e:
            stored = await self._stored(events)
            if stored:
                return replayed_result(stream_id, events, expected, stored)
            raise ConcurrencyError(stream_id, expected, await self.stream_version(stream_id)) from e
        except (psycopg.Error, PoolTimeout) as e:
            raise self._errors.translate(e) from e
        if found is not None:
            stored = await self._stored(events)
            if stored:
                return replayed_result(stream_id, events, expected, stored)
            raise AppendConditionFailed(stream_id, after, int(found[0]))
        last, visible, tombstoned, positions, gate_open = rows[0]
        if tombstoned or not gate_open:
            raise StreamDeleted(stream_id)
        if positions is None:
            stored = await self._stored(events)
            if stored:
                return replayed_result(stream_id, events, expected, stored)
            raise ConcurrencyError(stream_id, expected, last if visible else 0)
        if self._notify:
            await self._query(_NOTIFY, (self._channel,))
        self._wake()
        return AppendResult(last + len(events), tuple(positions))

    async def _appenders(self) -> tuple[int, int, int]:
        """(precise horizon, pid and transaction age in ms of the oldest append in flight).

        Safe because every append takes the shared advisory lock before it gets its
        transaction id, and ends it only after its commit is visible: an append with an id
        below the result has ended before this statement, so the *next* statement's
        snapshot sees all its events. Costs a look at ``pg_locks``, so it only runs when
        the one-statement horizon is held back.
        """
        rows = await self._query(
            await self._statement("appenders"), {"k1": LOCK_CLASS, "k2": self._lock_key}
        )
        horizon, pid, age = rows[0]
        return int(horizon), int(pid or 0), int(age or 0)

    async def _head(self) -> tuple[int, bool]:
        """(the last readable position, whether committed events wait above it)."""
        template = await self._statement("head")
        rows = await self._query(template.format(horizon=XMIN), ())
        head, held_back = int(rows[0][0]), bool(rows[0][1])
        if held_back:
            horizon, _, _ = await self._appenders()
            rows = await self._query(
                template.format(horizon="%(horizon)s::bigint"), {"horizon": horizon}
            )
            head, held_back = int(rows[0][0]), bool(rows[0][1])
        return head, held_back

    async def _note_horizon(self, held_back: bool) -> None:
        """Warn (rate-limited) when committed events stay unreadable behind an open transaction."""
        now = time.monotonic()
        if not held_back:
            self._stalled_since = None
            return
        if self._stalled_since is None:
            self._stalled_since = now
        if now - self._stalled_since >= self._stall_warning and (
            now - self._warned_at >= self._stall_warning
        ):
            self._warned_at = now
            status = await self.gap_status()
            log.warning(
                "%s: %d committed events are held back from readers for %.0fs by an append "
                "in flight (pid %s, transaction open for %.1fs); readers resume when it ends",
                self._where(),
                status["waiting_events"],
                now - self._stalled_since,
                status["blocking_pid"] or "?",
                status["blocking_xact_age_ms"] / 1000,
            )

    async def gap_status(self) -> dict[str, int]:
        """How far the readable log lags behind what is committed, and who holds it back.

        ``waiting_events``: committed events readers cannot read yet; ``blocking_pid`` and
        ``blocking_xact_age_ms``: the oldest append still in flight, which holds them back
        (0 when there is none).
        """
        horizon, pid, age = await self._appenders()
        rows = await self._query(
            f"SELECT count(*) FROM {self._schema}.events WHERE position >= %s", (horizon,)
        )
        waiting = int(rows[0][0])
        return {
            "waiting_events": waiting,
            "blocking_pid": pid if waiting else 0,
            "blocking_xact_age_ms": age if waiting else 0,
        }

    async def stream_version(self, stream_id: str) -> int:
        last, visible, tombstoned = await self._state(stream_id)
        if tombstoned:
            raise StreamDeleted(stream_id)
        return last if visible else 0

    async def head_position(self) -> int:
        head, _ = await self._head()
        return head

    # -- snapshots -------------------------------------------------------------------------

    async def get_snapshot(self, stream_id: str) -> SnapshotRecord | None:
        s = self._schema
        rows = await self._query(
            f"""
SELECT d.tombstoned, n.stream_id, n.version, n.data, n.schema_version, n.taken_at
FROM (SELECT 1) one
LEFT JOIN {s}.deleted_streams d ON d.stream_id = %(sid)s
LEFT JOIN {s}.snapshots n ON n.stream_id = %(sid)s""",
            {"sid": stream_id},
        )
        row = rows[0]
        if row[0]:
            raise StreamDeleted(stream_id)
        if row[1] is None:
            return None
        return SnapshotRecord(row[1], row[2], row[3], row[4], row[5])

    async def save_snapshot(self, snapshot: SnapshotRecord) -> None:
        s = self._schema
        rows = await self._query(
            f"""
WITH t AS (SELECT EXISTS (SELECT 1 FROM {s}.deleted_streams
                          WHERE stream_id = %(sid)s AND tombstoned) AS tombstoned),
up AS (
    INSERT INTO {s}.snapshots (stream_id, version, data, schema_version, taken_at)
    SELECT %(sid)s, %(version)s, %(data)s::json, %(sv)s, %(at)s FROM t WHERE NOT t.tombstoned
    ON CONFLICT (stream_id) DO UPDATE SET version = excluded.version, data = excluded.data,
        schema_version = excluded.schema_version, taken_at = excluded.taken_at
    WHERE excluded.version >= {s}.snapshots.version
    RETURNING 1
)
SELECT tombstoned FROM t""",
            {
                "sid": snapshot.stream_id,
                "version": snapshot.version,
                "data": snapshot.data.decode(),
                "sv": snapshot.schema_version,
                "at": snapshot.taken_at,
            },
        )
        if rows[0][0]:
            raise StreamDeleted(snapshot.stream_id)

    # -- deleting --------------------------------------------------------------------------

    async def delete_stream(self, stream_id: str, hard: bool, expected: ExpectedVersion) -> None:
        if not self._ready:
            await self.open()
        s = self._schema
        async with self._errors, self._pool.connection() as conn, conn.transaction():
            # Serialize deletes of one stream; appends are caught by the version check.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                (f"evstore delete {s} {stream_id}",),
            )
            if hard:
                # Wait for appends in flight and hold new ones at their gate until the
                # tombstone commits (see MIGRATIONS[2] in _sql): no event can slip in after it.
                await conn.execute(
                    "SELECT pg_advisory_xact_lock(%s, %s)", (LOCK_CLASS, self._lock_key)
                )
            cur = await conn.execute(self._sql["state"], {"sid": stream_id})
            row = await cur.fetchone()
            assert row is not None
            last, visible, tombstoned = int(row[0]), bool(row[1]), bool(row[2])
            if tombstoned:
                raise StreamDeleted(stream_id)
            check_expected(stream_id, expected, last, visible)
            if not hard and not visible:
                raise StreamNotFound(stream_id)
            delete = f"DELETE FROM {s}.snapshots WHERE stream_id = %s"
            await conn.execute(delete, (stream_id,))
            if hard:
                if self._partitioned:
                    await conn.execute(
                        f"DELETE FROM {s}.event_ids WHERE event_id IN "
                        f"(SELECT event_id FROM {s}.events WHERE stream_id = %s)",
                        (stream_id,),
                    )
                delete = f"DELETE FROM {s}.events WHERE stream_id = %s"
                await conn.execute(delete, (stream_id,))
            await conn.execute(
                f"INSERT INTO {s}.deleted_streams (stream_id, last_version, tombstoned) "
                "VALUES (%s, %s, %s) ON CONFLICT (stream_id) DO UPDATE SET "
                "last_version = excluded.last_version, tombstoned = excluded.tombstoned",
                (stream_id, last, hard),
            )

    async def truncate_stream(self, stream_id: str, before: int) -> int:
        if not self._ready:
            await self.open()
        s = self._schema
        async with self._errors, self._pool.connection() as conn, conn.transaction():
            await conn.execute(  # the lock of delete_stream: one of them at a time
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                (f"evstore delete {s} {stream_id}",),
            )
            cur = await conn.execute(self._sql["state"], {"sid": stream_id})
            row = await cur.fetchone()
            assert row is not None
            if bool(row[2]):
                return 0
            args = (stream_id, before)
            if before - 1 >= int(row[0]):  # cut to the end: hidden, as soft-deleted
                await conn.execute(
                    f"INSERT INTO {s}.deleted_streams (stream_id, last_version, tombstoned) "
                    "VALUES (%s, %s, false) ON CONFLICT (stream_id) DO UPDATE SET "
                    "last_version = excluded.last_version",
                    (stream_id, before - 1),
                )
            if self._partitioned:
                await conn.execute(
                    f"DELETE FROM {s}.event_ids WHERE event_id IN (SELECT event_id FROM "
                    f"{s}.events WHERE stream_id = %s AND version < %s)",
                    args,
                )
            cur = await conn.execute(
                f"DELETE FROM {s}.events WHERE stream_id = %s AND version < %s", args
            )
            return cur.rowcount

    # -- checkpoints and projections -------------------------------------------------------

    async def get_checkpoint(self, name: str) -> int | None:
        rows = await self._query(
            f"SELECT position FROM {self._schema}.checkpoints WHERE name = %s", (name,)
        )
        return int(rows[0][0]) if rows else None

    async def set_checkpoint(self, name: str, position: int) -> None:
        await self._query(
            f"INSERT INTO {self._schema}.checkpoints (name, position) VALUES (%s, %s) "
            "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
            (name, position),
        )

    async def set_checkpoints(self, positions: dict[str, int]) -> None:
        await self._query(
            f"INSERT INTO {self._schema}.checkpoints (name, position) "
            "SELECT * FROM unnest(%s::text[], %s::bigint[]) "
            "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
            (list(positions), list(positions.values())),
        )

    async def list_checkpoints(self) -> dict[str, int]:
        rows = await self._query(
            f"SELECT name, position FROM {self._schema}.checkpoints ORDER BY name", ()
        )
        return {str(name): int(position) for name, position in rows}

    async def compare_and_set_checkpoint(
        self, name: str, expected: int | None, position: int
    ) -> bool:
        # One statement each: the row lock (UPDATE) or the primary key (INSERT) decides
        # between racing writers. Not retried on a lost connection: it may have committed.
        s = self._schema
        if expected is None:
            rows = await self._query(
                f"INSERT INTO {s}.checkpoints (name, position) VALUES (%s, %s) "
                "ON CONFLICT (name) DO NOTHING RETURNING 1",
                (name, position),
                retry=False,
            )
        else:
            rows = await self._query(
                f"UPDATE {s}.checkpoints SET position = %s WHERE name = %s AND position = %s "
                "RETURNING 1",
                (position, name, expected),
                retry=False,
            )
        return bool(rows)

    async def delete_checkpoint(self, name: str) -> bool:
        rows = await self._query(
            f"DELETE FROM {self._schema}.checkpoints WHERE name = %s RETURNING 1", (name,)
        )
        return bool(rows)

    async def run_with_checkpoint(
        self, name: str, expected: int | None, position: int, work: Callable[[Any], Any]
    ) -> bool:
        """Run ``work(connection)`` and move checkpoint ``name`` in one transaction.

        An advisory lock on the name (taken before the checkpoint is read) keeps two
        instances of one projection from both applying the same events.
        """
        return await self._checkpointed(name, expected, position, work, emits=False) is not None

    async def append_with_checkpoint(
        self, name: str, expected: int | None, position: int, work: Callable[[Any], Any]
    ) -> list[AppendResult] | None:
        """``run_with_checkpoint`` whose ``work`` returns appends for the same transaction.

        Such a transaction is an append in flight from its start: it takes the appenders'
        shared lock before anything can give it a transaction id (the precise horizon
        then holds readers back for it), and its appends run as ``append_many``'s one
        statement. That statement may not be the transaction's first write (the handler's
        read-model writes may come first), so a later version of a stream could get a lower
        position than an earlier one committed meanwhile by a younger transaction; a check
        after the statement finds that case, and the whole transaction is run again.
        """
        for _ in range(_REORDER_RETRIES):
            try:
                return await self._checkpointed(name, expected, position, work, emits=True)
            except _Reordered:
                continue
        raise BackendUnavailable(
            f"checkpoint {name!r}: the emitted events kept racing appends to the same "
            f"streams ({_REORDER_RETRIES} tries); nothing was stored"
        )

    async def _checkpointed(
        self,
        name: str,
        expected: int | None,
        position: int,
        work: Callable[[Any], Any],
        *,
        emits: bool,
    ) -> list[AppendResult] | None:
        if not self._ready:
            await self.open()
        s = self._schema
        failure: BaseException | None = None
        results: list[AppendResult] = []
        async with self._errors, self._pool.connection() as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))",
                (f"evstore checkpoint {s} {name}",),
            )
            if emits:
                await conn.execute(
                    "SELECT pg_advisory_xact_lock_shared(%s, %s)", (LOCK_CLASS, self._lock_key)
                )
            # Unqualified read-model tables of the handler live beside the events.
            await conn.execute(f"SET LOCAL search_path TO {s}, public")
            cur = await conn.execute(
                f"SELECT position FROM {s}.checkpoints WHERE name = %s", (name,)
            )
            row = await cur.fetchone()
            if (None if row is None else int(row[0])) != expected:
                return None
            try:
                appends = await _aio.call(work, conn)
                if conn.info.transaction_status != psycopg.pq.TransactionStatus.INTRANS:
                    raise InvalidInput(
                        f"projection {name!r}: the handler ended or broke the transaction; "
                        "it must not commit or roll back the connection it is given"
                    )
            except BaseException as e:
                # The caller's error (its own SQL included) goes back unchanged.
                failure = e
                raise psycopg.Rollback() from None
            if emits and appends:
                results = await self._append_many_in(conn, appends)
            await conn.execute(
                f"INSERT INTO {s}.checkpoints (name, position) VALUES (%s, %s) "
                "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
                (name, position),
            )
            if results and self._notify:
                await conn.execute("SELECT pg_notify(%s, '')", (self._channel,))
        if failure is not None:
            raise failure
        if results:
            self._wake()
        return results

    async def _append_many_in(
        self, conn: AsyncConnection[TupleRow], appends: Sequence[PendingAppend]
    ) -> list[AppendResult]:
        """``append_many`` inside the caller's transaction (see append_with_checkpoint)."""
        events = [e for a in appends for e in a.events]
        if len(events) > MAX_BATCH:
            raise InvalidInput(f"at most {MAX_BATCH} events per append, got {len(events)}")
        params = append_many_params(appends)
        statement = self._sql["append_many"]
        stored_query = self._sql["stored"]
        while True:
            try:
                async with conn.transaction():  # a savepoint: a lost race costs only this
                    cur = await conn.execute(statement, params)
                    rows = await cur.fetchall()
            except psycopg.errors.UniqueViolation:
                rows = []
            if rows and all(row[5] is not None for row in rows):
                break
            cur = await conn.execute(stored_query, ([e.event_id for e in events],))
            stored = [_record(r) for r in await cur.fetchall()]
            if stored:
                return replayed_results(appends, stored)
            for a, (_, last, visible, tombstoned, gate_open, _) in zip(appends, rows, strict=False):
                if tombstoned or not gate_open:
                    raise StreamDeleted(a.stream_id)
                check_expected(a.stream_id, a.expected, int(last), bool(visible))
        results = [
            AppendResult(int(row[1]) + len(a.events), tuple(row[5]))
            for a, row in zip(appends, rows, strict=True)
        ]
        cur = await conn.execute(
            f"SELECT 1 FROM unnest(%s::text[], %s::bigint[], %s::bigint[]) AS n(sid, v, p) "
            f"JOIN {self._schema}.events e ON e.stream_id = n.sid AND e.version < n.v "
            "AND e.position > n.p LIMIT 1",
            (
                [a.stream_id for a in appends],
                [int(row[1]) + 1 for row in rows],
                [int(row[5][0]) for row in rows],
            ),
        )
        if await cur.fetchone() is not None:
            raise _Reordered
        return results

    # -- dead letters ----------------------------------------------------------------------

    async def park(self, letter: DeadLetter) -> None:
        await self._query(
            f"INSERT INTO {self._schema}.dead_letters (name, position, stream_id, version, type, "
            "event_id, error, attempts, parked_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s) "
            "ON CONFLICT (name, position) DO UPDATE SET stream_id = excluded.stream_id, "
            "version = excluded.version, type = excluded.type, event_id = excluded.event_id, "
            "error = excluded.error, attempts = excluded.attempts, "
            "parked_at = excluded.parked_at",
            (*letter[:6], letter.error.replace("\x00", "\\x00"), letter.attempts, letter.parked_at),
        )

    async def dead_letters(self, name: str, after: int, limit: int) -> list[DeadLetter]:
        rows = await self._query(
            "SELECT name, position, stream_id, version, type, event_id, error, attempts, "
            f"parked_at FROM {self._schema}.dead_letters WHERE name = %s AND position > %s "
            "ORDER BY position LIMIT %s",
            (name, after, limit),
        )
        return [
            DeadLetter(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8].astimezone(UTC))
            for r in rows
        ]

    async def unpark(self, name: str, position: int) -> bool:
        rows = await self._query(
            f"DELETE FROM {self._schema}.dead_letters WHERE name = %s AND position = %s "
            "RETURNING 1",
            (name, position),
        )
        return bool(rows)

    # -- waiting for new events ------------------------------------------------------------

    def _wake(self) -> None:
        wakeup, self._wakeup = self._wakeup, _aio.Event()
        wakeup.set()

    async def wait_for_events(self, after: int, timeout: float) -> None:
        if self._notify and self._listener is None and not self._closed:
            self._listener = _aio.Runner(self._listen, name=f"evstore-listen-{self._name}")
        wakeup = self._wakeup  # taken before the check, so no notification is missed
        head, held_back = await self._head()
        if head > after:
            return
        # Events held back by an append in flight: if that append fails, no notification
        # comes, so look again soon instead of sleeping the whole poll interval.
        await wakeup.wait(min(timeout, 0.05) if held_back else timeout)

    async def _listen(self) -> None:
        """LISTEN for appends and wake waiters; reconnect with backoff when the link drops.

        Waiters never depend on this: they also wake at their poll interval.
        """
        delay = 0.1
        while not self._closed:
            try:
                conn = await AsyncConnection.connect(self._conninfo, autocommit=True)
                async with conn:
                    await conn.execute(sql.SQL("LISTEN {}").format(sql.Identifier(self._channel)))
                    self._listening = True
                    delay = 0.1
                    self._wake()  # we may have missed notifications while disconnected
                    while not self._closed:
                        async for _ in conn.notifies(timeout=1.0):
                            self._wake()
                            if self._closed:
                                break
            except psycopg.Error as e:
                if self._listening:
                    log.warning("%s: LISTEN connection lost (%s); polling", self._where(), e)
                self._listening = False
                await _aio.sleep(delay)
                delay = min(delay * 2, 5.0)
        self._listening = False

    @property
    def listening(self) -> bool:
        """Whether the LISTEN connection is up (otherwise waiters poll)."""
        return self._listening

    # -- operations ------------------------------------------------------------------------

    async def list_streams(self, after: str | None, limit: int) -> list[StreamSummary]:
        s = self._schema
        rows = await self._query(
            f"""
SELECT ids.stream_id, greatest(coalesce(e.v, 0), coalesce(d.last_version, 0)),
       coalesce(d.tombstoned, false), coalesce(e.v, 0) > coalesce(d.last_version, 0)
FROM (
    (SELECT DISTINCT stream_id FROM {s}.events WHERE stream_id > %(after)s
     ORDER BY stream_id LIMIT %(limit)s)
    UNION
    (SELECT stream_id FROM {s}.deleted_streams WHERE stream_id > %(after)s
     ORDER BY stream_id LIMIT %(limit)s)
) ids
LEFT JOIN LATERAL (SELECT max(version) AS v FROM {s}.events
                   WHERE stream_id = ids.stream_id) e ON true
LEFT JOIN {s}.deleted_streams d ON d.stream_id = ids.stream_id
ORDER BY ids.stream_id LIMIT %(limit)s""",
            {"after": after or "", "limit": limit},
        )
        return [
            StreamSummary(sid, int(v), "tombstoned" if tomb else "live" if visible else "deleted")
            for sid, v, tomb, visible in rows
        ]

    async def stats(self) -> dict[str, int]:
        s = self._schema
        rows = await self._query(
            f"""
SELECT (SELECT count(*) FROM {s}.events),
       (SELECT count(*) FROM (SELECT stream_id, max(version) AS v FROM {s}.events
                              GROUP BY stream_id) e
        LEFT JOIN {s}.deleted_streams d USING (stream_id)
        WHERE e.v > coalesce(d.last_version, 0)),
       (SELECT count(*) FROM {s}.snapshots), (SELECT count(*) FROM {s}.checkpoints),
       0""",
            (),
        )
        events, streams, snapshots, checkpoints, _ = (int(v) for v in rows[0])
        head, _ = await self._head()
        return {
            "events": events,
            "streams": streams,
            "snapshots": snapshots,
            "checkpoints": checkpoints,
            "head_position": head,
            **await self.gap_status(),
        }

    async def close(self) -> None:
        if self._listener is not None and self._ready and not self._closed:
            # Wakes our listener (a sync one waits in notifies() for up to a second).
            with suppress(BackendUnavailable):
                await self._query("SELECT pg_notify(%s, '')", (self._channel,), retry=False)
        self._closed = True
        for runner in (self._listener,):
            if runner is not None:
                runner.cancel()
                await runner.join(5.0)
        await self._pool.close()
        self._wake()
