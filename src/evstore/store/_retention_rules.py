"""Retention rules: stream metadata and which events it hides. Pure (no I/O), shared by
the sync and asyncio faces (``retention_async`` reads the metadata, this decides).

The metadata of every stream and category lives in one stream of the store, ``$retention``
(a tenant's store: ``<prefix>$retention``), one event per change, the newest event for a
target winning. So it is stored by every backend without a backend change, read back by
any process, and carried by export, import and copy like any other stream.

An event of a stream with last version ``L`` is *expired* when its version is below
``truncate_before``, or at most ``L - max_count``, or its ``recorded_at`` is older than
``now - max_age``. A stream's own setting wins over its category's, field by field. A
*protected* stream or category is never deletable: it has no limits, cannot be given any,
cannot be deleted (soft or hard), and the mark cannot be taken back.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime, timedelta
from typing import Any

from evstore import _codec
from evstore.errors import InvalidInput, SerializationError
from evstore.spi._model import EventRecord

RETENTION_STREAM = "$retention"
"""The stream that holds the retention metadata (prefixed by a tenant store's prefix)."""
EVENT_TYPE = "$retention"
"""The type of its events."""

MAX_SECONDS = timedelta.max.total_seconds()


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """Retention metadata of a stream or a category (``None``: no limit of that kind).

    ``max_age``: events recorded longer ago are expired; ``max_count``: only the newest
    ``max_count`` events are kept; ``truncate_before``: versions below it are expired;
    ``protected``: never deletable (no limits, no deletes, for good).
    """

    max_age: timedelta | None = None
    max_count: int | None = None
    truncate_before: int | None = None
    protected: bool = False

    @property
    def limited(self) -> bool:
        """Whether any limit applies (a protected policy never has one)."""
        if self.protected:
            return False
        return (
            self.max_age is not None
            or self.max_count is not None
            or self.truncate_before is not None
        )

    def over(self, default: RetentionPolicy) -> RetentionPolicy:
        """This policy with ``default``'s value for every field this one leaves unset."""
        return RetentionPolicy(
            self.max_age if self.max_age is not None else default.max_age,
            self.max_count if self.max_count is not None else default.max_count,
            self.truncate_before if self.truncate_before is not None else default.truncate_before,
            self.protected or default.protected,
        )

    def floor(self, last_version: int) -> int:
        """The lowest version not expired by count or truncation (1: none is)."""
        low = 1
        if self.truncate_before is not None:
            low = max(low, self.truncate_before)
        if self.max_count is not None:
            low = max(low, last_version - self.max_count + 1)
        return low

    def cutoff(self, now: datetime) -> datetime | None:
        """Events recorded before this are expired by age (None: no age limit)."""
        return None if self.max_age is None else now - self.max_age


NO_POLICY = RetentionPolicy()


def make_policy(
    max_age: object = None,
    max_count: object = None,
    truncate_before: object = None,
    protected: object = False,
) -> RetentionPolicy:
    """A checked policy from user input (``InvalidInput`` on anything wrong)."""
    age: timedelta | None = None
    if max_age is not None:
        if isinstance(max_age, timedelta):
            age = max_age
        elif isinstance(max_age, int | float) and not isinstance(max_age, bool):
            if not 0 < max_age <= MAX_SECONDS:
                raise InvalidInput(f"max_age must be positive seconds, got {max_age!r}")
            age = timedelta(seconds=max_age)
        else:
            raise InvalidInput(f"max_age must be a timedelta or seconds, got {max_age!r}")
        if age <= timedelta(0):
            raise InvalidInput(f"max_age must be positive, got {max_age!r}")
    for name, value in (("max_count", max_count), ("truncate_before", truncate_before)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < 2**63
        ):
            raise InvalidInput(f"{name} must be a positive int, got {value!r}")
    if not isinstance(protected, bool):
        raise InvalidInput(f"protected must be a bool, got {protected!r}")
    policy = RetentionPolicy(age, max_count, truncate_before, protected)  # type: ignore[arg-type]
    if protected and (age is not None or max_count is not None or truncate_before is not None):
        raise InvalidInput("a protected (never deletable) target cannot have retention limits")
    return policy


def encode(kind: str, target: str, policy: RetentionPolicy) -> bytes:
    """The data of a metadata event."""
    return _codec.encode(
        {
            "target": kind,
            "id": target,
            "max_age": None if policy.max_age is None else policy.max_age.total_seconds(),
            "max_count": policy.max_count,
            "truncate_before": policy.truncate_before,
            "protected": policy.protected,
        },
        "retention",
    )


def _decode(data: bytes) -> tuple[str, str, RetentionPolicy] | None:
    try:
        doc: Any = _codec.decode(data)
        kind, target = doc["target"], doc["id"]
        if kind not in ("stream", "category") or not isinstance(target, str):
            return None
        return kind, target, make_policy(
            doc.get("max_age"), doc.get("max_count"), doc.get("truncate_before"),
            doc.get("protected", False),
        )  # fmt: skip
    except (SerializationError, InvalidInput, KeyError, TypeError):
        return None  # not written by evstore: ignored, as if never stored


class RetentionRules:
    """Every policy of a store, as read from its ``$retention`` stream up to ``version``."""

    def __init__(self, separator: str) -> None:
        self.version = 0
        self.streams: dict[str, RetentionPolicy] = {}
        self.categories: dict[str, RetentionPolicy] = {}
        self.limited = False
        """Whether any policy has a limit (else nothing can be expired: a fast path)."""
        self._separator = separator

    def apply(self, record: EventRecord) -> None:
        """Take one metadata event into account (in version order; repeats are ignored)."""
        if record.version <= self.version:
            return
        self.version = record.version
        decoded = _decode(record.data) if record.type == EVENT_TYPE else None
        if decoded is None:
            return
        kind, target, policy = decoded
        table = self.streams if kind == "stream" else self.categories
        if table.get(target, NO_POLICY).protected and not policy.protected:
            return  # never deletable is for good, whoever wrote this
        if policy == NO_POLICY:
            table.pop(target, None)
        else:
            table[target] = policy
        self.limited = any(p.limited for p in (*self.streams.values(), *self.categories.values()))

    def category_of(self, stream_id: str) -> str:
        """The stream's category (the store's separator rule)."""
        return stream_id.split(self._separator, 1)[0]

    def of_target(self, kind: str, target: str) -> RetentionPolicy:
        """The policy stored for one stream or category itself (no defaults applied)."""
        table = self.streams if kind == "stream" else self.categories
        return table.get(target, NO_POLICY)

    def effective(self, stream_id: str) -> RetentionPolicy:
        """The stream's policy: its own, over its category's."""
        own = self.streams.get(stream_id)
        default = self.categories.get(self.category_of(stream_id))
        if own is None:
            return default or NO_POLICY
        return own if default is None else own.over(default)

    def check_change(self, kind: str, target: str, policy: RetentionPolicy) -> None:
        """Raise ``InvalidInput`` if ``policy`` may not be set on ``target``."""
        current = self.of_target(kind, target)
        if current.protected and policy != current:
            raise InvalidInput(
                f"{kind} {target!r} is protected (never deletable): its retention cannot be changed"
            )
        if kind == "stream" and policy.limited and self.effective(target).protected:
            raise InvalidInput(
                f"stream {target!r} is in the protected category "
                f"{self.category_of(target)!r}: it cannot have retention limits"
            )


def describe(policy: RetentionPolicy) -> dict[str, Any]:
    """The policy as plain values (for the CLI and reports)."""
    out: dict[str, Any] = {}
    for f in fields(policy):
        value = getattr(policy, f.name)
        out[f.name] = value.total_seconds() if isinstance(value, timedelta) else value
    return out


__all__ = [
    "EVENT_TYPE",
    "NO_POLICY",
    "RETENTION_STREAM",
    "RetentionPolicy",
    "RetentionRules",
    "describe",
    "encode",
    "make_policy",
]
