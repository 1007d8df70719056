"""Partitioning strategies: how stream ids are built and which partition key each carries.

A strategy does two things. It *builds* stream ids from domain values, in the seed's
patterns, and it *derives* a stream's partition key back from its id, so every event of a
stream always carries the same key. Give one to the store and it stores the key (and a
hash of it) with each appended event::

    store = evstore.connect("sqlite:///app.db", partitioning=TenantPartitioning())
    stream = TenantPartitioning().stream_id("acme", "user", "12345")   # acme_user_12345
    store.append(stream, [...])          # stored with partition key "acme"

Backends may use the key for physical placement (PostgreSQL partitions, a MongoDB shard
key, a JetStream stream per shard). ``subscribe(partition=(i, n))`` and
``read_all(partition=(i, n))`` deliver the events whose partition hash ``% n == i``: n
consumers split the log with no overlap and no loss, and each key (so each stream) goes to
exactly one of them, in order. Without a strategy, the key is the stream id itself.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

from evstore.errors import InvalidInput
from evstore.spi._model import stable_hash

__all__ = ["HashPartitioning", "Partitioning", "TemporalPartitioning", "TenantPartitioning"]


@runtime_checkable
class Partitioning(Protocol):
    """What the store asks a strategy: a stream's partition key, and that key's hash."""

    def partition_key(self, stream_id: str) -> str:
        """The partition key of a stream, derived from its id alone."""
        ...

    def partition_hash(self, key: str) -> int:
        """A non-negative int, the same on every machine and Python run."""
        ...


def _part(value: object, what: str, separator: str) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"{what} must be a non-empty str, got {value!r}")
    if separator in value:
        raise InvalidInput(f"{what} {value!r} must not contain the separator {separator!r}")
    return value


def _tenant(value: object, separator: str) -> str:
    """A tenant name whose prefix (name + separator) starts no other tenant's prefix.

    With separator ``::`` the tenant ``acme:`` has the prefix ``acme:::``, which starts
    with ``acme::``, tenant ``acme``'s: refused. The rule: the separator first occurs in
    ``name + separator`` at its end; two names that keep it can never be prefixes of each
    other's streams.
    """
    name = _part(value, "tenant", separator)
    if (name + separator).find(separator) != len(name):
        raise InvalidInput(
            f"tenant {name!r} ends with part of the separator {separator!r}: its streams "
            "would start like another tenant's; choose another name"
        )
    return name


def _separator(value: object) -> str:
    if not isinstance(value, str) or not value:
        raise InvalidInput(f"separator must be a non-empty str, got {value!r}")
    return value


def _id(value: object) -> str:
    if not isinstance(value, str | int) or isinstance(value, bool) or value == "":
        raise InvalidInput(f"aggregate_id must be a non-empty str or an int, got {value!r}")
    return str(value)


class TenantPartitioning:
    """``{tenant}_{aggregate_type}_{aggregate_id}`` (``acme_user_12345``); key: the tenant.

    All of a tenant's streams share one partition, so one consumer of a partitioned
    subscription sees a tenant's events in order. ``connect(..., tenant="acme")`` opens a
    store limited to the streams of one tenant, whose ids start with ``acme_``.
    """

    def __init__(self, *, separator: str = "_") -> None:
        self.separator = _separator(separator)

    def stream_id(self, tenant: str, aggregate_type: str, aggregate_id: str | int) -> str:
        """The stream id of one tenant's aggregate."""
        sep = self.separator
        return sep.join(
            (
                _tenant(tenant, sep),
                _part(aggregate_type, "aggregate_type", sep),
                _id(aggregate_id),
            )
        )

    def prefix(self, tenant: str) -> str:
        """The prefix of every stream id of ``tenant`` (``acme_``)."""
        return _tenant(tenant, self.separator) + self.separator

    def partition_key(self, stream_id: str) -> str:
        """The tenant: the id up to the first separator."""
        tenant, sep, rest = stream_id.partition(self.separator)
        if not sep or not tenant or not rest:
            raise InvalidInput(
                f"stream id {stream_id!r} does not start with a tenant and {self.separator!r}; "
                "build it with TenantPartitioning().stream_id(tenant, type, id)"
            )
        return tenant

    def partition_hash(self, key: str) -> int:
        """The stable hash of the key."""
        return stable_hash(key)

    def __repr__(self) -> str:
        return f"TenantPartitioning(separator={self.separator!r})"


