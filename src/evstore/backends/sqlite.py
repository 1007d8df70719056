"""``sqlite:///path.db`` - the embedded default: one file, zero set-up.

Concurrency: the database runs in WAL mode, so readers never block the writer. Every
append is one ``BEGIN IMMEDIATE`` transaction: it takes SQLite's single write lock before
reading the stream's version, so two writers - threads or processes - cannot both pass the
expected-version check, and a busy writer waits (``busy_timeout``) instead of failing.

Gap safety: positions are the ``AUTOINCREMENT`` rowid, assigned under the write lock and
committed in the same order, so a reader that has seen position p can never later find a
new event below p. (AUTOINCREMENT also keeps positions of hard-deleted events from being
reused.)

Live delivery: appends wake waiters of the same process at once; other processes' commits
are noticed within about a millisecond by one watcher thread per file (``PRAGMA
data_version``, only while someone waits); the subscription's poll interval remains the
fallback.

Log partitions: ``?partitions=16`` (or ``partitions=16``) creates a store of 16 log
partitions, recorded in the file (table ``store_meta``). Each partition's positions come
from its own counter (``partition_heads``), taken under the same write lock, so every
partition is gap-free and totally ordered; ``partition_log`` maps (partition, position) to
the event's row. A store of one partition has none of these tables and keeps the SQL above.
SQLite has one writer, so partitions add no write capacity here: they exist so that the
partitioned model (cursors, consumer groups) runs on the embedded default.

Durability: ``synchronous=FULL`` by default - an acknowledged append survives power loss;
``?synchronous=NORMAL`` trades that (in WAL mode) for speed and stays crash-safe for the
application.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
import uuid
from _thread import allocate_lock as _allocate_lock
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

try:
    import fcntl
except ImportError:  # pragma: no cover - Windows: writers are not let in ahead
    fcntl = None  # type: ignore[assignment]

from evstore._types import ANY, NO_STREAM, AppendResult, ExpectedVersion
from evstore.errors import (
    AppendConditionFailed,
    BackendUnavailable,
    ConcurrencyError,
    EvstoreError,
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
    partitions_option,
    replayed_result,
    replayed_results,
    tags_of,
)
from evstore.spi.backend import (
    CheckpointedAppends,
    DeadLetterStore,
    EventLog,
    Operations,
    PartitionedLog,
    SnapshotStore,
    TransactionalCheckpoints,
    TruncatableLog,
)

SCHEMA_VERSION = 3
DEFAULT_PATH = "evstore.db"

_SCHEMA = """
CREATE TABLE events (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    event_id       BLOB    NOT NULL UNIQUE,  -- the UUID's 16 bytes
    type           TEXT    NOT NULL,
    data           BLOB    NOT NULL,
    metadata       BLOB    NOT NULL,
    schema_version INTEGER NOT NULL,
    occurred_at    INTEGER NOT NULL,  -- microseconds since the epoch, UTC
    recorded_at    INTEGER NOT NULL,
    category       TEXT    NOT NULL,
    partition_key  TEXT    NOT NULL,
    partition_hash INTEGER NOT NULL
);
-- Every index serves a query: (stream_id, version) stream reads and the version check,
-- event_id idempotent re-appends, (category, position) the log filtered by category.
CREATE UNIQUE INDEX events_stream_version ON events (stream_id, version);
CREATE INDEX events_category ON events (category, position);
-- Only streams that were deleted have a row: the live version is max(version) in events.
CREATE TABLE deleted_streams (
    stream_id    TEXT PRIMARY KEY,
    last_version INTEGER NOT NULL,
    tombstoned   INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE snapshots (
    stream_id      TEXT PRIMARY KEY,
    version        INTEGER NOT NULL,
    data           BLOB    NOT NULL,
    schema_version INTEGER NOT NULL,
    taken_at       INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE checkpoints (
    name     TEXT PRIMARY KEY,
    position INTEGER NOT NULL
) WITHOUT ROWID;
"""

# Added in schema version 2 (databases at version 1 get it on open).
_SCHEMA_2 = """
CREATE TABLE dead_letters (
    name       TEXT    NOT NULL,
    position   INTEGER NOT NULL,
    stream_id  TEXT    NOT NULL,
    version    INTEGER NOT NULL,
    type       TEXT    NOT NULL,
    event_id   TEXT    NOT NULL,
    error      TEXT    NOT NULL,
    attempts   INTEGER NOT NULL,
    parked_at  INTEGER NOT NULL,
    PRIMARY KEY (name, position)
) WITHOUT ROWID;
"""

# Schema version 3: event ids as 16-byte blobs instead of 36-character text (the row and
# its unique index shrink by 20 bytes an event), and no (type, occurred_at) index - no query
# used it, and it cost a B-tree insert per event. SQLite cannot change a column's type, so
# the table is rebuilt; positions and the AUTOINCREMENT counter are kept.
_SCHEMA_3 = """
CREATE TABLE events_v3 (
    position       INTEGER PRIMARY KEY AUTOINCREMENT,
    stream_id      TEXT    NOT NULL,
    version        INTEGER NOT NULL,
    event_id       BLOB    NOT NULL UNIQUE,
    type           TEXT    NOT NULL,
    data           BLOB    NOT NULL,
    metadata       BLOB    NOT NULL,
    schema_version INTEGER NOT NULL,
    occurred_at    INTEGER NOT NULL,
    recorded_at    INTEGER NOT NULL,
    category       TEXT    NOT NULL,
    partition_key  TEXT    NOT NULL,
    partition_hash INTEGER NOT NULL
);
INSERT INTO events_v3 SELECT position, stream_id, version, evstore_uuid_blob(event_id), type,
    data, metadata, schema_version, occurred_at, recorded_at, category, partition_key,
    partition_hash FROM events ORDER BY position;
DROP TABLE events;
ALTER TABLE events_v3 RENAME TO events;
CREATE UNIQUE INDEX events_stream_version ON events (stream_id, version);
CREATE INDEX events_category ON events (category, position);
"""

# Tags (dynamic consistency boundaries): one row per (tag, event), so the events of a tag
# after a position are one range of the primary key. Created on open when missing.
_TAGS_SCHEMA = """
CREATE TABLE IF NOT EXISTS event_tags (
    tag      TEXT    NOT NULL,
    position INTEGER NOT NULL,
    PRIMARY KEY (tag, position)
) WITHOUT ROWID
"""

# Only in stores of several log partitions (created with the store, never migrated).
_PARTITIONS_SCHEMA = """
CREATE TABLE store_meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
) WITHOUT ROWID;
CREATE TABLE partition_heads (
    part INTEGER PRIMARY KEY,
    head INTEGER NOT NULL
);
CREATE TABLE partition_log (
    part        INTEGER NOT NULL,
    position    INTEGER NOT NULL,
    event_rowid INTEGER NOT NULL UNIQUE,
    PRIMARY KEY (part, position)
) WITHOUT ROWID;
"""
_P_COLUMNS = (
    "e.stream_id, e.version, l.position, e.event_id, e.type, e.data, e.metadata, "
    "e.schema_version, e.occurred_at, e.recorded_at, l.part"
)
_P_FROM = "events e JOIN partition_log l ON l.event_rowid = e.position"

_COLUMNS = (
    "stream_id, version, position, event_id, type, data, metadata, schema_version, "
    "occurred_at, recorded_at"
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)


# One-statement single-event append: versions and the expected-version check are computed
# inside the INSERT ... SELECT. RETURNING needs SQLite >= 3.35.
_FAST_APPEND = sqlite3.sqlite_version_info >= (3, 35, 0)
_APPEND_ONE = """
INSERT INTO events (stream_id, version, event_id, type, data, metadata, schema_version,
                    occurred_at, recorded_at, category, partition_key, partition_hash)
SELECT ?, last + 1, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?
FROM (SELECT coalesce(max(version), 0) AS last FROM events WHERE stream_id = ?)
WHERE NOT EXISTS (SELECT 1 FROM deleted_streams WHERE stream_id = ?)
  AND CASE ? WHEN 'any' THEN 1 WHEN 'exact' THEN last = ? ELSE 0 END
RETURNING version, position
"""


def _tag_sql(query: TagQuery, after: int) -> tuple[str, list[Any]]:
    """The WHERE clause of events matching ``query`` (tags through the event_tags index)."""
    if not query.items:
        return "1", []
    clauses: list[str] = []
    params: list[Any] = []
    for types, tags in query.items:
        parts = []
        for tag in tags:
            parts.append(
                "position IN (SELECT position FROM event_tags WHERE tag = ? AND position > ?)"
            )
            params += [tag, after]
        if types:
            parts.append(f"type IN ({', '.join('?' * len(types))})")
            params += types
        clauses.append("(" + (" AND ".join(parts) or "1") + ")")
    return "(" + " OR ".join(clauses) + ")", params


def _uuid_blob(text: str) -> bytes:
    """The 16 bytes of a UUID given in text (the canonical form takes the short way)."""
    if len(text) == 36:
        return bytes.fromhex(text.replace("-", ""))
    return uuid.UUID(text).bytes


def _uuid_text(raw: bytes) -> str:
    """The canonical text of a UUID stored as 16 bytes (a third of ``str(UUID(bytes=))``)."""
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _columns(e: PendingEvent, placement: Placement, now: int) -> tuple[Any, ...]:
    """An event's INSERT values after (stream_id, version), in the events table's order."""
    return (
        _uuid_blob(e.event_id), e.type, e.data, e.metadata, e.schema_version,
        _to_us(e.occurred_at), now if e.recorded_at is None else _to_us(e.recorded_at),
        placement.category, placement.partition_key, placement.partition_hash,
    )  # fmt: skip


def _fast_mode(expected: ExpectedVersion) -> tuple[str, int]:
    """(mode, version) for _APPEND_ONE: every mode is an exact version or ANY."""
    if expected is ANY:
        return "any", 0
    if expected is NO_STREAM:
        return "exact", 0
    if isinstance(expected, int):
        return "exact", expected
    return "full", 0  # STREAM_EXISTS: rare enough to take the full path


def _statements(script: str) -> list[str]:
    """Split a schema script into statements (it holds no ';' inside a statement)."""
    lines = [line.split("--", 1)[0] for line in script.splitlines()]
    return [part.strip() for part in "\n".join(lines).split(";") if part.strip()]


def _to_us(value: datetime) -> int:
    return (value - _EPOCH) // _US


def _from_us(value: int) -> datetime:
    """Microseconds since the epoch; :data:`UNREADABLE` for a value out of range."""
    try:
        return _EPOCH + _US * value  # exact, and twice as fast as timedelta(microseconds=...)
    except (OverflowError, TypeError):
        return UNREADABLE


_tuple_new = tuple.__new__


def _record(row: tuple[Any, ...]) -> EventRecord:
    # tuple.__new__ skips the NamedTuple's Python-level __new__ (same object).
    head = (row[0], row[1], row[2], _uuid_text(row[3]), row[4], row[5], row[6], row[7])
    try:
        return _tuple_new(EventRecord, (*head, _EPOCH + _US * row[8], _EPOCH + _US * row[9], 0))
    except (OverflowError, TypeError):  # a corrupt row: the reader reports that event alone
        return _tuple_new(EventRecord, (*head, _from_us(row[8]), _from_us(row[9]), 0))


def _p_record(row: tuple[Any, ...]) -> EventRecord:
    """A row of ``_P_COLUMNS`` (a store of several log partitions)."""
    head = (row[0], row[1], row[2], _uuid_text(row[3]), row[4], row[5], row[6], row[7])
    try:
        return _tuple_new(
            EventRecord, (*head, _EPOCH + _US * row[8], _EPOCH + _US * row[9], row[10])
        )
    except (OverflowError, TypeError):  # a corrupt row: the reader reports that event alone
        return _tuple_new(EventRecord, (*head, _from_us(row[8]), _from_us(row[9]), row[10]))


def _filter_sql(where: LogFilter, table: str, sql: list[str], params: list[Any]) -> None:
    """Append a log filter's conditions (columns of ``table``, e.g. ``"e."``) and values."""
    if where.types is not None:
        sql.append(f"AND {table}type IN ({','.join('?' * len(where.types))})")
        params.extend(where.types)
    if where.type_prefix is not None:
        sql.append(f"AND substr({table}type, 1, ?) = ?")
        params.extend((len(where.type_prefix), where.type_prefix))
    if where.category is not None:
        sql.append(f"AND {table}category = ?")
        params.append(where.category)
    if where.stream_prefix is not None:
        sql.append(f"AND substr({table}stream_id, 1, ?) = ?")
        params.extend((len(where.stream_prefix), where.stream_prefix))
    if where.stream_id is not None:
        sql.append(f"AND {table}stream_id = ?")
        params.append(where.stream_id)
    if where.partition is not None:
        sql.append(f"AND {table}partition_hash % ? = ?")
        params.extend((where.partition[1], where.partition[0]))


class _Wakeup:
    """Wakes this process's waiters when an append to the same file commits.

    Appends of this process notify directly. Commits of other processes are noticed by one
    watcher thread per file, running only while someone waits: every ``WATCH_INTERVAL`` it
    reads ``PRAGMA data_version`` on a connection of its own (a look at the WAL index in
    shared memory, no file I/O), which changes whenever another connection has committed.
    It stops ``LINGER`` seconds after the last waiter left.
    """

    _by_path: ClassVar[dict[str, _Wakeup]] = {}
    _registry_lock: ClassVar[threading.Lock] = threading.Lock()
    WATCH_INTERVAL: ClassVar[float] = 0.001
    LINGER: ClassVar[float] = 2.0

    def __init__(self, path: str) -> None:
        self.path = path
        self.cond = threading.Condition()
        self.generation = 0
        self.waiters = 0
        self.watching = False

    @classmethod
    def for_path(cls, path: str) -> _Wakeup:
        with cls._registry_lock:
            wakeup = cls._by_path.get(path)
            if wakeup is None:
                wakeup = cls._by_path[path] = cls(path)
            return wakeup

    def notify(self) -> None:
        with self.cond:
            self.generation += 1
            self.cond.notify_all()

    def wait(self, generation: int, timeout: float) -> None:
        """Wait until ``generation`` has passed (an append committed) or ``timeout``."""
        with self.cond:
            self.waiters += 1
            if not self.watching:
                self.watching = True
                threading.Thread(
                    target=self._watch, name=f"evstore-sqlite-watch-{self.path}", daemon=True
                ).start()
            try:
                self.cond.wait_for(lambda: self.generation != generation, timeout)
            finally:
                self.waiters -= 1

    def _watch(self) -> None:
        try:
            db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            with self.cond:
                self.watching = False  # waiters fall back to their timeout
            return
        try:
            pragma = "PRAGMA data_version"
            (last,) = db.execute(pragma).fetchone()
            # A commit between a waiter's look at the head and this first reading would go
            # unnoticed: wake the waiters once, so they look again.
            self.notify()
            idle_since = time.monotonic()
            while True:
                with self.cond:
                    if self.waiters:
                        idle_since = time.monotonic()
                    elif time.monotonic() - idle_since > self.LINGER:
                        self.watching = False  # stays on between a subscriber's waits
                        return
                time.sleep(self.WATCH_INTERVAL)
                (version,) = db.execute(pragma).fetchone()
                if version != last:
                    last = version
                    self.notify()
        except sqlite3.Error:
            with self.cond:
                self.watching = False
        finally:
            db.close()


def _error_map(path: str, busy_timeout: float) -> ErrorMap:
    """SQLite's errors as evstore errors: the one translation table of this backend."""

    def operational(e: sqlite3.OperationalError) -> EvstoreError:
        if "locked" in str(e) or "busy" in str(e):
            return BackendUnavailable(
                f"SQLite database {path} stayed locked for {busy_timeout}s; "
                "another process holds a long write transaction"
            )
        return BackendUnavailable(f"SQLite error on {path}: {e}")

    def database(e: sqlite3.DatabaseError) -> EvstoreError:
        if "not a database" in str(e):
            return InvalidInput(f"{path} is not an evstore database ({e})")
        return BackendUnavailable(f"SQLite error on {path}: {e}")

    return ErrorMap({sqlite3.OperationalError: operational, sqlite3.DatabaseError: database})


# A projection waits at most this long for writers of other connections to get in before
# it takes the write lock for its next batch (then it competes like any writer).
_GATE_WAIT = 1.0


class _Connection(sqlite3.Connection):
    """A connection with its own descriptor of the writers' gate file (-1: no gate)."""

    gate: int = -1


class _Pending:
    """One append waiting in a group: its arguments, then its result or error."""

    __slots__ = ("done", "error", "events", "expected", "lead", "placement", "result", "stream_id")

    def __init__(
        self,
        stream_id: str,
        events: Sequence[PendingEvent],
        expected: ExpectedVersion,
        placement: Placement,
    ) -> None:
        self.stream_id = stream_id
        self.events = events
        self.expected = expected
        self.placement = placement
        self.result: AppendResult | None = None
        self.error: BaseException | None = None
        self.done: Any = None  # a held lock, released when the append's group is written
        self.lead = False


class _Group:
    """Group commit: appends that arrive while a group is being written form the next one.

    The first caller to find no writer at work becomes the leader: it takes every append
    queued so far (its own included), writes them, hands out the results, and passes the
    lead to the oldest append queued meanwhile. A lone writer is its own group of one and
    waits for nobody.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: list[_Pending] = []
        self._busy = False
        self.groups = 0  # groups written (for tests and stats)

    def submit(self, item: _Pending, run: Callable[[list[_Pending]], None]) -> AppendResult:
        with self._lock:
            leader = not self._busy
            if leader:
                self._busy = True
            else:
                item.done = _allocate_lock()
                item.done.acquire()
            self._queue.append(item)
        if not leader:
            item.done.acquire()  # released by the leader that wrote it, or to lead
        if leader or item.lead:
            self._lead(run)
        if item.error is not None:
            raise item.error
        assert item.result is not None
        return item.result

    def _lead(self, run: Callable[[list[_Pending]], None]) -> None:
        with self._lock:
            group, self._queue = self._queue, []
            self.groups += 1
        try:
            run(group)
        finally:
            with self._lock:
                successor = self._queue[0] if self._queue else None
                if successor is None:
                    self._busy = False
                else:
                    successor.lead = True
            for item in group:
                if item.done is not None:
                    item.done.release()
            if successor is not None:
                successor.done.release()


class SQLiteBackend(
    EventLog,
    SnapshotStore,
    TransactionalCheckpoints,
    DeadLetterStore,
    Operations,
    PartitionedLog,
    TruncatableLog,
    CheckpointedAppends,
):
    """Events in a SQLite file in WAL mode, shared safely by threads and processes."""

    def __init__(
        self,
        path: str,
        *,
        synchronous: str = "FULL",
        busy_timeout: float = 30.0,
        group_commit: str = "on",
        partitions: int | None = None,
    ) -> None:
        if synchronous.upper() not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise InvalidInput(f"synchronous must be OFF, NORMAL, FULL or EXTRA, not {synchronous}")
        if group_commit not in ("on", "off", "always"):
            raise InvalidInput(f"group_commit must be on, off or always, not {group_commit!r}")
        self._group_commit = group_commit
        self._group = _Group()
        self.group_commit_observer: Callable[[int], None] | None = None
        """Called with the size of each group of appends written (set by the store)."""
        self._path = os.path.abspath(path)
        self._synchronous = synchronous.upper()
        self._busy_timeout = float(busy_timeout)
        self._errors = _error_map(self._path, self._busy_timeout)
        self._idle: list[_Connection] = []
        self._all: list[_Connection] = []
        self._lock = threading.Lock()
        self._closed = False
        self._wakeup = _Wakeup.for_path(self._path)
        self.log_partitions = 1
        with self._errors, self._connection() as db:
            self._create_schema(db, partitions)

    # -- connections -----------------------------------------------------------------------

    def _open(self) -> _Connection:
        db = sqlite3.connect(
            self._path,
            timeout=self._busy_timeout,
            isolation_level=None,
            check_same_thread=False,
            factory=_Connection,
        )
        db.execute(f"PRAGMA synchronous={self._synchronous}")
        if fcntl is not None:
            with contextlib.suppress(OSError):  # a read-only directory: no gate
                db.gate = os.open(f"{self._path}-writers", os.O_RDWR | os.O_CREAT, 0o666)
        return db

    @contextlib.contextmanager
    def _connection(self) -> Iterator[_Connection]:
        if self._closed:
            raise BackendUnavailable("the store is closed")
        with self._lock:
            db = self._idle.pop() if self._idle else None
        if db is None:
            db = self._open()
            with self._lock:
                self._all.append(db)
        try:
            yield db
        finally:
            if db.in_transaction:
                db.rollback()
            with self._lock:
                closed = self._closed
                if not closed:
                    self._idle.append(db)
            if closed:  # close() left this connection to its user: closing it under a
                db.close()  # running statement crashes the sqlite3 module

    @contextlib.contextmanager
    def _write(self, *, batch: bool = False) -> Iterator[sqlite3.Connection]:
        """One ``BEGIN IMMEDIATE`` transaction, committed at the end.

        The writers' gate: SQLite's busy handler polls (sleeping up to 100 ms between
        tries), so a projection that commits a batch and at once begins the next takes the
        write lock again before a waiting writer wakes, and writers of other processes
        starved for as long as a catch-up lasted. Every write therefore holds a shared
        ``flock`` on ``<file>-writers`` while it waits for and holds the write lock, and a
        projection's batch (``batch=True``) first waits, up to ``_GATE_WAIT``, until no
        writer holds it: a waiting writer gets in between two batches.
        """
        with self._errors, self._connection() as db:
            if batch:
                if db.gate >= 0:
                    _let_writers_in(db.gate)
                gate: contextlib.AbstractContextManager[None] = contextlib.nullcontext()
            else:
                gate = _writing(db)
            with gate:
                db.execute("BEGIN IMMEDIATE")
                yield db
                if db.in_transaction:
                    db.execute("COMMIT")

    @contextlib.contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        with self._errors, self._connection() as db:
            yield db

    def _use_wal(self, db: sqlite3.Connection) -> None:
        """Switch a fresh file to WAL. Connections opening the same new file at once race
        for the switch, and the loser's SQLITE_BUSY does not wait in the busy handler: it
        retries until ``busy_timeout``."""
        deadline = time.monotonic() + self._busy_timeout
        while db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            try:
                db.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.005)

    def _create_schema(self, db: sqlite3.Connection, partitions: int | None) -> None:
        self._use_wal(db)
        # Statement by statement inside one BEGIN IMMEDIATE: executescript() would commit
        # first and drop the lock, letting two processes create the same tables.
        db.execute("BEGIN IMMEDIATE")
        (version,) = db.execute("PRAGMA user_version").fetchone()
        if version > SCHEMA_VERSION:
            raise BackendUnavailable(
                f"{self._path} has schema version {version}, newer than this evstore "
                f"({SCHEMA_VERSION}); upgrade evstore"
            )
        if version == 0:
            self._check_foreign(db)
        migrations = {0: _SCHEMA + _SCHEMA_2, 1: _SCHEMA_2 + _SCHEMA_3, 2: _SCHEMA_3}
        if version in migrations:
            rebuilt = version in (1, 2)
            if rebuilt:
                # The rebuilt table must go on counting from the old counter, which can be
                # above every stored position (hard-deleted events are never reused).
                counter = self._head(db)
                db.create_function("evstore_uuid_blob", 1, _uuid_blob, deterministic=True)
            for statement in _statements(migrations[version]):
                db.execute(statement)
            if rebuilt and counter:
                db.execute("DELETE FROM sqlite_sequence WHERE name = 'events'")
                db.execute(
                    "INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?)", (counter,)
                )
            db.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
        if version == 0 and partitions is not None and partitions > 1:
            for statement in _statements(_PARTITIONS_SCHEMA):
                db.execute(statement)
            db.execute("INSERT INTO store_meta VALUES ('partitions', ?)", (str(partitions),))
            db.executemany(
                "INSERT INTO partition_heads (part, head) VALUES (?, 0)",
                [(j,) for j in range(partitions)],
            )
        stored = self._stored_partitions(db)
        if partitions is not None and partitions != stored:
            db.execute("ROLLBACK")
            raise InvalidInput(
                f"{self._path} was created with partitions={stored}, not {partitions}: the "
                "number of log partitions is fixed when a store is created (copy the events "
                "into a new store to change it)"
            )
        self.log_partitions = stored
        if stored == 1:
            db.execute(_TAGS_SCHEMA)
        db.execute("COMMIT")

    @staticmethod
    def _stored_partitions(db: sqlite3.Connection) -> int:
        has_meta = db.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'store_meta'"
        ).fetchone()
        if has_meta is None:
            return 1
        row = db.execute("SELECT value FROM store_meta WHERE key = 'partitions'").fetchone()
        return 1 if row is None else int(row[0])

    def _check_foreign(self, db: sqlite3.Connection) -> None:
        """Refuse to add evstore's tables to a database another application made."""
        names = [
            name
            for (name,) in db.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
            )
        ]
        if names and "events" not in names:
            db.execute("ROLLBACK")
            raise InvalidInput(
                f"{self._path} is not an evstore database (it has other tables: "
                f"{', '.join(sorted(names)[:5])}); use a new file for evstore"
            )

    # -- streams ---------------------------------------------------------------------------

    @staticmethod
    def _state(db: sqlite3.Connection, stream_id: str) -> tuple[int, bool]:
        """(last version ever stored, whether readers see events); raises if tombstoned."""
        deleted = db.execute(
            "SELECT last_version, tombstoned FROM deleted_streams WHERE stream_id = ?",
            (stream_id,),
        ).fetchone()
        if deleted is not None and deleted[1]:
            raise StreamDeleted(stream_id)
        (last,) = db.execute(
            "SELECT coalesce(max(version), 0) FROM events WHERE stream_id = ?", (stream_id,)
        ).fetchone()
        if deleted is None:
            return last, last > 0
        return max(last, deleted[0]), last > deleted[0]

    def append(
        self,
        stream_id: str,
        events: Sequence[PendingEvent],
        expected: ExpectedVersion,
        placement: Placement,
    ) -> AppendResult:
        if self._group_commit == "off":
            return self._append_alone(stream_id, events, expected, placement)
        return self._group.submit(_Pending(stream_id, events, expected, placement), self._run_group)

    def _run_group(self, group: list[_Pending]) -> None:
        """Write a group of appends: alone the direct way, together in one transaction.

        Each append runs inside its own savepoint, so its expected-version check sees the
        appends before it in the group, and a conflict, a duplicate event id or a deleted
        stream rolls back that append alone. One COMMIT (one flush) makes them all
        durable; only then are results handed out. If the transaction itself fails, every
        append of the group gets that error and none is written.
        """
        if self.group_commit_observer is not None:
            self.group_commit_observer(len(group))
        if len(group) == 1 and self._group_commit != "always":
            only = group[0]
            try:
                only.result = self._append_alone(
                    only.stream_id, only.events, only.expected, only.placement
                )
            except BaseException as e:
                only.error = e
            return
        try:
            with self._write() as db:
                for item in group:
                    db.execute("SAVEPOINT evstore_append")
                    try:
                        item.result = self._append_in(
                            db, item.stream_id, item.events, item.expected, item.placement
                        )
                    except (EvstoreError, sqlite3.IntegrityError) as e:
                        # This append's own failure (conflict, duplicate id, deleted stream).
                        item.error = self._errors.translate(e)
                        db.execute("ROLLBACK TO evstore_append")
                    db.execute("RELEASE evstore_append")
        except BaseException as e:
            for item in group:
                item.result, item.error = None, e
            return
        self._wakeup.notify()

    def _append_alone(
        self,
        stream_id: str,
        events: Sequence[PendingEvent],
        expected: ExpectedVersion,
        placement: Placement,
    ) -> AppendResult:
        if (
            len(events) == 1
            and _FAST_APPEND
            and self.log_partitions == 1
            and not tags_of(events[0])
        ):
            result = self._append_one(stream_id, events[0], expected, placement)
            if result is not None:
                return result
        with self._write() as db:
            db.execute("SAVEPOINT evstore_append")
            try:
                result = self._append_in(db, stream_id, events, expected, placement)
            except BaseException:
                db.execute("ROLLBACK")
                raise
        self._wakeup.notify()
        return result

    def _append_in(
        self,
        db: sqlite3.Connection,
        stream_id: str,
        events: Sequence[PendingEvent],
        expected: ExpectedVersion,
        placement: Placement,
    ) -> AppendResult:
        """Append inside the caller's transaction and savepoint ``evstore_append``.

        A repeat of a stored append returns its original result having written nothing
        (the savepoint is rolled back); errors leave the rollback to the caller.
        """
        try:
            return self._insert(db, stream_id, events, expected, placement)
        except (ConcurrencyError, sqlite3.IntegrityError):
            # A repeat of a stored append fails the version check or the event_id
            # index; only then is it worth looking the ids up.
            db.execute("ROLLBACK TO evstore_append")
            stored = self._stored(db, events)
            if not stored:
                raise
            return replayed_result(stream_id, events, expected, stored)

    def _insert(
        self,
        db: sqlite3.Connection,
        stream_id: str,
        events: Sequence[PendingEvent],
        expected: ExpectedVersion,
        placement: Placement,
    ) -> AppendResult:
        """Check the stream's version and store ``events`` (the caller holds the lock)."""
        last, visible = self._state(db, stream_id)
        check_expected(stream_id, expected, last, visible)
        now = _to_us(datetime.now(UTC))
        db.executemany(
            "INSERT INTO events (stream_id, version, event_id, type, data, metadata, "
            "schema_version, occurred_at, recorded_at, category, partition_key, "
            "partition_hash) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(stream_id, last + i, *_columns(e, placement, now)) for i, e in enumerate(events, 1)],
        )
        (end,) = db.execute("SELECT last_insert_rowid()").fetchone()
        n = len(events)
        if self.log_partitions > 1:
            positions = self._log_in_partition(db, placement.log_partition, end, n)
            return AppendResult(last + n, positions, placement.log_partition)
        tagged = [(tag, end - n + i) for i, e in enumerate(events, 1) for tag in tags_of(e)]
        if tagged:
            db.executemany("INSERT INTO event_tags (tag, position) VALUES (?, ?)", tagged)
        return AppendResult(last + n, tuple(range(end - n + 1, end + 1)))

    def append_many(self, appends: Sequence[PendingAppend]) -> list[AppendResult]:
        """One ``BEGIN IMMEDIATE`` transaction for every part (across log partitions too:
        the write lock covers the whole file)."""
        with self._write() as db:
            results = self._append_many_in(db, appends)
        self._wakeup.notify()
        return results

    def _append_many_in(
        self, db: sqlite3.Connection, appends: Sequence[PendingAppend]
    ) -> list[AppendResult]:
        """Every part inside the caller's transaction, or none (savepoint ``evstore_many``)."""
        db.execute("SAVEPOINT evstore_many")
        try:
            results = [self._insert(db, *a) for a in appends]
        except (ConcurrencyError, sqlite3.IntegrityError):
            db.execute("ROLLBACK TO evstore_many")
            stored = self._stored(db, [e for a in appends for e in a.events])
            if not stored:
                raise
            results = replayed_results(appends, stored)
        except BaseException:
            db.execute("ROLLBACK TO evstore_many")
            raise
        db.execute("RELEASE evstore_many")
        return results

    @staticmethod
    def _log_in_partition(db: sqlite3.Connection, part: int, end: int, n: int) -> tuple[int, ...]:
        """Give the rows ``end - n + 1 .. end`` the next positions of ``part`` (under the
        write lock, so positions are handed out in commit order)."""
        db.execute("UPDATE partition_heads SET head = head + ? WHERE part = ?", (n, part))
        (head,) = db.execute("SELECT head FROM partition_heads WHERE part = ?", (part,)).fetchone()
        positions = tuple(range(head - n + 1, head + 1))
        db.executemany(
            "INSERT INTO partition_log (part, position, event_rowid) VALUES (?, ?, ?)",
            [(part, p, end - n + 1 + i) for i, p in enumerate(positions)],
        )
        return positions

    def _append_one(
        self, stream_id: str, e: PendingEvent, expected: ExpectedVersion, placement: Placement
    ) -> AppendResult | None:
        """The common case in one autocommit statement, or None to take the full path.

        The version check is part of the INSERT, which SQLite runs atomically under its
        write lock. It only covers streams never deleted; whenever it inserts nothing (a
        version mismatch, a deleted stream, a repeated event id) the full transactional
        path runs and gives the exact answer (error or idempotent repeat).
        """
        mode, number = _fast_mode(expected)
        with self._errors, self._connection() as db, _writing(db):
            try:
                row = db.execute(
                    _APPEND_ONE,
                    (
                        stream_id,
                        *_columns(e, placement, _to_us(datetime.now(UTC))),
                        stream_id,
                        stream_id,
                        mode,
                        number,
                    ),
                ).fetchone()
            except sqlite3.IntegrityError:
                return None
        if row is None:
            return None
        self._wakeup.notify()
        return AppendResult(row[0], (row[1],))

    def _stored(self, db: sqlite3.Connection, events: Sequence[PendingEvent]) -> list[EventRecord]:
        ids = [_uuid_blob(e.event_id) for e in events]
        found: list[EventRecord] = []
        partitioned = self.log_partitions > 1
        select = (
            f"SELECT {_P_COLUMNS} FROM {_P_FROM} WHERE e."
            if partitioned
            else (f"SELECT {_COLUMNS} FROM events WHERE ")
        )
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            rows = db.execute(
                f"{select}event_id IN ({','.join('?' * len(chunk))})", chunk
            ).fetchall()
            found.extend((_p_record if partitioned else _record)(r) for r in rows)
        return found

    def read_stream(
        self,
        stream_id: str,
        from_version: int,
        to_version: int | None,
        limit: int | None,
        backwards: bool,
    ) -> list[EventRecord]:
        with self._read() as db:
            db.execute("BEGIN")
            deleted = db.execute(
                "SELECT last_version, tombstoned FROM deleted_streams WHERE stream_id = ?",
                (stream_id,),
            ).fetchone()
            if deleted is not None:
                if deleted[1]:
                    raise StreamDeleted(stream_id)
                from_version = max(from_version, deleted[0] + 1)
            partitioned = self.log_partitions > 1
            source = (
                f"SELECT {_P_COLUMNS} FROM {_P_FROM} WHERE e."
                if partitioned
                else (f"SELECT {_COLUMNS} FROM events WHERE ")
            )
            rows = db.execute(
                f"{source}stream_id = ? AND version >= ? "
                f"AND version <= ? ORDER BY version {'DESC' if backwards else 'ASC'} LIMIT ?",
                (
                    stream_id,
                    from_version,
                    2**62 if to_version is None else to_version,
                    -1 if limit is None else limit,
                ),
            ).fetchall()
            db.execute("COMMIT")
        return [(_p_record if partitioned else _record)(r) for r in rows]

    def read_partition(self, partition: int, after: int, limit: int, where: LogFilter) -> LogPage:
        sql = [
            f"SELECT {_P_COLUMNS} FROM {_P_FROM} WHERE l.part = ? AND l.position > ? "
            "AND l.position <= ?"
        ]
        params: list[Any] = [partition, after]
        _filter_sql(where, "e.", sql, params)
        sql.append("ORDER BY l.position LIMIT ?")
        with self._read() as db:
            db.execute("BEGIN")
            (head,) = db.execute(
                "SELECT head FROM partition_heads WHERE part = ?", (partition,)
            ).fetchone()
            params.insert(2, head)
            rows = db.execute(" ".join(sql), [*params, limit]).fetchall()
            db.execute("COMMIT")
        events = [_p_record(r) for r in rows]
        return LogPage(events, events[-1].position if len(events) == limit else head)

    def partition_heads(self) -> list[int]:
        if self.log_partitions == 1:
            return [self.head_position()]
        with self._read() as db:
            rows = db.execute("SELECT head FROM partition_heads ORDER BY part").fetchall()
        return [int(r[0]) for r in rows]

    def read_all(self, after: int, limit: int, where: LogFilter) -> LogPage:
        if self.log_partitions > 1:
            raise InvalidInput("a store of several log partitions is read one partition at a time")
        sql = [f"SELECT {_COLUMNS} FROM events WHERE position > ? AND position <= ?"]
        params: list[Any] = [after]
        _filter_sql(where, "", sql, params)
        sql.append("ORDER BY position LIMIT ?")
        with self._read() as db:
            db.execute("BEGIN")
            head = self._head(db)
            params.insert(1, head)
            rows = db.execute(" ".join(sql), [*params, limit]).fetchall()
            db.execute("COMMIT")
        events = [_record(r) for r in rows]
        return LogPage(events, events[-1].position if len(events) == limit else head)

    # -- dynamic consistency boundaries (TaggedLog) -----------------------------------------

    supports_tags = True
    max_name_bytes = 65_535  # TEXT keys have no limit of their own (long ones overflow pages)

    def read_tagged(self, query: TagQuery, after: int, limit: int) -> LogPage:
        where, params = _tag_sql(query, after)
        with self._read() as db:
            db.execute("BEGIN")
            head = self._head(db)
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM events WHERE position > ? AND position <= ? AND "
                f"{where} ORDER BY position LIMIT ?",
                [after, head, *params, limit],
            ).fetchall()
            db.execute("COMMIT")
        events = [_record(r) for r in rows]
        return LogPage(events, events[-1].position if len(events) == limit else head)

    def append_unless(
        self,
        stream_id: str,
        events: Sequence[PendingEvent],
        expected: ExpectedVersion,
        placement: Placement,
        query: TagQuery,
        after: int,
    ) -> AppendResult:
        # Under the write lock (BEGIN IMMEDIATE) no other append can come in between the
        # check and the insert: racing conditional appends are serialised by SQLite.
        where, params = _tag_sql(query, after)
        with self._write() as db:
            db.execute("SAVEPOINT evstore_append")
            try:
                if not self._stored(db, events):
                    row = db.execute(
                        f"SELECT position FROM events WHERE position > ? AND {where} "
                        "ORDER BY position LIMIT 1",
                        [after, *params],
                    ).fetchone()
                    if row is not None:
                        raise AppendConditionFailed(stream_id, after, int(row[0]))
                result = self._append_in(db, stream_id, events, expected, placement)
            except BaseException:
                db.execute("ROLLBACK")
                raise
        self._wakeup.notify()
        return result

    def _head(self, db: sqlite3.Connection) -> int:
        if self.log_partitions > 1:  # the sum of the partition heads (see PartitionedLog)
            return int(db.execute("SELECT sum(head) FROM partition_heads").fetchone()[0])
        row = db.execute("SELECT seq FROM sqlite_sequence WHERE name = 'events'").fetchone()
        return 0 if row is None else int(row[0])

    def stream_version(self, stream_id: str) -> int:
        with self._read() as db:
            db.execute("BEGIN")
            last, visible = self._state(db, stream_id)
            db.execute("COMMIT")
        return last if visible else 0

    def head_position(self) -> int:
        with self._read() as db:
            return self._head(db)

    # -- snapshots -------------------------------------------------------------------------

    def get_snapshot(self, stream_id: str) -> SnapshotRecord | None:
        with self._read() as db:
            db.execute("BEGIN")
            self._state(db, stream_id)
            row = db.execute(
                "SELECT stream_id, version, data, schema_version, taken_at FROM snapshots "
                "WHERE stream_id = ?",
                (stream_id,),
            ).fetchone()
            db.execute("COMMIT")
        if row is None:
            return None
        return SnapshotRecord(row[0], row[1], row[2], row[3], _from_us(row[4]))

    def save_snapshot(self, snapshot: SnapshotRecord) -> None:
        with self._write() as db:
            self._state(db, snapshot.stream_id)
            db.execute(
                "INSERT INTO snapshots (stream_id, version, data, schema_version, taken_at) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (stream_id) DO UPDATE SET "
                "version = excluded.version, data = excluded.data, "
                "schema_version = excluded.schema_version, taken_at = excluded.taken_at "
                "WHERE excluded.version >= snapshots.version",
                (
                    snapshot.stream_id,
                    snapshot.version,
                    snapshot.data,
                    snapshot.schema_version,
                    _to_us(snapshot.taken_at),
                ),
            )

    def delete_stream(self, stream_id: str, hard: bool, expected: ExpectedVersion) -> None:
        with self._write() as db:
            last, visible = self._state(db, stream_id)
            check_expected(stream_id, expected, last, visible)
            if not hard and not visible:
                raise StreamNotFound(stream_id)
            db.execute("DELETE FROM snapshots WHERE stream_id = ?", (stream_id,))
            if hard:
                if self.log_partitions > 1:
                    db.execute(
                        "DELETE FROM partition_log WHERE event_rowid IN "
                        "(SELECT position FROM events WHERE stream_id = ?)",
                        (stream_id,),
                    )
                db.execute("DELETE FROM events WHERE stream_id = ?", (stream_id,))
            db.execute(
                "INSERT OR REPLACE INTO deleted_streams (stream_id, last_version, tombstoned) "
                "VALUES (?, ?, ?)",
                (stream_id, last, int(hard)),
            )

    def truncate_stream(self, stream_id: str, before: int) -> int:
        with self._write() as db:
            try:
                last, _ = self._state(db, stream_id)
            except StreamDeleted:
                return 0
            args = (stream_id, before)
            if before - 1 >= last:  # cut to the end: hidden, as soft-deleted through it
                db.execute(
                    "INSERT OR REPLACE INTO deleted_streams (stream_id, last_version, "
                    "tombstoned) VALUES (?, ?, 0)",
                    (stream_id, before - 1),
                )
            if self.log_partitions > 1:
                db.execute(
                    "DELETE FROM partition_log WHERE event_rowid IN "
                    "(SELECT position FROM events WHERE stream_id = ? AND version < ?)",
                    args,
                )
            cur = db.execute("DELETE FROM events WHERE stream_id = ? AND version < ?", args)
            return cur.rowcount

    # -- checkpoints and waiting -----------------------------------------------------------

    def get_checkpoint(self, name: str) -> int | None:
        with self._read() as db:
            row = db.execute("SELECT position FROM checkpoints WHERE name = ?", (name,)).fetchone()
        return None if row is None else int(row[0])

    def set_checkpoint(self, name: str, position: int) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO checkpoints (name, position) VALUES (?, ?)",
                (name, position),
            )

    def set_checkpoints(self, positions: dict[str, int]) -> None:
        with self._write() as db:
            db.executemany(
                "INSERT OR REPLACE INTO checkpoints (name, position) VALUES (?, ?)",
                list(positions.items()),
            )

    def list_checkpoints(self) -> dict[str, int]:
        with self._read() as db:
            rows = db.execute("SELECT name, position FROM checkpoints ORDER BY name").fetchall()
        return {str(name): int(position) for name, position in rows}

    def compare_and_set_checkpoint(self, name: str, expected: int | None, position: int) -> bool:
        with self._write() as db:  # the write lock before the read: one writer compares
            row = db.execute("SELECT position FROM checkpoints WHERE name = ?", (name,)).fetchone()
            if (None if row is None else int(row[0])) != expected:
                return False
            db.execute(
                "INSERT OR REPLACE INTO checkpoints (name, position) VALUES (?, ?)",
                (name, position),
            )
        return True

    def delete_checkpoint(self, name: str) -> bool:
        with self._write() as db:
            cursor = db.execute("DELETE FROM checkpoints WHERE name = ?", (name,))
            return cursor.rowcount > 0

    def run_with_checkpoint(
        self, name: str, expected: int | None, position: int, work: Callable[[Any], Any]
    ) -> bool:
        """Run ``work(connection)`` and move checkpoint ``name`` in one transaction.

        The write lock (``BEGIN IMMEDIATE``) is taken before the checkpoint is compared, so
        two instances of one projection cannot both apply the same events.
        """
        return self._checkpointed(name, expected, position, work, emits=False) is not None

    def append_with_checkpoint(
        self, name: str, expected: int | None, position: int, work: Callable[[Any], Any]
    ) -> list[AppendResult] | None:
        """``run_with_checkpoint`` whose ``work`` returns appends for the same transaction."""
        return self._checkpointed(name, expected, position, work, emits=True)

    def _checkpointed(
        self,
        name: str,
        expected: int | None,
        position: int,
        work: Callable[[Any], Any],
        *,
        emits: bool,
    ) -> list[AppendResult] | None:
        failure: BaseException | None = None
        results: list[AppendResult] = []
        with self._write(batch=True) as db:
            row = db.execute("SELECT position FROM checkpoints WHERE name = ?", (name,)).fetchone()
            if (None if row is None else int(row[0])) != expected:
                db.execute("ROLLBACK")
                return None
            try:
                appends = work(db)
                if not db.in_transaction:
                    raise InvalidInput(
                        f"projection {name!r}: the handler ended the transaction; it must "
                        "not commit or roll back the connection it is given"
                    )
            except BaseException as e:
                # The caller's error (its own SQL included) goes back unchanged, not
                # translated like a failure of the store's statements.
                failure = e
                if db.in_transaction:
                    db.execute("ROLLBACK")
            else:
                if emits and appends:
                    results = self._append_many_in(db, appends)
                db.execute(
                    "INSERT OR REPLACE INTO checkpoints (name, position) VALUES (?, ?)",
                    (name, position),
                )
        if failure is not None:
            raise failure
        if results:
            self._wakeup.notify()
        return results

    # -- dead letters ----------------------------------------------------------------------

    def park(self, letter: DeadLetter) -> None:
        with self._write() as db:
            db.execute(
                "INSERT OR REPLACE INTO dead_letters (name, position, stream_id, version, type, "
                "event_id, error, attempts, parked_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (*letter[:8], _to_us(letter.parked_at)),
            )

    def dead_letters(self, name: str, after: int, limit: int) -> list[DeadLetter]:
        with self._read() as db:
            rows = db.execute(
                "SELECT name, position, stream_id, version, type, event_id, error, attempts, "
                "parked_at FROM dead_letters WHERE name = ? AND position > ? "
                "ORDER BY position LIMIT ?",
                (name, after, limit),
            ).fetchall()
        return [
            DeadLetter(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], _from_us(r[8])) for r in rows
        ]

    def unpark(self, name: str, position: int) -> bool:
        with self._write() as db:
            cursor = db.execute(
                "DELETE FROM dead_letters WHERE name = ? AND position = ?", (name, position)
            )
            return cursor.rowcount > 0

    def wait_for_events(self, after: int, timeout: float) -> None:
        wakeup = self._wakeup
        with wakeup.cond:
            generation = wakeup.generation
        if self.head_position() > after:
            return
        wakeup.wait(generation, timeout)

    # -- operations ------------------------------------------------------------------------

    def list_streams(self, after: str | None, limit: int) -> list[StreamSummary]:
        with self._read() as db:
            rows = db.execute(
                "SELECT s.stream_id, max(coalesce(e.v, 0), coalesce(d.last_version, 0)), "
                "d.tombstoned, coalesce(e.v, 0) > coalesce(d.last_version, 0) FROM ("
                "  SELECT stream_id FROM events WHERE stream_id > ? GROUP BY stream_id"
                "  UNION SELECT stream_id FROM deleted_streams WHERE stream_id > ?"
                ") s LEFT JOIN (SELECT stream_id, max(version) v FROM events GROUP BY stream_id)"
                " e ON e.stream_id = s.stream_id "
                "LEFT JOIN deleted_streams d ON d.stream_id = s.stream_id "
                "ORDER BY s.stream_id LIMIT ?",
                (after or "", after or "", limit),
            ).fetchall()
        return [
            StreamSummary(sid, version, "tombstoned" if tomb else "live" if visible else "deleted")
            for sid, version, tomb, visible in rows
        ]

    def stats(self) -> dict[str, int]:
        with self._read() as db:
            db.execute("BEGIN")
            events = db.execute("SELECT count(*) FROM events").fetchone()[0]
            streams = db.execute(  # live streams: visible events (see Operations.stats)
                "SELECT count(*) FROM (SELECT stream_id, max(version) v FROM events"
                " GROUP BY stream_id) e LEFT JOIN deleted_streams d USING (stream_id)"
                " WHERE e.v > coalesce(d.last_version, 0)"
            ).fetchone()[0]
            snapshots = db.execute("SELECT count(*) FROM snapshots").fetchone()[0]
            checkpoints = db.execute("SELECT count(*) FROM checkpoints").fetchone()[0]
            head = self._head(db)
            db.execute("COMMIT")
        return {
            "events": events,
            "streams": streams,
            "snapshots": snapshots,
            "checkpoints": checkpoints,
            "head_position": head,
        }

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conns, self._all, self._idle = self._idle, [], []
        for db in conns:  # connections in use are closed when their user gives them back
            db.close()
            if db.gate >= 0:
                os.close(db.gate)


