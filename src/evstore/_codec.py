"""JSON encoding of event data with orjson, keeping Python values that JSON lacks.

``datetime``, ``date``, ``time``, ``UUID``, ``Decimal``, ``bytes`` and tuples are written as
single-key tagged objects (``{"__evstore__:uuid": "..."}``) and turned back into the same
Python values on read. Reading skips the tag walk entirely when the raw bytes contain no tag,
which is the common case and keeps decoding at orjson speed.
"""

from __future__ import annotations

import base64
import uuid
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any

import orjson

from evstore.errors import SerializationError

_PREFIX = "__evstore__:"
_MARKER = b'"__evstore__:'

_NATIVE = (str, int, float, bool, type(None))
_INF = float("inf")


def _tag(value: Any) -> Any:
    # datetime before date: datetime is a subclass of date.
    if isinstance(value, datetime):
        return {_PREFIX + "datetime": value.isoformat()}
    if isinstance(value, date):
        return {_PREFIX + "date": value.isoformat()}
    if isinstance(value, time):
        return {_PREFIX + "time": value.isoformat()}
    if isinstance(value, uuid.UUID):
        return {_PREFIX + "uuid": str(value)}
    if isinstance(value, Decimal):
        return {_PREFIX + "decimal": str(value)}
    if isinstance(value, bytes):
        return {_PREFIX + "bytes": base64.b64encode(value).decode("ascii")}
    return _MISSING


_MISSING = object()


def _prepare(value: Any, path: str) -> Any:
    """Copy ``value`` into orjson-native types, tagging the rest; raise on what JSON cannot hold."""
    if isinstance(value, _NATIVE):
        if isinstance(value, int) and not isinstance(value, bool) and not -_I64 <= value < _I64:
            raise SerializationError(
                f"{path}: integer {value} does not fit in 64 bits (-2**63 .. 2**63-1)"
            )
        if isinstance(value, float) and (value != value or value in (_INF, -_INF)):
            raise SerializationError(f"{path}: {value!r} is not valid JSON; use None or a str")
        return value
    if isinstance(value, dict):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise SerializationError(
                    f"{path}: key {key!r} is a {type(key).__name__}; JSON object keys must be str"
                )
            if key.startswith(_PREFIX):
                raise SerializationError(f"{path}: keys starting with {_PREFIX!r} are reserved")
            out[key] = _prepare(item, f"{path}.{key}")
        return out
    if isinstance(value, list):
        return [_prepare(item, f"{path}[{i}]") for i, item in enumerate(value)]
    if isinstance(value, tuple):  # tagged, so it comes back a tuple, not a list
        return {_PREFIX + "tuple": [_prepare(item, f"{path}[{i}]") for i, item in enumerate(value)]}
    tagged = _tag(value)
    if tagged is _MISSING:
        raise SerializationError(
            f"{path}: {type(value).__name__} is not JSON-serializable; use dict, list, str, "
            "int, float, bool, None, datetime, date, time, UUID, Decimal or bytes"
        )
    return tagged


def _is_flat_json(value: dict[Any, Any]) -> bool:
    """Whether a dict holds only str keys and plain JSON scalars (the common event shape).

    Such a dict goes to orjson as it is, skipping the copying walk of :func:`_prepare`.
    """
    for key, item in value.items():
        if type(key) is not str or key.startswith(_PREFIX):
            return False
        kind = type(item)
        if kind is str or kind is bool or item is None:
            continue
        if kind is int and -_I64 <= item < _I64:
            continue
        if kind is float and item - item == 0.0:  # finite: nan - nan and inf - inf are nan
            continue
        return False
    return True


_I64 = 2**63


