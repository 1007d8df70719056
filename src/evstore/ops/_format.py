"""The export file: JSON Lines, one object a line, optionally gzip- or zstd-compressed.

A file is, in this order::

    {"kind": "header", "format": "evstore-jsonl", "version": 1, "source": ..., ...}
    {"kind": "checkpoint", "name": ..., "position": ...}            (the checkpoints section)
    {"kind": "stream", "stream_id": ..., "version": ..., "state": ..., "hidden_through": ...}
    {"kind": "event", "stream_id": ..., "version": ..., "position": ..., ...}  (position order)
    {"kind": "snapshot", ...}
    {"kind": "dead_letter", ...}
    {"kind": "end", "counts": {...}}

Checkpoints and stream states come before the events because importing needs them while it
appends (checkpoints are translated to the destination's positions as the events they point
at are written; a soft-deleted prefix is hidden right after its last event is written).
``data`` and ``metadata`` are the stored JSON documents themselves (``data_b64`` holds bytes
that are not JSON, so even a corrupt event is carried verbatim). Datetimes are ISO 8601.
The ``end`` line proves the file is complete: an import of a truncated file stops there.
"""

from __future__ import annotations

import base64
import gzip
import io
from datetime import datetime
from pathlib import Path
from typing import IO, Any

import orjson

from evstore.errors import InvalidInput
from evstore.spi._model import DeadLetter, EventRecord, SnapshotRecord, StreamSummary

FORMAT = "evstore-jsonl"
VERSION = 1
COMPRESSIONS = ("none", "gzip", "zstd")
INTERNAL_PREFIX = "$evstore."  # checkpoints the tools keep for themselves (progress)

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _zstd() -> Any:
    try:
        import zstandard
    except ImportError as e:
        raise InvalidInput(
            "zstd compression needs the zstandard package: pip install 'evstore[zstd]'"
        ) from e
    return zstandard


def compression_for(path: str | Path, compression: str | None) -> str:
    """The compression to write: as asked, else from the file name (.gz, .zst), else none."""
    if compression is not None:
        if compression not in COMPRESSIONS:
            raise InvalidInput(f"compression must be one of {COMPRESSIONS}, got {compression!r}")
        return compression
    name = str(path)
    if name.endswith(".gz"):
        return "gzip"
    if name.endswith(".zst"):
        return "zstd"
    return "none"


def open_write(path: str | Path, compression: str) -> IO[bytes]:
    """A binary file to write lines to, compressed as asked."""
    raw = open(path, "wb")  # noqa: SIM115 - closed by the wrapper or the caller
    if compression == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=6)  # type: ignore[return-value]
    if compression == "zstd":
        writer = _zstd().ZstdCompressor(level=3).stream_writer(raw, closefd=True)
        return writer  # type: ignore[no-any-return]
    return raw


def open_read(path: str | Path) -> IO[bytes]:
    """A binary line reader over an export file, decompressing by its magic bytes."""
    try:
        raw = open(path, "rb")  # noqa: SIM115 - closed by the wrapper or the caller
    except OSError as e:
        raise InvalidInput(f"cannot open {path}: {e}") from e
    magic = raw.read(4)
    raw.seek(0)
    if magic.startswith(_GZIP_MAGIC):
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if magic == _ZSTD_MAGIC:
        reader = _zstd().ZstdDecompressor().stream_reader(raw, closefd=True)
        return io.BufferedReader(reader)
    return raw


def dumps(obj: dict[str, Any]) -> bytes:
    """One line (with its newline)."""
    return orjson.dumps(obj, option=orjson.OPT_APPEND_NEWLINE)


def _json_field(obj: dict[str, Any], name: str, raw: bytes) -> None:
    try:
        obj[name] = orjson.loads(raw)
    except orjson.JSONDecodeError:
        obj[name + "_b64"] = base64.b64encode(raw).decode("ascii")


def _raw_field(obj: dict[str, Any], name: str) -> bytes:
    if name + "_b64" in obj:
        return base64.b64decode(obj[name + "_b64"])
    return orjson.dumps(obj[name])


