"""Input checks shared by every entry point; each failure is an ``InvalidInput`` saying what
to fix."""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from evstore.errors import InvalidInput

MAX_ID_LENGTH = 255
"""The longest name (tag, or stream id and type on a backend that states no limit), in
characters."""
MAX_NAME_BYTES = 65_535
"""No backend stores a longer stream id or event type (UTF-8 bytes); each backend states
its own limit (``max_name_bytes``), which the store applies."""
MAX_INT = 2**63 - 1
"""The largest int stored anywhere (a 64-bit signed column on every backend)."""
MAX_INT32 = 2**31 - 1
"""The largest schema version (PostgreSQL stores it in an ``integer`` column)."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _name(value: object, what: str, maximum: int = MAX_ID_LENGTH) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{what} must be a str, got {type(value).__name__}: {value!r:.80}")
    if not value:
        raise InvalidInput(f"{what} must not be empty")
    if len(value) > maximum:
        raise InvalidInput(f"{what} is {len(value)} characters long; at most {maximum} are allowed")
    if _CONTROL.search(value):
        raise InvalidInput(f"{what} {value!r} contains a control character; remove it")
    _utf8(value, what)
    return value


def _utf8(value: str, what: str) -> None:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidInput(
            f"{what} {value!r} contains a lone surrogate; it must be valid Unicode (UTF-8)"
        ) from None


def category(value: object) -> str:
    """A category filter: a str (``""`` too: the category of ids that start with the
    separator), at most 65,535 characters, no control characters."""
    if not isinstance(value, str):
        raise InvalidInput(f"category must be a str, got {type(value).__name__}: {value!r}")
    if len(value) > MAX_NAME_BYTES:
        raise InvalidInput(f"category is {len(value)} characters long; at most {MAX_NAME_BYTES}")
    if _CONTROL.search(value):
        raise InvalidInput(f"category {value!r} contains a control character; remove it")
    _utf8(value, "category")
    return value


def stream_id(value: object) -> str:
    """A stream id: a non-empty str without control characters, at most 65,535 characters
    (the store then applies its backend's limit: :func:`fits`)."""
    return _name(value, "stream_id", MAX_NAME_BYTES)


def fits(value: str, what: str, limit: int | None, backend: str) -> str:
    """``value`` if ``backend`` stores it: at most ``limit`` UTF-8 bytes (None: the default
    of a backend that states no limit, 255 characters)."""
    if limit is None:
        if len(value) > MAX_ID_LENGTH:
            raise InvalidInput(
                f"{what} is {len(value)} characters long; {backend} stores at most {MAX_ID_LENGTH}"
            )
        return value
    size = len(value.encode("utf-8"))
    if size > limit:
        raise InvalidInput(
            f"{what} is {size} bytes long in UTF-8; {backend} stores at most {limit} "
            "(docs: README, Limits)"
        )
    return value


def tags(value: object, what: str) -> tuple[str, ...]:
    """Tags: a list or tuple of names (like stream ids); duplicates dropped, order kept."""
    return names(value, what, _tag)


def _tag(value: object) -> str:
    return _name(value, "tag")


def names(value: object, what: str, one: Callable[[object], str]) -> tuple[str, ...]:
    """A list or tuple of names each checked by ``one``; duplicates dropped, order kept."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise InvalidInput(f"{what} must be a list of str, got {type(value).__name__}")
    return tuple(dict.fromkeys(one(v) for v in value))


def event_type(value: object) -> str:
    """An event type name: like a stream id, and without surrounding white space."""
    name = _name(value, "event type", MAX_NAME_BYTES)
    if name != name.strip():
        raise InvalidInput(f"event type {name!r} has leading or trailing white space")
    return name


def type_prefix(value: object) -> str:
    """The start of event type names: a non-empty string (white space is kept as given)."""
    return _name(value, "type prefix")


def json_object(value: object, what: str) -> dict[str, Any]:
    """A dict (its content is checked when it is encoded)."""
    if not isinstance(value, dict):
        raise InvalidInput(f"{what} must be a dict, got {type(value).__name__}")
    return value


def event_id(value: object) -> uuid.UUID:
    """A UUID, or a str holding one."""
    if isinstance(value, uuid.UUID):
        return value
    if isinstance(value, str):
        try:
            return uuid.UUID(value)
        except ValueError:
            pass
    raise InvalidInput(f"event_id must be a UUID (or its str form), got {value!r}")


def _int(value: object, what: str, maximum: int = MAX_INT) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{what} must be an int, got {type(value).__name__}: {value!r:.80}")
    if value > maximum:
        raise InvalidInput(f"{what} must be at most {maximum}, got {value:.6g}")
    return value


def non_negative_int(value: object, what: str) -> int:
    """An int >= 0 (bool is refused)."""
    n = _int(value, what)
    if n < 0:
        raise InvalidInput(f"{what} must be >= 0, got {n}")
    return n


def positive_int(value: object, what: str, maximum: int = MAX_INT) -> int:
    """An int >= 1 and <= ``maximum`` (bool is refused)."""
    n = _int(value, what, maximum)
    if n < 1:
        raise InvalidInput(f"{what} must be >= 1, got {n}")
    return n


def optional_positive_int(value: object, what: str) -> int | None:
    """None, or an int >= 1."""
    return None if value is None else positive_int(value, what)


def aware_datetime(value: object, what: str) -> datetime:
    """A timezone-aware datetime."""
    if not isinstance(value, datetime):
        raise InvalidInput(f"{what} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidInput(
            f"{what} must be timezone-aware, e.g. datetime.now(timezone.utc); got {value!r}"
        )
    try:
        value.astimezone(UTC)
    except OverflowError:
        raise InvalidInput(
            f"{what} {value.isoformat()} is outside years 1-9999 in UTC; every backend "
            "stores the UTC value"
        ) from None
    return value


def types_filter(value: object) -> tuple[str, ...] | None:
    """None, one type name, or an iterable of them."""
    if value is None:
        return None
    if isinstance(value, str):
        return (event_type(value),)
    if not isinstance(value, Iterable):
        raise InvalidInput(f"types must be a str or a list of str, got {value!r}")
    items = tuple(value)
    if not items:
        raise InvalidInput("types must not be empty; pass None to read every type")
    return tuple(event_type(t) for t in items)


def partition(value: object) -> tuple[int, int] | None:
    """None, or ``(i, n)`` with ``0 <= i < n``: this consumer's slot among n."""
    if value is None:
        return None
    if not isinstance(value, tuple) or len(value) != 2:
        raise InvalidInput(f"partition must be a log partition i or a tuple (i, n), got {value!r}")
    i = non_negative_int(value[0], "partition slot")
    n = positive_int(value[1], "partition count")
    if i >= n:
        raise InvalidInput(f"partition slot {i} must be below the partition count {n}")
    return (i, n)