@contextlib.contextmanager
def _writing(db: _Connection) -> Iterator[None]:
    """Hold the writers' gate (shared) while waiting for and holding the write lock."""
    if db.gate < 0:
        yield
        return
    fcntl.flock(db.gate, fcntl.LOCK_SH)
    try:
        yield
    finally:
        fcntl.flock(db.gate, fcntl.LOCK_UN)


def _let_writers_in(gate: int) -> None:
    """Wait (at most ``_GATE_WAIT``) until no writer holds the gate, without holding it."""
    deadline = time.monotonic() + _GATE_WAIT
    while True:
        try:
            fcntl.flock(gate, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() > deadline:
                return
            time.sleep(0.001)
            continue
        fcntl.flock(gate, fcntl.LOCK_UN)
        return


def parse_url(url: str) -> tuple[str, dict[str, str]]:
    """Split ``sqlite:///path.db?opt=v`` into the file path and its options."""
    parts = urlsplit(url)
    path = parts.path
    if path.startswith("/") and not path.startswith("//"):
        path = path[1:]  # sqlite:///rel.db -> rel.db ; sqlite:////abs.db -> /abs.db
    elif path.startswith("//"):
        path = path[1:]
    if parts.netloc:
        raise InvalidInput(
            f"{url!r}: write sqlite:///relative.db or sqlite:////absolute/path.db (three or "
            "four slashes)"
        )
    if path in ("", ":memory:"):
        if path == ":memory:":
            raise InvalidInput("use memory:// for an in-memory store")
        path = DEFAULT_PATH
    return path, dict(parse_qsl(parts.query))


def open_backend(url: str, **options: Any) -> SQLiteBackend:
    """Open ``sqlite:///path.db``; options ``synchronous``, ``busy_timeout``, ``group_commit``
    and ``partitions`` (the number of log partitions of a new store)."""
    path, query = parse_url(url)
    merged: dict[str, Any] = {**query, **options}
    unknown = set(merged) - {"synchronous", "busy_timeout", "group_commit", "partitions"}
    if unknown:
        raise InvalidInput(
            f"unknown SQLite options {sorted(unknown)}; use synchronous, busy_timeout, "
            "group_commit, partitions"
        )
    merged["partitions"] = partitions_option(merged.get("partitions"))
    if "busy_timeout" in merged:
        try:
            merged["busy_timeout"] = float(merged["busy_timeout"])
        except ValueError:
            raise InvalidInput("busy_timeout must be a number of seconds") from None
    return SQLiteBackend(path, **merged)
