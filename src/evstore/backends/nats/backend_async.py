"""The NATS JetStream backend, on nats-py's asyncio client (the one source).

nats-py has no blocking client, so the sync face (``backend.py``) is not generated from
this file: it runs this very class on an event loop of its own (see there). The mapping of
names, subjects and bodies is in ``_mapping.py``.

Positions - the JetStream sequence of the log stream. JetStream numbers messages as it
stores them, one after another, so a reader that has seen position ``n`` can never later
find a new message below ``n``: the log has no "in flight" holes to wait for. Delete
markers and purged (hard-deleted) events leave gaps, which readers skip.

Versions - dense per stream, kept in the ``Evs-V`` header. An append reads the stream's
last message (events and markers, one direct get), computes ``last + 1 ...`` and publishes
with ``Nats-Expected-Last-Subject-Sequence`` = the sequence it read, on the subject
``N.p.*.token`` (``...-Subject`` header): the server stores the append only if nothing
was stored for the stream meanwhile. Every append is guarded this way, also with
``expected_version=ANY`` (which just re-reads and retries on a clash), so two appends can
never take the same version.

Atomicity - one event is one publish; more are an ADR-50 atomic batch (``Nats-Batch-Id``,
``-Sequence``, ``-Commit``): the server stores all of them or none, at consecutive
sequences, checking the expectation (carried by the first message) at commit. At most
1,000 events per append (the server's batch limit); larger appends raise ``InvalidInput``.

Idempotency - ``Nats-Msg-Id`` = the event id, so within the stream's duplicate window
(``duplicate_window``, 2 minutes by default) the server refuses to store an id twice. On a
single replica the server checks the expectation *before* de-duplication, so a clash on
the expectation first re-reads the stream and matches the ids: if the append is already
there, the original result is returned (``replayed_result``). Past the window a repeat at
the same place is still recognised (by re-reading the stream) when ``expected_version``
is a number; an id reused in *another* stream is only refused inside the window.

Reads - batch direct gets (``$JS.API.DIRECT.GET.<stream>`` with ``next_by_subj`` and
``batch``), answered by any replica. Read-your-writes: every answer that must include what
this process has written (stream reads, the log up to a head) is checked against the
highest sequence this backend has seen acknowledged; a replica that is behind is asked
again (or the leader is asked, through ``$JS.API.STREAM.MSG.GET``).

Transient failures (no responders while a leader is elected, timeouts, reconnects) are
retried for up to ``retry_timeout`` seconds; an append whose outcome was lost is retried
as a whole, which is safe because it is idempotent (see above).
"""

# async_to_sync: no sync twin (nats-py is asyncio only; see backend.py)
from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, TypeVar

import nats
import nats.errors
import orjson
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js.api import KeyValueConfig, StorageType, StreamConfig

from evstore import _aio
from evstore._types import AppendResult, ExpectedVersion
from evstore.backends.nats import _mapping as m
from evstore.errors import (
    BackendUnavailable,
    ConcurrencyError,
    DuplicateEventId,
    EvstoreError,
    InvalidInput,
    SerializationError,
    StreamDeleted,
    StreamNotFound,
)
from evstore.spi._errormap import ErrorMap
from evstore.spi._model import (
    DeadLetter,
    EventRecord,
    LogFilter,
    LogPage,
    PendingAppend,
    PendingEvent,
    Placement,
    SnapshotRecord,
    StreamSummary,
    check_expected,
    replayed_result,
    replayed_results,
    stable_hash,
)
from evstore.spi.backend_async import (
    AsyncCheckpointStore,
    AsyncDeadLetterStore,
    AsyncEventLog,
    AsyncOperations,
    AsyncPartitionedLog,
    AsyncSnapshotStore,
    AsyncTruncatableLog,
)

log = logging.getLogger("evstore.nats")

T = TypeVar("T")

WRONG_LAST_SEQUENCE = {10071, 10164}  # "wrong last sequence" (with, without the number)
BATCH_DUPLICATE = 10201
STREAM_NOT_FOUND = 10059
PARTITIONS_KEY = "evstore_partitions"  # in the metadata of stream N-log-0: the store's P
PAGE = 256  # messages per batch direct get
_TRANSIENT_CODES = {503, 408}
# cluster unavailable, no suitable peers (yet), leader gone, batch abandoned, and "duplicate
# message id is in process" (a replicated stream still storing another publish of the same
# event id: asked again, the answer is the duplicate, i.e. the original result)
_TRANSIENT_ERR_CODES = {10008, 10005, 10076, 10077, 10176, 10158}


class _ServerError(Exception):
    """An error answer of the JetStream API (``{"error": {...}}``)."""

    def __init__(self, code: int, err_code: int, description: str) -> None:
        super().__init__(f"{description} (code {code}, err_code {err_code})")
        self.code = code
        self.err_code = err_code
        self.description = description

    @property
    def transient(self) -> bool:
        return self.code in _TRANSIENT_CODES or self.err_code in _TRANSIENT_ERR_CODES


class _Retry(Exception):
    """The operation must start again (a transient failure)."""


_TRANSIENT: tuple[type[BaseException], ...] = (
    nats.errors.TimeoutError,
    nats.errors.NoRespondersError,
    nats.errors.ConnectionReconnectingError,
    nats.errors.StaleConnectionError,
    nats.errors.ConnectionClosedError,
    nats.errors.OutboundBufferLimitError,
    asyncio.TimeoutError,
    _Retry,
)

_FAILURES: tuple[type[BaseException], ...] = (*_TRANSIENT, nats.errors.Error, _ServerError, OSError)


def _error_map(servers: Sequence[str]) -> ErrorMap:
    """nats-py's errors as evstore errors: the one translation table of this backend."""

    def unavailable(e: BaseException) -> EvstoreError:
        return BackendUnavailable(f"NATS JetStream ({', '.join(servers)}): {e}")

    table: dict[type[BaseException], Callable[[Any], BaseException | None]] = dict.fromkeys(
        _FAILURES, unavailable
    )
    table[nats.errors.MaxPayloadError] = lambda e: InvalidInput(
        f"too large for one NATS message: {e}"
    )
    return ErrorMap(table)


@dataclass(frozen=True, slots=True)
class _State:
    """A stream as its last message (event or marker) describes it."""

    sequence: int  # of that message; 0 = nothing stored for the stream
    last: int  # the last version ever stored
    hidden: int  # versions <= hidden are soft-deleted
    tombstoned: bool
    batch: tuple[int, int] | None = None  # the atomic batch of that message, if any

    @property
    def visible(self) -> bool:
        return self.last > self.hidden


_NONE = _State(0, 0, 0, False)


