"""``postgresql://`` (or ``postgres://``) - the production server, with psycopg 3.

The storage code lives once, in ``backend_async.py`` beside this file (asyncio); its sync
twin ``backend.py`` is generated from it; all of its SQL is in ``_sql.py``. This module
parses URLs and options, opens backends and migrates schemas.

Options, in the URL query or as keyword arguments to ``connect``/``connect_async``:

``schema`` (``evstore``)
    the PostgreSQL schema holding evstore's tables (created if missing).
``pool_min`` / ``pool_max`` (1 / 10)
    connections kept open / at most; ``pool_timeout`` (10 s) to get one.
``retry_timeout`` (10 s)
    how long lost connections are retried (server restart, failover) before an operation
    raises ``BackendUnavailable``.
``notify`` (true)
    wake subscribers with ``pg_notify`` (one per burst of appends, sent in the background
    outside the appends' transactions); false leaves them to poll.
``table_partitions`` (0)
    at creation, ``PARTITION BY HASH`` the events table on the partition key into this many
    table partitions (``table_partitions=16`` is a good start); 0 or 1: not partitioned. A
    storage detail: the store still has ONE log (this option was called ``partitions``
    before log partitions existed).
``partitions`` (1)
    the number of log partitions: PostgreSQL keeps one log, so only 1 is accepted (see
    docs/scaling.md for why); any other count is ``InvalidInput``.
``create_schema`` (true)
    false: never run DDL; the schema must have been created by ``evstore migrate``.
``stall_warning`` (10 s)
    log a warning when committed events have been held back from readers this long.

Every other query parameter (``sslmode``, ``connect_timeout``, ...) goes to libpq.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from evstore.backends.postgresql._sql import SCHEMA_VERSION
from evstore.backends.postgresql.backend import PostgresBackend
from evstore.backends.postgresql.backend_async import AsyncPostgresBackend
from evstore.errors import InvalidInput

__all__ = [
    "SCHEMA_VERSION",
    "AsyncPostgresBackend",
    "PostgresBackend",
    "migrate",
    "open_async_backend",
    "open_backend",
]

_OPTIONS: dict[str, type] = {
    "schema": str,
    "pool_min": int,
    "pool_max": int,
    "pool_timeout": float,
    "retry_timeout": float,
    "notify": bool,
    "table_partitions": int,
    "partitions": int,
    "create_schema": bool,
    "stall_warning": float,
}
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _convert(name: str, value: Any) -> Any:
    kind = _OPTIONS[name]
    if isinstance(value, kind) and not (kind in (int, float) and isinstance(value, bool)):
        return value
    if kind is bool and isinstance(value, str) and value.lower() in _TRUE + _FALSE:
        return value.lower() in _TRUE
    if kind is int and isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if kind is float and isinstance(value, int | float | str) and not isinstance(value, bool):
        try:
            number = float(value)
        except ValueError:
            pass
        else:
            if number >= 0:
                return number
    raise InvalidInput(f"PostgreSQL option {name} must be a {kind.__name__}, got {value!r}")


def parse_url(url: str, options: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """Split a URL into the libpq connection string and evstore's options."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("postgresql", "postgres"):
        raise InvalidInput(f"{url!r} is not a postgresql:// URL")
    ours: dict[str, Any] = {}
    libpq: list[tuple[str, str]] = []
    for key, value in parse_qsl(parts.query, keep_blank_values=True):
        if key in _OPTIONS:
            ours[key] = value
        else:
            libpq.append((key, value))
    unknown = set(options) - set(_OPTIONS)
    if unknown:
        raise InvalidInput(
            f"unknown PostgreSQL options {sorted(unknown)}; use {', '.join(_OPTIONS)} "
            "(libpq parameters go in the URL)"
        )
    ours.update(options)
    converted = {k: _convert(k, v) for k, v in ours.items()}
    log_partitions = converted.pop("partitions", None)
    if log_partitions not in (None, 1):
        raise InvalidInput(
            f"partitions={log_partitions}: a PostgreSQL store has one log (partitions=1); "
            "per-partition logs are not built on PostgreSQL, whose one server orders every "
            "append by transaction id anyway (docs/scaling.md). To hash-partition the events "
            f"TABLE (a storage detail, formerly this option) use table_partitions="
            f"{log_partitions}"
        )
    conninfo = urlunsplit(
        ("postgresql", parts.netloc, parts.path, urlencode(libpq, quote_via=quote), "")
    )
    return conninfo, converted


def open_backend(url: str, **options: Any) -> PostgresBackend:
    """A connected sync backend; creates the schema on first use unless told not to."""
    conninfo, opts = parse_url(url, options)
    backend = PostgresBackend(conninfo, **opts)
    try:
        backend.open()
    except BaseException:
        backend.close()
        raise
    return backend


def open_async_backend(url: str, **options: Any) -> AsyncPostgresBackend:
    """An asyncio backend; it connects (and creates the schema) on its first operation."""
    conninfo, opts = parse_url(url, options)
    return AsyncPostgresBackend(conninfo, **opts)


def migrate(url: str, **options: Any) -> tuple[int, int]:
    """Create or upgrade the schema explicitly (``evstore migrate``); (before, after)."""
    conninfo, opts = parse_url(url, options)
    opts["create_schema"] = True
    backend = PostgresBackend(conninfo, **opts)
    try:
        return backend.migrate()
    finally:
        backend.close()
