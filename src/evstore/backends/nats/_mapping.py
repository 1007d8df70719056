"""How evstore's rows map onto JetStream: names, subjects, headers and message bodies.

Pure functions, no I/O, so that the mapping is tested on its own and written once.

Names - a store is a *namespace* ``N`` (``[A-Za-z0-9_-]+``, the URL path, ``evstore`` by
default). Its global log is ``P`` JetStream streams ``N-log-0 .. N-log-{P-1}`` (one per log
partition; ``P`` is recorded in the metadata of ``N-log-0``), each with the subjects
``N.{p}.>``. A stream (evstore's) lives in partition ``p = partition_hash % P``:

* its events on ``N.{p}.e.{token}``,
* its delete markers (soft delete, tombstone) on ``N.{p}.d.{token}``,

where ``token`` is the stream id encoded reversibly into one subject token
(:func:`encode_token`). Optimistic concurrency checks the last sequence over
``N.{p}.*.{token}`` (events and markers together), so a delete and an append can never
both win against the same state.

Snapshots, checkpoints and dead letters live in three KV buckets (history 1):
``N-snapshots``, ``N-checkpoints``, ``N-dead-letters``.
"""

from __future__ import annotations

import re
import struct
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from evstore.errors import InvalidInput
from evstore.spi._model import (
    UNREADABLE,
    DeadLetter,
    EventRecord,
    PendingEvent,
    SnapshotRecord,
    readable_time,
)

NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_KEEP = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")
_ESCAPED = re.compile(r"=([0-9A-F]{2})")

# Headers of every message in a log stream.
VERSION = "Evs-V"  # the stream's version after this message (an event's own version)
HIDDEN = "Evs-H"  # versions <= this are hidden (soft delete); copied onto every event
KIND = "Evs-K"  # on markers only: "deleted" (soft) or "tombstone" (hard)
MSG_ID = "Nats-Msg-Id"
EXPECTED_SEQ = "Nats-Expected-Last-Subject-Sequence"
EXPECTED_SUBJECT = "Nats-Expected-Last-Subject-Sequence-Subject"
BATCH_ID = "Nats-Batch-Id"
BATCH_SEQ = "Nats-Batch-Sequence"
BATCH_COMMIT = "Nats-Batch-Commit"
BATCH_SIZE = "Evs-N"  # on every message of an atomic batch: how many messages it has


def batch_span(headers: dict[str, str], sequence: int) -> tuple[int, int] | None:
    """The (first, last) sequence of the atomic batch a message belongs to, if it says.

    The server stores a batch's messages one after another; a reader that sees some of
    them before the last one is stored must not hand them out yet (all or nothing).
    """
    size = headers.get(BATCH_SIZE)
    index = headers.get(BATCH_SEQ)
    if size is None or index is None or not size.isdigit() or not index.isdigit():
        return None
    first = sequence - int(index) + 1
    return first, first + int(size) - 1


MAX_BATCH = 1000  # the server's limit of messages in one atomic batch (ADR-50)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = timedelta(microseconds=1)
_LENGTHS = struct.Struct(">II")


def check_name(name: str) -> str:
    """A namespace: what stream, subject and bucket names are built from."""
    if not NAME.match(name):
        raise InvalidInput(
            f"NATS store name {name!r} must be 1-64 characters of A-Z a-z 0-9 _ - "
            "(it names JetStream streams and subjects)"
        )
    return name


def encode_token(text: str) -> str:
    """``text`` as one subject token: ``[A-Za-z0-9_-]`` kept, every other UTF-8 byte ``=XX``.

    Reversible (``=`` itself is escaped), never empty for a non-empty id, and free of
    ``.``, ``*``, ``>`` and whitespace; also a valid KV key.
    """
    return "".join(chr(b) if b in _KEEP else f"={b:02X}" for b in text.encode("utf-8"))


def decode_token(token: str) -> str:
    """The inverse of :func:`encode_token`."""
    return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), token).encode("latin-1").decode()


class Names:
    """Stream, subject and bucket names of one store (namespace) with ``partitions`` logs."""

    def __init__(self, name: str, partitions: int = 1) -> None:
        self.name = check_name(name)
        self.partitions = partitions
        self.logs = [f"{name}-log-{p}" for p in range(partitions)]
        self.snapshots = f"{name}-snapshots"
        self.checkpoints = f"{name}-checkpoints"
        self.dead_letters = f"{name}-dead-letters"

    def partition_of(self, partition_hash: int) -> int:
        return partition_hash % self.partitions

    def log_subjects(self, p: int) -> str:
        return f"{self.name}.{p}.>"

    def events(self, p: int, token: str) -> str:
        return f"{self.name}.{p}.e.{token}"

    def markers(self, p: int, token: str) -> str:
        return f"{self.name}.{p}.d.{token}"

    def any_of(self, p: int, token: str) -> str:
        """Events and markers of one stream: the subject the expectation is checked on."""
        return f"{self.name}.{p}.*.{token}"

    def all_events(self, p: int) -> str:
        return f"{self.name}.{p}.e.*"

    def all_markers(self, p: int) -> str:
        return f"{self.name}.{p}.d.*"

    def token_of(self, subject: str) -> str:
        return subject.rsplit(".", 1)[1]

    def partition_in(self, subject: str) -> int:
        """The log partition of a subject ``N.{p}.e.{token}``."""
        return int(subject.split(".", 2)[1])