def _status(msg: Msg) -> str | None:
    headers = msg.headers
    return None if headers is None else headers.get("Status")


class AsyncNatsBackend(
    AsyncEventLog,
    AsyncSnapshotStore,
    AsyncCheckpointStore,
    AsyncDeadLetterStore,
    AsyncOperations,
    AsyncTruncatableLog,
    AsyncPartitionedLog,
):
    """Streams, the global log, snapshots and checkpoints in NATS JetStream.

    ``partitions``: the store's log partitions, one JetStream stream each; None opens an
    existing store with the count it records (see :meth:`open`; 1 for a new store).
    """

    # A stream id becomes one subject token (3 characters a byte outside [A-Za-z0-9_-]):
    # 1,020 bytes (255 four-byte characters) is the length tested to fit a subject.
    max_name_bytes = 1_020

    def __init__(
        self,
        servers: list[str],
        name: str,
        *,
        partitions: int | None = None,
        replicas: int = 1,
        duplicate_window: float = 120.0,
        retry_timeout: float = 30.0,
        request_timeout: float = 5.0,
        connect_options: dict[str, Any] | None = None,
    ) -> None:
        self._servers = servers
        self._error_map = _error_map(servers)
        self._requested = partitions
        self.log_partitions = partitions or 1
        self.names = m.Names(name, self.log_partitions)
        self._placement_of: Callable[[str], Placement] | None = None
        self._replicas = replicas
        self._duplicate_window = duplicate_window
        self._retry_timeout = retry_timeout
        self._timeout = request_timeout
        self._connect_options = connect_options or {}
        self._nc: Client | None = None
        self._ready = False
        self._setup_lock: asyncio.Lock | None = None
        self._closed = False
        self._changed = _aio.Event()
        self._wakeups: Subscription | None = None
        self.last_client_error: Exception | None = None
        """The last connection error nats-py reported (it reconnects by itself)."""

    # -- connection, set-up and the error boundary -----------------------------------------

    @contextlib.asynccontextmanager
    async def _errors(self) -> AsyncIterator[None]:
        """The one place where client errors become evstore errors."""
        if self._closed:
            raise BackendUnavailable("the store is closed")
        with self._error_map:
            if not self._ready:
                await self._setup()
            yield

    async def _setup(self) -> None:
        if self._setup_lock is None:
            self._setup_lock = asyncio.Lock()
        async with self._setup_lock:
            if self._ready:
                return
            if self._nc is None:
                try:
                    # Reconnect for ever once connected (failovers); the first connection
                    # is bounded by retry_timeout.
                    self._nc = await asyncio.wait_for(
                        nats.connect(
                            servers=self._servers,
                            connect_timeout=self._timeout,
                            allow_reconnect=True,
                            max_reconnect_attempts=-1,
                            reconnect_time_wait=0.25,
                            **{
                                "error_cb": self._client_error,
                                "disconnected_cb": self._disconnected,
                                "reconnected_cb": self._reconnected,
                                **self._connect_options,
                            },
                        ),
                        self._retry_timeout,
                    )
                except (TimeoutError, nats.errors.NoServersError, OSError) as e:
                    raise BackendUnavailable(
                        f"no NATS server answers at {', '.join(self._servers)} "
                        f"within {self._retry_timeout}s: {self.last_client_error or e}"
                    ) from e
            info = await self._retrying(self._log_info)
            created = info is None
            if info is None:
                await self._retrying(self._create_streams)
                info = await self._retrying(self._created_info)
            self._record_partitions(info)
            # The store may have been created by another client with other replicas (the
            # option only applies at creation): reads follow what the stream really has.
            self._replicas = int(info["config"].get("num_replicas", 1))
            await self._retrying(self._create_buckets)
            if created and self._replicas > 1 and self.log_partitions > 1:
                await self._retrying(self._spread_leaders)
            self._ready = True

    async def open(self) -> int:
        """Connect, create the store if it is new, and return its number of partitions.

        Raises ``InvalidInput`` when ``partitions`` was given and the store records another
        count, ``BackendUnavailable`` when no server answers within ``retry_timeout``.
        """
        async with self._errors():
            return self.log_partitions

    @property
    def event_ids_unique_in(self) -> str:
        """Where an event id stored twice is refused: ``"store"`` with one partition,
        ``"partition"`` with several (each JetStream stream de-duplicates its own ids; a
        global index of ids would put every append through one place again)."""
        return "store" if self.log_partitions == 1 else "partition"

    def locate_with(self, placement_of: Callable[[str], Placement]) -> None:
        """Find streams known only by their id where the store would place them.

        The store calls this with its own placement (its partitioning strategy): reads,
        deletes and snapshots get only a stream id, and a stream's log partition is a
        function of that id, so it is computed, never looked up.
        """
        self._placement_of = placement_of

    async def _log_info(self) -> dict[str, Any] | None:
        """``STREAM.INFO`` of partition 0's stream (which records P), None if none."""
        try:
            # On a cluster the question about a stream that does not exist yet sometimes
            # goes unanswered (seen: 1 in 8 new stores waited out a 5 s timeout): ask
            # again soon rather than wait request_timeout.
            return await self._api(
                f"STREAM.INFO.{self.names.logs[0]}", timeout=min(self._timeout, 1.0)
            )
        except _ServerError as e:
            if e.err_code == STREAM_NOT_FOUND:
                return None
            raise

    async def _created_info(self) -> dict[str, Any]:
        # A cluster node may answer before it has applied the creation: ask again.
        info = await self._log_info()
        if info is None:
            raise _Retry(f"stream {self.names.logs[0]} not visible yet")
        return info

    def _record_partitions(self, info: dict[str, Any]) -> None:
        metadata = info["config"].get("metadata") or {}
        recorded = int(metadata.get(PARTITIONS_KEY, "1"))
        if self._requested is not None and self._requested != recorded:
            raise InvalidInput(
                f"NATS store {self.names.name!r} was created with partitions={recorded}, not "
                f"{self._requested}: the number of log partitions is fixed when a store is "
                "created"
            )
        if recorded != self.log_partitions:
            self.log_partitions = recorded
            self.names = m.Names(self.names.name, recorded)

    async def _create_streams(self) -> None:
        js = self._client().jetstream(timeout=self._timeout)

        async def create(p: int) -> None:
            await self._ensure(
                js.add_stream(
                    StreamConfig(
                        name=self.names.logs[p],
                        subjects=[self.names.log_subjects(p)],
                        storage=StorageType.FILE,
                        num_replicas=self._replicas,
                        duplicate_window=self._duplicate_window,
                        allow_direct=True,
                        allow_atomic=True,
                        deny_delete=True,
                        deny_purge=False,  # a hard delete purges the stream's subject
                        metadata={PARTITIONS_KEY: str(self.log_partitions)} if p == 0 else None,
                    )
                )
            )

        # The other partitions' streams together (each is a round trip through the
        # cluster's meta leader), then partition 0's, which records P: a client that finds
        # it finds every other partition's stream too.
        await asyncio.gather(*(create(p) for p in range(1, self.log_partitions)))
        await create(0)

    async def _spread_leaders(self) -> None:
        """Give partition ``j``'s stream the leader ``nodes[j % len(nodes)]``.

        Each partition's appends go through its stream's Raft leader, so leaders on
        different nodes spread the write load. The server picks leaders when it creates the
        streams; a leader stepdown naming a ``preferred`` server (nats-server 2.11+) moves
        the ones that are not where this rule puts them. Then waits until every stream has
        a leader again. Best effort: a stream whose move is refused keeps its leader.
        """
        logs = self.names.logs
        infos = await asyncio.gather(*(self._api(f"STREAM.INFO.{log}") for log in logs))
        peers = [_peers(info) for info in infos]
        nodes = sorted(set().union(*peers))
        moved: list[str] = []
        for j, (log, info) in enumerate(zip(logs, infos, strict=True)):
            target = nodes[j % len(nodes)]
            if _leader(info) != target and target in peers[j]:
                with contextlib.suppress(_ServerError):
                    await self._api(
                        f"STREAM.LEADER.STEPDOWN.{log}", {"placement": {"preferred": target}}
                    )
                    moved.append(log)
        deadline = time.monotonic() + self._retry_timeout
        while moved and time.monotonic() < deadline:
            infos = await asyncio.gather(*(self._api(f"STREAM.INFO.{log}") for log in moved))
            moved = [log for log, i in zip(moved, infos, strict=True) if not _leader(i)]
            if moved:
                await _aio.sleep(0.05)

    async def leaders(self) -> list[str | None]:
        """The server name of each partition's stream leader (None: no leader now)."""
        async with self._errors():
            infos = await self._retrying(
                lambda: asyncio.gather(
                    *(self._api(f"STREAM.INFO.{log}") for log in self.names.logs)
                )
            )
        return [_leader(info) for info in infos]

    async def _create_buckets(self) -> None:
        js = self._client().jetstream(timeout=self._timeout)
        buckets = (self.names.snapshots, self.names.checkpoints, self.names.dead_letters)
        await asyncio.gather(
            *(
                self._ensure(
                    js.create_key_value(
                        KeyValueConfig(
                            bucket=bucket,
                            history=1,
                            storage=StorageType.FILE,
                            replicas=self._replicas,
                            direct=True,
                        )
                    )
                )
                for bucket in buckets
            )
        )

    @staticmethod
    async def _ensure(creation: Awaitable[Any]) -> None:
        try:
            await creation
        except nats.js.errors.APIError as e:
            if e.err_code == 10058:  # exists with another configuration: use it as it is
                return
            if e.err_code in _TRANSIENT_ERR_CODES or e.code in _TRANSIENT_CODES:
                # e.g. "no suitable peers for placement" while a cluster is still forming
                raise _ServerError(e.code or 0, e.err_code or 0, e.description or "") from e
            raise

    def _client(self) -> Client:
        if self._nc is None:
            raise BackendUnavailable("not connected")
        return self._nc

    async def _retrying(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run ``operation``, again after transient failures, for ``retry_timeout`` seconds."""
        deadline = time.monotonic() + self._retry_timeout
        delay = 0.01
        while True:
            try:
                return await operation()
            except _ServerError as e:
                if not e.transient or time.monotonic() > deadline:
                    raise
            except _TRANSIENT:
                if time.monotonic() > deadline:
                    raise
            await _aio.sleep(delay * random.uniform(0.5, 1.5))
            delay = min(delay * 2, 0.5)

    async def _client_error(self, error: Exception) -> None:
        """nats-py reports connection trouble here (it reconnects by itself)."""
        self.last_client_error = error

    async def _disconnected(self) -> None:
        if not self._closed:
            log.warning("%s: connection lost; reconnecting", ", ".join(self._servers))

    async def _reconnected(self) -> None:
        where = self._nc.connected_url if self._nc is not None else None
        log.info("%s: reconnected (to %s)", ", ".join(self._servers), where and where.netloc)

    # -- requests --------------------------------------------------------------------------

    async def _request(
        self,
        subject: str,
        payload: bytes = b"",
        headers: dict[str, str] | None = None,
        timeout: float | None = None,
    ) -> Msg:
        return await self._client().request(
            subject, payload, timeout=timeout or self._timeout, headers=headers
        )

    async def _api(
        self, subject: str, request: dict[str, Any] | None = None, timeout: float | None = None
    ) -> dict[str, Any]:
        """A JetStream API call; error answers raise ``_ServerError``."""
        body = b"" if request is None else orjson.dumps(request)
        reply = await self._request(f"$JS.API.{subject}", body, timeout=timeout)
        return _answer(reply)

    async def _direct_get(self, stream: str, request: dict[str, Any]) -> Msg | None:
        reply = await self._request(f"$JS.API.DIRECT.GET.{stream}", orjson.dumps(request))
        status = _status(reply)
        if status == "404":
            return None
        if status is not None:
            raise _Retry(f"direct get answered {status}")
        return reply

    async def _batch_get(self, stream: str, request: dict[str, Any]) -> tuple[list[Msg], int]:
        """A batch direct get: the messages and the stream's last sequence (from the end
        of batch marker, or 0 when the server does not say)."""
        nc = self._client()
        inbox = nc.new_inbox()
        sub = await nc.subscribe(inbox)
        out: list[Msg] = []
        try:
            await nc.publish(f"$JS.API.DIRECT.GET.{stream}", orjson.dumps(request), reply=inbox)
            while True:
                msg = await sub.next_msg(self._timeout)
                status = _status(msg)
                if status is None:
                    out.append(msg)
                    continue
                if status in ("204", "404"):
                    return out, 0
                raise _Retry(f"batch direct get answered {status}")
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def _publish(self, subject: str, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
        """One publish with a pub ack; an error answer raises ``_ServerError``."""
        return _answer(await self._request(subject, body, headers))

    async def _all_of(self, stream: str, subject: str) -> AsyncIterator[Msg]:
        """Every message on ``subject``: by batch direct gets on one server, from the
        leader one by one with replicas (small sets only: dead letters)."""
        seq = 1
        while True:
            if self._replicas == 1:
                msgs, _ = await self._batch_get(
                    stream, {"seq": seq, "next_by_subj": subject, "batch": PAGE}
                )
            else:
                one = await self._leader_get(stream, {"seq": seq, "next_by_subj": subject})
                msgs = [] if one is None else [one]
            for msg in msgs:
                yield msg
            if not msgs or (self._replicas == 1 and len(msgs) < PAGE):
                return
            seq = int((msgs[-1].headers or {})["Nats-Sequence"]) + 1

    # -- stream state ----------------------------------------------------------------------

    async def _state(self, p: int, token: str, stream_id: str) -> _State:
        msg = await self._last(self.names.logs[p], self.names.any_of(p, token))
        if msg is None:
            return _NONE
        h = msg.headers or {}
        if not h.get(m.VERSION, "").isdigit():
            raise SerializationError(
                f"stream {stream_id!r}: its last message (position {h.get('Nats-Sequence')}) "
                "was not written by evstore; it cannot be appended to or read"
            )
        state = _State(
            int(h["Nats-Sequence"]),
            int(h[m.VERSION]),
            int(h.get(m.HIDDEN, "0")),
            h.get(m.KIND) == "tombstone",
            m.batch_span(h, int(h["Nats-Sequence"])),
        )
        if state.tombstoned:
            raise StreamDeleted(stream_id)
        return state

    async def _last(self, stream: str, subject: str) -> Msg | None:
        """The last message on ``subject``, never older than an acknowledged write.

        With replicas, any replica answers a direct get and one that lags would return an
        older message (measured: 80-165 of 2,000 reads right after an ack); so the leader
        answers instead (``STREAM.MSG.GET``). A single server is always current.
        """
        if self._replicas == 1:
            return await self._direct_get(stream, {"last_by_subj": subject})
        return await self._leader_get(stream, {"last_by_subj": subject})

    async def _leader_get(self, stream: str, request: dict[str, Any]) -> Msg | None:
        """One message, answered by the stream's leader (``None``: no such message)."""
        try:
            answer = await self._api(f"STREAM.MSG.GET.{stream}", request)
        except _ServerError as e:
            if e.code == 404:
                return None
            raise
        return _stored_message(answer["message"])

    def _where(self, partition_hash: int, stream_id: str) -> tuple[int, str]:
        return self.names.partition_of(partition_hash), m.encode_token(stream_id)

    def _locate(self, stream_id: str) -> tuple[int, str]:
        """The partition of a stream known only by its id: where the store places it (see
        :meth:`locate_with`), else by the stable hash of the id (no partitioning strategy)."""
        if self.log_partitions == 1:
            return 0, m.encode_token(stream_id)
        if self._placement_of is not None:
            return self._placement_of(stream_id).log_partition, m.encode_token(stream_id)
        return self._where(stable_hash(stream_id), stream_id)

    # -- appends ---------------------------------------------------------------------------

    async def append(
        self,
        stream_id: str,
        events: Sequence[PendingEvent],
        expected: ExpectedVersion,
        placement: Placement,
    ) -> AppendResult:
        if len(events) > m.MAX_BATCH:
            raise InvalidInput(
                f"at most {m.MAX_BATCH} events per append on NATS (one atomic batch), "
                f"got {len(events)}; nothing was written"
            )
        p, token = self._where(placement.partition_hash, stream_id)
        now = m.to_us(datetime.now(UTC))
        bodies = [
            m.event_body(e, placement.category, placement.partition_hash, now) for e in events
        ]

        async def attempt() -> AppendResult:
            state = await self._state(p, token, stream_id)
            limit = self._client().max_payload - 1024  # room for the headers
            for i, body in enumerate(bodies):
                if len(body) > limit:
                    raise InvalidInput(
                        f"events[{i}] is {len(body)} bytes encoded; the NATS server takes "
                        f"messages of at most {limit} (max_payload); nothing was written"
                    )
            try:
                check_expected(stream_id, expected, state.last, state.visible)
            except ConcurrencyError:
                stored = await self._stored(p, token, stream_id, events, state)
                if stored:
                    return replayed_result(stream_id, events, expected, stored)
                raise
            try:
                ack = await self._append_messages(p, token, events, bodies, state)
            except _ServerError as e:
                if e.err_code in WRONG_LAST_SEQUENCE:
                    raise _Retry("the stream moved meanwhile") from e  # re-read, check again
                if e.err_code == BATCH_DUPLICATE:
                    return await self._replay(p, token, stream_id, events, expected)
                raise
            sequence = int(ack["seq"])
            if ack.get("duplicate"):
                # One event whose id the server has stored (within the duplicate window).
                record = await self._record_at(p, sequence)
                if record is None:
                    raise DuplicateEventId(events[0].event_id, "stored, then hard-deleted")
                return replayed_result(stream_id, events, expected, [record])
            n = len(events)
            return AppendResult(state.last + n, tuple(range(sequence - n + 1, sequence + 1)), p)

        async with self._errors():
            return await self._retrying(attempt)

    async def _append_messages(
        self,
        p: int,
        token: str,
        events: Sequence[PendingEvent],
        bodies: list[bytes],
        state: _State,
    ) -> dict[str, Any]:
        return await self._send(self._messages(p, token, events, bodies, state))

    def _messages(
        self,
        p: int,
        token: str,
        events: Sequence[PendingEvent],
        bodies: list[bytes],
        state: _State,
    ) -> list[tuple[str, bytes, dict[str, str]]]:
        """One stream's messages; the first carries the expectation on the stream's last
        sequence, which the server checks when it stores (or commits) them."""
        subject = self.names.events(p, token)
        out = []
        for i, (event, body) in enumerate(zip(events, bodies, strict=True), start=1):
            headers = m.event_headers(event.event_id, state.last + i, state.hidden)
            if i == 1:
                headers[m.EXPECTED_SEQ] = str(state.sequence)
                headers[m.EXPECTED_SUBJECT] = self.names.any_of(p, token)
            out.append((subject, body, headers))
        return out

    async def _send(self, messages: list[tuple[str, bytes, dict[str, str]]]) -> dict[str, Any]:
        """Publish ``messages`` as one message, or as one ADR-50 atomic batch."""
        if len(messages) == 1:
            return await self._publish(*messages[0])
        nc = self._client()
        batch = uuid.uuid4().hex
        last = len(messages)
        for i, (subject, body, own) in enumerate(messages, start=1):
            headers = {**own, m.BATCH_ID: batch, m.BATCH_SEQ: str(i), m.BATCH_SIZE: str(last)}
            if i == 1:
                reply = await self._request(subject, body, headers)
                if reply.data:  # an error; the empty reply means "batch started"
                    _answer(reply)
            elif i < last:
                await nc.publish(subject, body, headers=headers)
            else:
                headers[m.BATCH_COMMIT] = "1"
                return await self._publish(subject, body, headers)
        raise AssertionError("unreachable")

    async def append_many(self, appends: Sequence[PendingAppend]) -> list[AppendResult]:
        """One ADR-50 atomic batch over the streams' subjects of one JetStream stream, each
        stream's first message carrying the expectation on that stream's last sequence:
        the server stores every message or none. The streams must share a log partition
        (one JetStream stream each); this is checked before anything is sent."""
        total = sum(len(a.events) for a in appends)
        if total > m.MAX_BATCH:
            raise InvalidInput(
                f"at most {m.MAX_BATCH} events per append on NATS (one atomic batch), "
                f"got {total}; nothing was written"
            )
        where = [self._where(a.placement.partition_hash, a.stream_id) for a in appends]
        if len({p for p, _ in where}) > 1:
            raise InvalidInput(
                "append_many on NATS: the streams are in different log partitions (JetStream "
                "streams), and an atomic batch stays within one; nothing was written"
            )
        p = where[0][0]
        now = m.to_us(datetime.now(UTC))
        bodies = [
            [
                m.event_body(e, a.placement.category, a.placement.partition_hash, now)
                for e in a.events
            ]
            for a in appends
        ]

        async def stored(states: list[_State] | None = None) -> list[EventRecord]:
            found: list[EventRecord] = []
            for i, (a, (_, token)) in enumerate(zip(appends, where, strict=True)):
                state = None if states is None else states[i]
                found += await self._stored(p, token, a.stream_id, a.events, state)
            return found

        async def attempt() -> list[AppendResult]:
            states = [await self._state(p, token, a.stream_id) for a, (_, token) in zip(
                appends, where, strict=True)]  # fmt: skip
            limit = self._client().max_payload - 1024  # room for the headers
            for i, body in enumerate(b for part in bodies for b in part):
                if len(body) > limit:
                    raise InvalidInput(
                        f"event {i} of the call is {len(body)} bytes encoded; the NATS server "
                        f"takes messages of at most {limit} (max_payload); nothing was written"
                    )
            try:
                for a, state in zip(appends, states, strict=True):
                    check_expected(a.stream_id, a.expected, state.last, state.visible)
            except ConcurrencyError:
                found = await stored(states)
                if found:
                    return replayed_results(appends, found)
                raise
            messages = [
                message
                for a, (_, token), part, state in zip(appends, where, bodies, states, strict=True)
                for message in self._messages(p, token, a.events, part, state)
            ]
            try:
                ack = await self._send(messages)
            except _ServerError as e:
                if e.err_code in WRONG_LAST_SEQUENCE:
                    raise _Retry("a stream moved meanwhile") from e  # re-read, check again
                if e.err_code == BATCH_DUPLICATE:
                    found = await stored()
                    if found:
                        return replayed_results(appends, found)
                    raise DuplicateEventId(
                        appends[0].events[0].event_id,
                        "an event id of this append is stored elsewhere (JetStream refused "
                        "it as a duplicate)",
                    ) from None
                raise
            if ack.get("duplicate"):  # one event, whose id the server has stored
                record = await self._record_at(p, int(ack["seq"]))
                if record is None:
                    raise DuplicateEventId(messages[0][2][m.MSG_ID], "stored, then hard-deleted")
                return replayed_results(appends, [record])
            sequence = int(ack["seq"]) - total
            results = []
            for a, state in zip(appends, states, strict=True):
                n = len(a.events)
                positions = tuple(range(sequence + 1, sequence + n + 1))
                results.append(AppendResult(state.last + n, positions, p))
                sequence += n
            return results

        async with self._errors():
            return await self._retrying(attempt)

    async def _replay(
        self,
        p: int,
        token: str,
        stream_id: str,
        events: Sequence[PendingEvent],
        expected: ExpectedVersion,
    ) -> AppendResult:
        """A batch with an id the server has stored: the original result, or the error."""
        stored = await self._stored(p, token, stream_id, events)
        if stored:
            return replayed_result(stream_id, events, expected, stored)
        raise DuplicateEventId(
            events[0].event_id,
            "an event id of this append is stored in another stream (JetStream refused it "
            "as a duplicate)",
        )

    async def _stored(
        self,
        p: int,
        token: str,
        stream_id: str,
        events: Sequence[PendingEvent],
        state: _State | None = None,
    ) -> list[EventRecord]:
        """The records of ``stream_id`` whose ids are among ``events``' (a full scan of it)."""
        if state is None:
            state = await self._state(p, token, stream_id)
        ids = {e.event_id for e in events}
        if state.last == 0:
            return []
        # From the first version stored: a truncated stream (scavenge) starts later.
        first = await self._direct_get(
            self.names.logs[p], {"seq": 1, "next_by_subj": self.names.events(p, token)}
        )
        if first is None:
            return []
        low = int((first.headers or {})[m.VERSION])
        records = await self._scan(p, token, stream_id, low, state.last, state.sequence)
        return [r for r in records if r.event_id in ids]

    async def _record_at(self, p: int, sequence: int) -> EventRecord | None:
        msg = await self._direct_get(self.names.logs[p], {"seq": sequence})
        if msg is None:
            return None
        return self._parse(msg).record

    def _parse(self, msg: Msg) -> m.Parsed:
        h = msg.headers or {}
        subject = h["Nats-Subject"]
        stream_id = m.decode_token(self.names.token_of(subject))
        partition = self.names.partition_in(subject)
        return m.parse_event(stream_id, int(h["Nats-Sequence"]), h, msg.data, partition)

    async def _scan(
        self, p: int, token: str, stream_id: str, low: int, high: int, until: int = 0
    ) -> list[EventRecord]:
        """The events of one stream with ``low <= version <= high`` (all stored: versions
        are dense), ascending; ``until`` is a sequence at or after the last of them."""
        out: list[EventRecord] = []
        subject = self.names.events(p, token)
        seq = await self._seek(p, subject, low, until) if low > 1 and until else 1
        while True:
            want = min(PAGE, high - low + 1 - len(out))
            msgs, _ = await self._batch_get(
                self.names.logs[p], {"seq": seq, "next_by_subj": subject, "batch": want}
            )
            for msg in msgs:
                h = msg.headers or {}
                version = int(h[m.VERSION])
                if version < low:
                    continue
                sequence = int(h["Nats-Sequence"])
                out.append(m.parse_event(stream_id, sequence, h, msg.data, p).record)
                if version >= high:
                    break
            if out and out[-1].version >= high:
                break
            if len(msgs) < want:
                break
            seq = int((msgs[-1].headers or {})["Nats-Sequence"]) + 1
        if [r.version for r in out] != list(range(low, high + 1)):
            # Versions are dense and the stream's state (read from the leader) says they
            # are stored: the replica that answered is behind (read-your-writes); again.
            raise _Retry("a replica answered from behind")
        return out

    async def _seek(self, p: int, subject: str, version: int, until: int) -> int:
        """A sequence from which the next message on ``subject`` is at most ``version``
        back: a binary search over sequences (``until`` bounds it), ~log2(log) gets."""
        lo, hi = 1, until
        log = self.names.logs[p]
        while lo < hi:
            mid = (lo + hi) // 2
            msg = await self._direct_get(log, {"seq": mid, "next_by_subj": subject})
            if msg is None:
                hi = mid
                continue
            h = msg.headers or {}
            if int(h[m.VERSION]) >= version:
                hi = mid
            else:
                lo = int(h["Nats-Sequence"]) + 1
        return lo

    # -- reads -----------------------------------------------------------------------------

    async def read_stream(
        self,
        stream_id: str,
        from_version: int,
        to_version: int | None,
        limit: int | None,
        backwards: bool,
    ) -> list[EventRecord]:
        p, token = self._locate(stream_id)

        async def read() -> list[EventRecord]:
            state = await self._state(p, token, stream_id)
            low = max(from_version, state.hidden + 1)
            high = state.last if to_version is None else min(to_version, state.last)
            if state.sequence == 0 or low > high:
                return []
            cut = None
            if state.batch is not None and state.batch[1] > state.sequence:
                # The stream's last events are in an atomic batch that the server is still
                # storing (its last message is not there yet): they are not visible yet.
                first, end = state.batch
                if await self._head(p) < end:
                    cut = first
            if limit is not None and cut is None:  # versions are dense: read just those
                if backwards:
                    low = max(low, high - limit + 1)
                else:
                    high = min(high, low + limit - 1)
            records = await self._scan(p, token, stream_id, low, high, state.sequence)
            if cut is not None:
                records = [r for r in records if r.position < cut]
            if backwards:
                records.reverse()
            return records if limit is None else records[:limit]

        async with self._errors():
            return await self._retrying(read)

    async def read_all(self, after: int, limit: int, where: LogFilter) -> LogPage:
        if self.log_partitions > 1:
            raise InvalidInput("a store of several log partitions is read one partition at a time")
        return await self.read_partition(0, after, limit, where)

    async def read_partition(
        self, partition: int, after: int, limit: int, where: LogFilter
    ) -> LogPage:
        p = partition
        log, wanted = self.names.logs[p], self.names.all_events(p)

        async def read() -> LogPage:
            head = await self._head(p)  # from the leader: everything up to it is stored
            out: list[EventRecord] = []
            cut = head + 1  # events from here on are in a batch not wholly stored yet

            def take(msg: Msg) -> bool:
                """Keep ``msg`` if it passes; whether the page is full."""
                nonlocal cut
                parsed = self._parse(msg)
                record = parsed.record
                span = m.batch_span(msg.headers or {}, record.position)
                if span is not None and span[1] > head:
                    cut = min(cut, span[0])
                if where.accepts(
                    record.type, record.stream_id, parsed.category, parsed.partition_hash
                ):
                    out.append(record)
                return len(out) == limit

            def page(scanned_to: int) -> LogPage:
                """The page, without the events of a batch the server is still storing."""
                if cut > head:
                    return LogPage(out, scanned_to)
                return LogPage([r for r in out if r.position < cut], max(after, cut - 1))

            seq = after + 1
            while seq <= head:
                want = min(PAGE, head - seq + 1)
                msgs, _ = await self._batch_get(
                    log, {"seq": seq, "next_by_subj": wanted, "batch": want}
                )
                for msg in msgs:
                    position = int((msg.headers or {})["Nats-Sequence"])
                    if position > head:
                        return page(head)
                    if take(msg):
                        return page(position)
                    seq = position + 1
                if len(msgs) == want:
                    continue
                # Fewer than asked: the rest up to the head are markers or purged events -
                # or the replica that answered is behind. One server is never behind; with
                # replicas the leader says which (read-your-writes, nothing skipped).
                if self._replicas == 1:
                    break
                confirmed = await self._leader_get(log, {"seq": seq, "next_by_subj": wanted})
                if confirmed is None:
                    break
                position = int((confirmed.headers or {})["Nats-Sequence"])
                if position > head:
                    break
                if take(confirmed):
                    return page(position)
                seq = position + 1
            return page(head)

        async with self._errors():
            return await self._retrying(read)

    async def _head(self, p: int) -> int:
        info = await self._api(f"STREAM.INFO.{self.names.logs[p]}")
        last = int(info["state"]["last_seq"])
        return last

    async def stream_version(self, stream_id: str) -> int:
        p, token = self._locate(stream_id)
        async with self._errors():
            state = await self._retrying(lambda: self._state(p, token, stream_id))
        return state.last if state.visible else 0

    async def head_position(self) -> int:
        return sum(await self.partition_heads())

    async def partition_heads(self) -> list[int]:
        async with self._errors():
            return await self._retrying(self._heads)

    async def _heads(self) -> list[int]:
        if self.log_partitions == 1:
            return [await self._head(0)]
        return list(await asyncio.gather(*(self._head(p) for p in range(self.log_partitions))))

    # -- deletes ---------------------------------------------------------------------------

    async def delete_stream(self, stream_id: str, hard: bool, expected: ExpectedVersion) -> None:
        p, token = self._locate(stream_id)

        async def delete() -> None:
            try:
                state = await self._state(p, token, stream_id)
            except StreamDeleted:
                await self._purge_events(p, token)  # finish a hard delete cut short
                raise
            check_expected(stream_id, expected, state.last, state.visible)
            if not hard and not state.visible:
                raise StreamNotFound(stream_id)
            headers = {
                m.VERSION: str(state.last),
                m.HIDDEN: str(state.last),
                m.KIND: "tombstone" if hard else "deleted",
                m.EXPECTED_SEQ: str(state.sequence),
                m.EXPECTED_SUBJECT: self.names.any_of(p, token),
            }
            try:
                await self._publish(self.names.markers(p, token), b"", headers)
            except _ServerError as e:
                if e.err_code in WRONG_LAST_SEQUENCE:
                    raise _Retry("the stream moved meanwhile") from e
                raise
            await self._purge_key(self.names.snapshots, token)
            if hard:
                await self._purge_events(p, token)

        async with self._errors():
            await self._retrying(delete)

    async def truncate_stream(self, stream_id: str, before: int) -> int:
        """JetStream's own primitive: a purge of the stream's subject below a sequence.

        First a marker that hides versions below ``before`` (readers then start there, as
        after a soft delete; it is guarded like an append), then ``STREAM.PURGE`` with
        ``filter`` = the stream's events subject and ``seq`` = the sequence of version
        ``before``: messages of that subject below it go, later appends (higher sequences)
        cannot be touched. ``keep`` would count from the newest message, which a
        concurrent append moves, so it is not used.
        """
        p, token = self._locate(stream_id)

        async def cut() -> int:
            try:
                state = await self._state(p, token, stream_id)
            except StreamDeleted:
                return 0
            if before <= 1:
                return 0
            to_end = before - 1 >= state.last  # then hidden, as soft-deleted through it
            if before - 1 > state.hidden:
                headers = {
                    m.VERSION: str(max(state.last, before - 1)),
                    m.HIDDEN: str(before - 1),
                    m.KIND: "deleted" if to_end else "truncated",
                    m.EXPECTED_SEQ: str(state.sequence),
                    m.EXPECTED_SUBJECT: self.names.any_of(p, token),
                }
                try:
                    await self._publish(self.names.markers(p, token), b"", headers)
                except _ServerError as e:
                    if e.err_code in WRONG_LAST_SEQUENCE:
                        raise _Retry("the stream moved meanwhile") from e
                    raise
                state = await self._state(p, token, stream_id)
            purge: dict[str, Any] = {"filter": self.names.events(p, token)}
            if not to_end:
                kept = await self._scan(p, token, stream_id, before, before, state.sequence)
                purge["seq"] = kept[0].position
            answer = await self._api(f"STREAM.PURGE.{self.names.logs[p]}", purge)
            return int(answer.get("purged", 0))

        async with self._errors():
            return await self._retrying(cut)

    async def _purge_events(self, p: int, token: str) -> None:
        await self._api(
            f"STREAM.PURGE.{self.names.logs[p]}", {"filter": self.names.events(p, token)}
        )

    async def _purge_key(self, bucket: str, key: str) -> None:
        await self._api(f"STREAM.PURGE.KV_{bucket}", {"filter": f"$KV.{bucket}.{key}"})

    # -- snapshots (KV bucket N-snapshots, compare-and-set) -------------------------------

    async def get_snapshot(self, stream_id: str) -> SnapshotRecord | None:
        p, token = self._locate(stream_id)

        async def get() -> SnapshotRecord | None:
            await self._state(p, token, stream_id)
            msg = await self._kv_get(self.names.snapshots, token)
            return None if msg is None else m.parse_snapshot(stream_id, msg.data)

        async with self._errors():
            return await self._retrying(get)

    async def save_snapshot(self, snapshot: SnapshotRecord) -> None:
        stream_id = snapshot.stream_id
        p, token = self._locate(stream_id)
        bucket = self.names.snapshots
        body = m.snapshot_body(snapshot)

        async def save() -> None:
            await self._state(p, token, stream_id)
            current = await self._kv_get(bucket, token)
            if current is not None and m.snapshot_version(current.data) > snapshot.version:
                return
            revision = 0 if current is None else int((current.headers or {})["Nats-Sequence"])
            try:
                await self._publish(f"$KV.{bucket}.{token}", body, {m.EXPECTED_SEQ: str(revision)})
            except _ServerError as e:
                if e.err_code in WRONG_LAST_SEQUENCE:
                    raise _Retry("another snapshot was saved meanwhile") from e
                raise

        async with self._errors():
            await self._retrying(save)

    async def _kv_get(self, bucket: str, key: str) -> Msg | None:
        msg = await self._last(f"KV_{bucket}", f"$KV.{bucket}.{key}")
        if msg is None or (msg.headers or {}).get("KV-Operation") in ("DEL", "PURGE"):
            return None
        return msg

    # -- checkpoints and dead letters (KV buckets) -----------------------------------------

    async def get_checkpoint(self, name: str) -> int | None:
        async with self._errors():
            msg = await self._retrying(
                lambda: self._kv_get(self.names.checkpoints, m.encode_token(name))
            )
        return None if msg is None else int(msg.data)

    async def set_checkpoint(self, name: str, position: int) -> None:
        subject = f"$KV.{self.names.checkpoints}.{m.encode_token(name)}"
        async with self._errors():
            await self._retrying(lambda: self._publish(subject, str(position).encode(), {}))

    async def compare_and_set_checkpoint(
        self, name: str, expected: int | None, position: int
    ) -> bool:
        """The key's last message is compared, then replaced under the server's check
        that it is still the last (``Nats-Expected-Last-Subject-Sequence``)."""
        bucket = self.names.checkpoints
        subject = f"$KV.{bucket}.{m.encode_token(name)}"

        async def attempt() -> bool:
            msg = await self._last(f"KV_{bucket}", subject)
            headers = {} if msg is None else (msg.headers or {})
            gone = msg is None or headers.get("KV-Operation") in ("DEL", "PURGE")
            if (None if gone else int(msg.data)) != expected:  # type: ignore[union-attr]
                return False
            sequence = "0" if msg is None else headers["Nats-Sequence"]
            try:
                await self._publish(subject, str(position).encode(), {m.EXPECTED_SEQ: sequence})
            except _ServerError as e:
                if e.err_code in WRONG_LAST_SEQUENCE:
                    raise _Retry("the checkpoint moved meanwhile") from e  # compare again
                raise
            return True

        async with self._errors():
            return await self._retrying(attempt)

    async def delete_checkpoint(self, name: str) -> bool:
        bucket = self.names.checkpoints
        key = m.encode_token(name)

        async def delete() -> bool:
            if await self._kv_get(bucket, key) is None:
                return False
            await self._api(f"STREAM.PURGE.KV_{bucket}", {"filter": f"$KV.{bucket}.{key}"})
            return True

        async with self._errors():
            return await self._retrying(delete)

    async def list_checkpoints(self) -> dict[str, int]:
        bucket = self.names.checkpoints
        prefix = f"$KV.{bucket}."

        async def listing() -> dict[str, int]:
            keys: list[str] = []
            offset = 0
            while True:
                info = await self._api(
                    f"STREAM.INFO.KV_{bucket}", {"subjects_filter": f"{prefix}>", "offset": offset}
                )
                subjects = info["state"].get("subjects") or {}
                keys.extend(s.removeprefix(prefix) for s in subjects)
                offset += len(subjects)
                if not subjects or offset >= int(info.get("total", 0)):
                    break
            found = {}
            for key in keys:
                msg = await self._kv_get(bucket, key)
                if msg is not None:
                    found[m.decode_token(key)] = int(msg.data)
            return dict(sorted(found.items()))

        async with self._errors():
            return await self._retrying(listing)

    async def park(self, letter: DeadLetter) -> None:
        key = m.letter_key(letter.name, letter.position)
        subject = f"$KV.{self.names.dead_letters}.{key}"
        async with self._errors():
            await self._retrying(lambda: self._publish(subject, m.letter_body(letter), {}))

    async def dead_letters(self, name: str, after: int, limit: int) -> list[DeadLetter]:
        bucket = self.names.dead_letters
        subject = f"$KV.{bucket}.{m.encode_token(name)}.*"

        async def read() -> list[DeadLetter]:
            letters: list[DeadLetter] = []
            async for msg in self._all_of(f"KV_{bucket}", subject):
                if (msg.headers or {}).get("KV-Operation") in ("DEL", "PURGE"):
                    continue
                letter = m.parse_letter(msg.data)
                if letter.position > after:
                    letters.append(letter)
            letters.sort(key=lambda d: d.position)
            return letters[:limit]

        async with self._errors():
            return await self._retrying(read)

    async def unpark(self, name: str, position: int) -> bool:
        bucket = self.names.dead_letters
        key = m.letter_key(name, position)

        async def unpark() -> bool:
            if await self._kv_get(bucket, key) is None:
                return False
            answer = await self._api(f"STREAM.PURGE.KV_{bucket}", {"filter": f"$KV.{bucket}.{key}"})
            return int(answer.get("purged", 0)) > 0

        async with self._errors():
            return await self._retrying(unpark)

    # -- waiting for new events ------------------------------------------------------------

    async def wait_for_events(self, after: int, timeout: float) -> None:
        changed = self._changed
        if await self.head_position() > after:
            return
        async with self._errors():
            if self._wakeups is None:
                # Every publish to the log is also a core NATS message on its subject: a
                # wake-up, never the data (waiters re-read the log from their position).
                self._wakeups = await self._client().subscribe(
                    f"{self.names.name}.*.e.*", cb=self._wake
                )
        await changed.wait(timeout)

    async def _wake(self, _msg: Msg | None = None) -> None:
        changed, self._changed = self._changed, _aio.Event()
        changed.set()

    # -- operations ------------------------------------------------------------------------

    async def _stream_tokens(self, p: int) -> list[str]:
        tokens: set[str] = set()
        offset = 0
        while True:
            info = await self._api(
                f"STREAM.INFO.{self.names.logs[p]}",
                {"subjects_filter": f"{self.names.name}.{p}.*.*", "offset": offset},
            )
            subjects = info["state"].get("subjects") or {}
            tokens.update(self.names.token_of(s) for s in subjects)
            offset += len(subjects)
            if not subjects or offset >= int(info.get("total", 0)):
                return sorted(tokens)

    async def list_streams(self, after: str | None, limit: int) -> list[StreamSummary]:
        async def listing() -> list[StreamSummary]:
            tokens = [t for p in range(self.log_partitions) for t in await self._stream_tokens(p)]
            ids = sorted(m.decode_token(t) for t in tokens)
            chosen = [i for i in ids if after is None or i > after][:limit]
            out = []
            for stream_id in chosen:
                out.append(await self._summary(stream_id))
            return out

        async with self._errors():
            return await self._retrying(listing)

    async def _summary(self, stream_id: str) -> StreamSummary:
        p, token = self._locate(stream_id)
        try:
            state = await self._state(p, token, stream_id)
        except StreamDeleted:
            msg = await self._last(self.names.logs[p], self.names.any_of(p, token))
            version = int((msg.headers or {})[m.VERSION]) if msg is not None else 0
            return StreamSummary(stream_id, version, "tombstoned")
        return StreamSummary(stream_id, state.last, "live" if state.visible else "deleted")

    async def stats(self) -> dict[str, int]:
        async def counts() -> dict[str, int]:
            events = streams = head = 0
            for p, log in enumerate(self.names.logs):
                info = await self._api(
                    f"STREAM.INFO.{log}", {"subjects_filter": self.names.all_markers(p)}
                )
                markers = sum(int(c) for c in (info["state"].get("subjects") or {}).values())
                events += int(info["state"]["messages"]) - markers
                head += int(info["state"]["last_seq"])
                for token in await self._stream_tokens(p):
                    summary = await self._summary(m.decode_token(token))
                    streams += summary.state == "live"

            async def messages(bucket: str) -> int:
                return int((await self._api(f"STREAM.INFO.KV_{bucket}"))["state"]["messages"])

            return {
                "events": events,
                "streams": streams,
                "snapshots": await messages(self.names.snapshots),
                "checkpoints": await messages(self.names.checkpoints),
                "dead_letters": await messages(self.names.dead_letters),
                "head_position": head,
            }

        async with self._errors():
            return await self._retrying(counts)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._wake()
        if self._nc is not None:
            with contextlib.suppress(Exception):
                await self._nc.close()