class TemporalPartitioning:
    """``{aggregate_type}_{year}_{month}_{aggregate_id}`` (``order_2025_01_54321``).

    The key is the type and month (``order_2025_01``), taken from the aggregate's creation
    time (or its first event's ``occurred_at``), in UTC. Old months' partitions stop
    growing, so they can be archived or placed on cheaper storage.
    """

    def __init__(self, *, separator: str = "_") -> None:
        self.separator = _separator(separator)

    def stream_id(
        self, aggregate_type: str, aggregate_id: str | int, at: datetime | None = None
    ) -> str:
        """The stream id of an aggregate created at ``at`` (default: now)."""
        if at is None:
            at = datetime.now(UTC)
        if not isinstance(at, datetime) or at.tzinfo is None:
            raise InvalidInput(f"at must be a timezone-aware datetime, got {at!r}")
        at = at.astimezone(UTC)
        sep = self.separator
        kind = _part(aggregate_type, "aggregate_type", sep)
        return sep.join((kind, f"{at.year:04d}", f"{at.month:02d}", _id(aggregate_id)))

    def partition_key(self, stream_id: str) -> str:
        """``{aggregate_type}_{year}_{month}``: the id without its last part."""
        parts = stream_id.split(self.separator, 3)
        if len(parts) != 4 or not (parts[1].isdigit() and parts[2].isdigit()) or not parts[3]:
            raise InvalidInput(
                f"stream id {stream_id!r} is not {{type}}{self.separator}{{year}}"
                f"{self.separator}{{month}}{self.separator}{{id}}; build it with "
                "TemporalPartitioning().stream_id(type, id, at)"
            )
        return self.separator.join(parts[:3])

    def partition_hash(self, key: str) -> int:
        """The stable hash of the key."""
        return stable_hash(key)

    def __repr__(self) -> str:
        return f"TemporalPartitioning(separator={self.separator!r})"


class HashPartitioning:
    """``{aggregate_type}_{aggregate_id}`` spread over ``shards`` by a stable hash of the id.

    The key is ``{aggregate_type}_{shard:02d}`` (the seed's ``{type}_{hash(id)}``) and its
    hash is the shard number itself, so ``partition=(i, n)`` with n dividing ``shards``
    gives every consumer the same number of shards. The shard is
    ``blake2b(aggregate_id) % shards``: the same on every machine and every Python run
    (Python's built-in ``hash`` of a str is salted per process and must never be used).
    """

    def __init__(self, shards: int = 16, *, separator: str = "_") -> None:
        if isinstance(shards, bool) or not isinstance(shards, int) or shards < 1:
            raise InvalidInput(f"shards must be an int >= 1, got {shards!r}")
        self.shards = shards
        self.separator = _separator(separator)

    def shard(self, aggregate_id: str | int) -> int:
        """The shard of an aggregate id: ``0 <= shard < shards``."""
        return stable_hash(_id(aggregate_id)) % self.shards

    def stream_id(self, aggregate_type: str, aggregate_id: str | int) -> str:
        """The stream id of an aggregate."""
        sep = self.separator
        return sep.join((_part(aggregate_type, "aggregate_type", sep), _id(aggregate_id)))

    def partition_key(self, stream_id: str) -> str:
        """``{aggregate_type}_{shard:02d}``."""
        kind, sep, aggregate_id = stream_id.partition(self.separator)
        if not sep or not kind or not aggregate_id:
            raise InvalidInput(
                f"stream id {stream_id!r} is not {{type}}{self.separator}{{id}}; build it "
                "with HashPartitioning().stream_id(type, id)"
            )
        return f"{kind}{self.separator}{self.shard(aggregate_id):02d}"

    def partition_hash(self, key: str) -> int:
        """The shard number at the end of the key."""
        return int(key.rsplit(self.separator, 1)[1])

    def __repr__(self) -> str:
        return f"HashPartitioning(shards={self.shards}, separator={self.separator!r})"
