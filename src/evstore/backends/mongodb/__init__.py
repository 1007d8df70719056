"""``mongodb://`` and ``mongodb+srv://`` - MongoDB replica sets and sharded clusters.

The backend is written once, for pymongo's native asyncio client, in
``evstore.backends.mongodb.backend_async`` (how appends, the global order and live delivery work is
explained there); ``evstore.backends.mongodb.backend`` is generated from it for ``MongoClient``.

URL: ``mongodb://host:port/DATABASE?replicaSet=rs0`` (database ``evstore`` when the path is
empty); every pymongo URL option works. Options: ``database`` (overrides the path),
``retry_timeout`` (seconds to keep retrying transient transaction errors, default 90), and
any pymongo client keyword argument. See ``docs/mongodb.md``.
"""

from __future__ import annotations

from typing import Any

from evstore.backends.mongodb.backend import MongoBackend
from evstore.backends.mongodb.backend_async import AsyncMongoBackend
from evstore.errors import InvalidInput

__all__ = ["AsyncMongoBackend", "MongoBackend", "open_async_backend", "open_backend"]


def _options(options: dict[str, Any]) -> tuple[str, float, bool, dict[str, Any]]:
    """Split evstore's options from the client's: (database, retry timeout, sharded, rest)."""
    options = dict(options)
    database = options.pop("database", None)
    retry_timeout = options.pop("retry_timeout", 90.0)
    try:
        retry_timeout = float(retry_timeout)
    except (TypeError, ValueError):
        raise InvalidInput("retry_timeout must be a number of seconds") from None
    if database is not None and not isinstance(database, str):
        raise InvalidInput("database must be a str")
    sharded = options.pop("sharded", False)
    if sharded not in (True, False, "true", "false", "1", "0"):
        raise InvalidInput(f"sharded must be true or false, not {sharded!r}")
    return database or "", retry_timeout, sharded in (True, "true", "1"), options


def open_backend(url: str, **options: Any) -> MongoBackend:
    """Open ``mongodb://host/db?...``; options ``database``, ``retry_timeout``, ``sharded``
    and any pymongo client option."""
    return MongoBackend.open(url, *_options(options))


def open_async_backend(url: str, **options: Any) -> AsyncMongoBackend:
    """The asyncio twin of :func:`open_backend` (pymongo's native asyncio client)."""
    return AsyncMongoBackend.open(url, *_options(options))