def _leader(info: dict[str, Any]) -> str | None:
    """The leader's server name in a ``STREAM.INFO`` answer (None while there is none)."""
    leader: str | None = (info.get("cluster") or {}).get("leader") or None
    return leader


def _peers(info: dict[str, Any]) -> set[str]:
    """The servers that hold a stream (its leader and replicas) in a ``STREAM.INFO`` answer."""
    cluster = info.get("cluster") or {}
    names = {r["name"] for r in cluster.get("replicas") or () if r.get("name")}
    leader = _leader(info)
    return names | {leader} if leader else names


def _answer(reply: Msg) -> dict[str, Any]:
    """A JetStream API answer as a dict; an error answer raises ``_ServerError``."""
    if _status(reply) == "503":
        raise nats.errors.NoRespondersError
    data: dict[str, Any] = orjson.loads(reply.data) if reply.data else {}
    error = data.get("error")
    if error:
        raise _ServerError(
            int(error.get("code", 0)), int(error.get("err_code", 0)), error.get("description", "")
        )
    return data


class _StoredMsg:
    """A message from ``STREAM.MSG.GET`` shaped like a direct get's answer."""

    def __init__(self, data: bytes, headers: dict[str, str]) -> None:
        self.data = data
        self.headers = headers


def _stored_message(message: dict[str, Any]) -> Msg:
    import base64

    headers: dict[str, str] = {}
    raw = base64.b64decode(message.get("hdrs", "")) if message.get("hdrs") else b""
    for line in raw.decode("utf-8", "replace").split("\r\n")[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip()] = v.strip()
    headers["Nats-Subject"] = message["subject"]
    headers["Nats-Sequence"] = str(message["seq"])
    data = base64.b64decode(message.get("data", "")) if message.get("data") else b""
    return _StoredMsg(data, headers)  # type: ignore[return-value]