def event_line(r: EventRecord, partitioned: bool = False) -> dict[str, Any]:
    """An event as a line: every field of the stored row (``partition`` in a store of
    several log partitions, where ``position`` counts within it)."""
    obj: dict[str, Any] = {
        "kind": "event",
        "stream_id": r.stream_id,
        "version": r.version,
        "position": r.position,
        "event_id": r.event_id,
        "type": r.type,
        "schema_version": r.schema_version,
        "occurred_at": r.occurred_at,  # orjson writes ISO 8601 itself, 10x faster
        "recorded_at": r.recorded_at,
    }
    if partitioned:
        obj["partition"] = r.partition
    _json_field(obj, "data", r.data)
    _json_field(obj, "metadata", r.metadata)
    return obj


def event_from(obj: dict[str, Any]) -> EventRecord:
    """The stored row a line describes."""
    try:
        return EventRecord(
            str(obj["stream_id"]),
            int(obj["version"]),
            int(obj["position"]),
            str(obj["event_id"]),
            str(obj["type"]),
            _raw_field(obj, "data"),
            _raw_field(obj, "metadata"),
            int(obj["schema_version"]),
            datetime.fromisoformat(obj["occurred_at"]),
            datetime.fromisoformat(obj["recorded_at"]),
            int(obj.get("partition", 0)),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidInput(f"malformed event line: {e!r}") from e


def stream_line(s: StreamSummary, hidden_through: int) -> dict[str, Any]:
    """A stream's state: ``hidden_through`` is the last version a soft delete hid (0: none)."""
    return {
        "kind": "stream",
        "stream_id": s.stream_id,
        "version": s.version,
        "state": s.state,
        "hidden_through": hidden_through,
    }


def snapshot_line(s: SnapshotRecord) -> dict[str, Any]:
    """A snapshot as a line."""
    obj: dict[str, Any] = {
        "kind": "snapshot",
        "stream_id": s.stream_id,
        "version": s.version,
        "schema_version": s.schema_version,
        "taken_at": s.taken_at.isoformat(),
    }
    _json_field(obj, "data", s.data)
    return obj


def snapshot_from(obj: dict[str, Any]) -> SnapshotRecord:
    """The snapshot a line describes."""
    try:
        return SnapshotRecord(
            str(obj["stream_id"]),
            int(obj["version"]),
            _raw_field(obj, "data"),
            int(obj["schema_version"]),
            datetime.fromisoformat(obj["taken_at"]),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidInput(f"malformed snapshot line: {e!r}") from e


def letter_line(d: DeadLetter) -> dict[str, Any]:
    """A dead letter as a line (``position`` is the source's)."""
    return {
        "kind": "dead_letter",
        "name": d.name,
        "position": d.position,
        "stream_id": d.stream_id,
        "version": d.version,
        "type": d.type,
        "event_id": d.event_id,
        "error": d.error,
        "attempts": d.attempts,
        "parked_at": d.parked_at.isoformat(),
    }


def letter_from(obj: dict[str, Any]) -> DeadLetter:
    """The dead letter a line describes."""
    try:
        return DeadLetter(
            str(obj["name"]),
            int(obj["position"]),
            str(obj["stream_id"]),
            int(obj["version"]),
            str(obj["type"]),
            str(obj["event_id"]),
            str(obj["error"]),
            int(obj["attempts"]),
            datetime.fromisoformat(obj["parked_at"]),
        )
    except (KeyError, TypeError, ValueError) as e:
        raise InvalidInput(f"malformed dead letter line: {e!r}") from e


def redact(url: str) -> str:
    """A URL without its password, for the header and reports."""
    scheme, sep, rest = url.partition("://")
    if not sep or "@" not in rest.split("/", 1)[0]:
        return url
    userinfo, _, host = rest.partition("@")
    user = userinfo.split(":", 1)[0]
    return f"{scheme}://{user}:***@{host}" if ":" in userinfo else f"{scheme}://{user}@{host}"