def encode(value: dict[str, Any], what: str = "data") -> bytes:
    """Encode a dict to JSON bytes; raise ``SerializationError`` naming the bad field."""
    try:
        if type(value) is dict and _is_flat_json(value):
            return orjson.dumps(value)
        if not isinstance(value, dict):
            raise SerializationError(f"{what} must be a dict, got {type(value).__name__}")
        return orjson.dumps(_prepare(value, what))
    except RecursionError:
        raise SerializationError(
            f"{what} refers to itself (circular) or nests too deeply; JSON holds at most "
            f"{MAX_DEPTH} levels"
        ) from None
    except orjson.JSONEncodeError as e:
        if "recursion" in str(e).lower():
            raise SerializationError(
                f"{what} nests deeper than {MAX_DEPTH} levels, the most JSON encoding allows"
            ) from None
        # A lone surrogate ("\ud800") in a str or a key: not valid Unicode.
        raise SerializationError(f"{what} cannot be encoded as JSON: {e}") from None


MAX_DEPTH = 254
"""The deepest nesting orjson encodes (its limit is 255 levels, the top object included)."""


_UNTAG = {
    "datetime": datetime.fromisoformat,
    "date": date.fromisoformat,
    "time": time.fromisoformat,
    "uuid": uuid.UUID,
    "decimal": Decimal,
    "bytes": base64.b64decode,
}


def _restore(value: Any) -> Any:
    if isinstance(value, dict):
        if len(value) == 1:
            ((key, item),) = value.items()
            if key.startswith(_PREFIX):
                return _untag(key[len(_PREFIX) :], item)
        return {k: _restore(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_restore(v) for v in value]
    return value


def _untag(tag: str, item: Any) -> Any:
    if tag == "tuple" and isinstance(item, list):
        return tuple(_restore(v) for v in item)
    untag = _UNTAG.get(tag)
    if untag is None or not isinstance(item, str):
        raise SerializationError(f"stored JSON has an unknown tagged value {_PREFIX}{tag}")
    try:
        return untag(item)
    except (ValueError, TypeError, ArithmeticError) as e:
        raise SerializationError(f"stored JSON has a bad {tag} value: {e}") from e


def decode(raw: bytes | str | memoryview) -> dict[str, Any]:
    """Decode JSON bytes written by :func:`encode` back into the same Python values."""
    if type(raw) is bytes:
        # The shape every backend hands over: no conversions, and empty metadata for free.
        if raw == EMPTY:
            return {}
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError as e:
            raise SerializationError(f"stored JSON cannot be decoded: {e}") from e
        if _MARKER in raw:
            value = _restore(value)
        if type(value) is not dict:
            raise SerializationError(f"stored JSON is a {type(value).__name__}, expected an object")
        return value
    if isinstance(raw, memoryview):
        raw = bytes(raw)
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as e:
        raise SerializationError(f"stored JSON cannot be decoded: {e}") from e
    if _MARKER in (raw if isinstance(raw, bytes) else raw.encode()):
        value = _restore(value)
    if not isinstance(value, dict):
        raise SerializationError(f"stored JSON is a {type(value).__name__}, expected an object")
    return value


EMPTY = b"{}"


_new = object.__new__
_UNKNOWN = uuid.SafeUUID.unknown
# The slots' own setters: UUID.__setattr__ refuses every assignment, and object.__setattr__
# looks the name up on each call.
_set_int = uuid.UUID.__dict__["int"].__set__
_set_is_safe = uuid.UUID.__dict__["is_safe"].__set__


def parse_uuid(text: str) -> uuid.UUID:
    """``uuid.UUID(text)`` for the canonical form backends store, at a quarter of the cost.

    ``UUID.__init__`` parses every accepted spelling; a read of 10,000 events spent a
    sixth of its time there. The canonical 36-character form needs one ``int()``; any
    other spelling takes the full constructor (and its error for malformed text).
    """
    digits = text.replace("-", "")
    if len(text) != 36 or len(digits) != 32:
        return uuid.UUID(text)
    value = _new(uuid.UUID)
    _set_int(value, int(digits, 16))
    _set_is_safe(value, _UNKNOWN)
    return value
