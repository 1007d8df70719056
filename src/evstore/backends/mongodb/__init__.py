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
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pymongo import MongoClient
from pymongo.errors import ConfigurationError, InvalidName, PyMongoError

from evstore.backends.mongodb.backend import MongoBackend
from evstore.backends.mongodb.backend_async import AsyncMongoBackend
from evstore.errors import BackendUnavailable, InvalidInput
from evstore.spi._model import partitions_option

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


def _partitions(url: str, options: dict[str, Any]) -> int:
    """The log partition count to open with: the ``partitions`` option (checked against
    the store when its schema is made), else the count recorded in the store (1 if none)."""
    requested = partitions_option(options.pop("partitions", None))
    if requested is not None:
        return requested
    database, _, _, client_options = _options(options)
    try:
        client: MongoClient[dict[str, Any]] = MongoClient(url, **client_options)
        try:
            name = database or client.get_default_database("evstore").name
            meta = client[name].meta.find_one({"_id": "partitions"})
        finally:
            client.close()
    except (ConfigurationError, InvalidName, ValueError, TypeError) as e:
        raise InvalidInput(f"bad MongoDB URL or option: {e}") from e
    except PyMongoError as e:
        raise BackendUnavailable(f"MongoDB error reading the store's partitions: {e}") from e
    return 1 if meta is None else int(meta["value"])


def _our_query(url: str, options: dict[str, Any]) -> str:
    """Move ``partitions`` and ``sharded`` from the URL's query into ``options`` (pymongo
    does not know them); an option given as a keyword wins."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    ours = {key: value for key, value in query if key in ("partitions", "sharded")}
    if not ours:
        return url
    for key, value in ours.items():
        options.setdefault(key, value)
    rest = urlencode([(k, v) for k, v in query if k not in ours])
    return urlunsplit((parts.scheme, parts.netloc, parts.path, rest, parts.fragment))


def open_backend(url: str, **options: Any) -> MongoBackend:
    """Open ``mongodb://host/db?...``; options ``database``, ``retry_timeout``, ``sharded``,
    ``partitions`` (log partitions of a new store; also ``?partitions=N`` in the URL) and
    any pymongo client option."""
    options = dict(options)
    url = _our_query(url, options)
    partitions = _partitions(url, options)
    return MongoBackend.open(url, *_options(options), partitions)


def open_async_backend(url: str, **options: Any) -> AsyncMongoBackend:
    """The asyncio twin of :func:`open_backend` (pymongo's native asyncio client)."""
    options = dict(options)
    url = _our_query(url, options)
    partitions = _partitions(url, options)
    return AsyncMongoBackend.open(url, *_options(options), partitions)