def to_us(value: datetime) -> int:
    return (value - _EPOCH) // _US


def from_us(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


def event_body(event: PendingEvent, category: str, partition_hash: int, now_us: int) -> bytes:
    """The message body of one event: lengths, a small JSON envelope, metadata, data."""
    recorded = now_us if event.recorded_at is None else to_us(event.recorded_at)
    envelope = orjson.dumps(
        [event.type, event.schema_version, to_us(event.occurred_at), recorded, category,
         partition_hash]
    )  # fmt: skip
    return (
        _LENGTHS.pack(len(envelope), len(event.metadata)) + envelope + event.metadata + event.data
    )


def event_headers(event_id: str, version: int, hidden: int) -> dict[str, str]:
    return {MSG_ID: event_id, VERSION: str(version), HIDDEN: str(hidden)}


class Parsed:
    """An event message read back: the record plus what filters need."""

    __slots__ = ("category", "partition_hash", "record")

    def __init__(self, record: EventRecord, category: str, partition_hash: int) -> None:
        self.record = record
        self.category = category
        self.partition_hash = partition_hash


def parse_event(
    stream_id: str, sequence: int, headers: dict[str, str], body: bytes, partition: int = 0
) -> Parsed:
    """The event in a message; a message that is not one evstore wrote (published to the
    subject by someone else) reads as a record the layer above refuses to decode, naming
    its position - one bad message never stops a read of the log."""
    try:
        env_len, meta_len = _LENGTHS.unpack_from(body)
        start = _LENGTHS.size
        type_, schema_version, occurred, recorded, category, partition_hash = orjson.loads(
            body[start : start + env_len]
        )
        meta_start = start + env_len
        metadata = bytes(body[meta_start : meta_start + meta_len])
        data = bytes(body[meta_start + meta_len :])
        version = int(headers.get(VERSION, "0"))
        event_id = headers.get(MSG_ID, "")
        occurred_at = readable_time(from_us, occurred)
        recorded_at = readable_time(from_us, recorded)
    except (struct.error, orjson.JSONDecodeError, TypeError, ValueError):
        type_, schema_version, category, partition_hash = "", 1, "", 0
        version, event_id = int(headers.get(VERSION, "0") or 0), headers.get(MSG_ID, "")
        data, metadata = b"\xff not an evstore event", b"{}"
        occurred_at = recorded_at = UNREADABLE
    record = EventRecord(
        stream_id,
        version,
        sequence,
        event_id,
        type_,
        data,
        metadata,
        schema_version,
        occurred_at,
        recorded_at,
        partition,
    )
    return Parsed(record, category, partition_hash)


def snapshot_body(snapshot: SnapshotRecord) -> bytes:
    envelope = orjson.dumps([snapshot.version, snapshot.schema_version, to_us(snapshot.taken_at)])
    return _LENGTHS.pack(len(envelope), 0) + envelope + snapshot.data


def parse_snapshot(stream_id: str, body: bytes) -> SnapshotRecord:
    env_len, _ = _LENGTHS.unpack_from(body)
    start = _LENGTHS.size
    version, schema_version, taken = orjson.loads(body[start : start + env_len])
    data = bytes(body[start + env_len :])
    return SnapshotRecord(stream_id, version, data, schema_version, readable_time(from_us, taken))


def snapshot_version(body: bytes) -> int:
    env_len, _ = _LENGTHS.unpack_from(body)
    version: int = orjson.loads(body[_LENGTHS.size : _LENGTHS.size + env_len])[0]
    return version


def letter_key(name: str, position: int) -> str:
    return f"{encode_token(name)}.{position}"


def letter_body(letter: DeadLetter) -> bytes:
    fields: dict[str, Any] = letter._asdict()
    fields["parked_at"] = to_us(letter.parked_at)
    return orjson.dumps(fields)


def parse_letter(body: bytes) -> DeadLetter:
    fields = orjson.loads(body)
    fields["parked_at"] = from_us(fields["parked_at"])
    return DeadLetter(**fields)
