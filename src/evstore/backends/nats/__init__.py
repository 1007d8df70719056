"""``nats://`` - NATS JetStream (a single server or a cluster), with nats-py.

The storage code lives once, in ``backend_async.py`` (asyncio; how appends, versions,
idempotency and reads map onto JetStream is explained there, the names and bodies in
``_mapping.py``); ``backend.py`` runs it for the sync store on an event loop of its own.

URL: ``nats://host:port[,host:port...][/NAME][?option=value&...]``. ``NAME`` (default
``evstore``) names the store: its JetStream streams, subjects and KV buckets start with
it, so one NATS system holds many stores. Options, in the query or as keyword arguments
to ``connect``/``connect_async``:

``replicas`` (1)
    JetStream replicas of the log stream and the KV buckets (1 or 3; 3 needs a cluster).
``partitions`` (the store's; 1 for a new one)
    log partitions, one JetStream stream each, fixed when the store is created.
``duplicate_window`` (120 s)
    how long the server remembers event ids (``Nats-Msg-Id``) to refuse duplicates.
``retry_timeout`` (30 s)
    how long transient failures (leader elections, reconnects) are retried before an
    operation raises ``BackendUnavailable``.
``request_timeout`` (5 s)
    how long one request waits for its answer.

Credentials in the URL (``nats://user:pass@host:port``) go to the client.
See ``docs/nats.md``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import parse_qsl, unquote

from evstore.backends.nats.backend import NatsBackend
from evstore.backends.nats.backend_async import AsyncNatsBackend
from evstore.errors import InvalidInput
from evstore.spi._model import partitions_option

__all__ = ["AsyncNatsBackend", "NatsBackend", "open_async_backend", "open_backend"]

_OPTIONS: dict[str, Callable[[Any], Any]] = {
    "name": str,
    "replicas": int,
    "partitions": partitions_option,
    "duplicate_window": float,
    "retry_timeout": float,
    "request_timeout": float,
}


def parse_url(url: str, options: dict[str, Any]) -> tuple[list[str], dict[str, Any]]:
    """The server URLs and the backend's keyword arguments; bad ones raise InvalidInput."""
    if not url.lower().startswith("nats://"):
        raise InvalidInput(f"a NATS URL starts with nats://, got {url!r}")
    rest = url[len("nats://") :]
    rest, _, query = rest.partition("?")
    hosts, _, path = rest.partition("/")
    credentials = ""
    if "@" in hosts:
        credentials, _, hosts = hosts.rpartition("@")
        credentials += "@"
    servers = []
    for host in hosts.split(","):
        host = host.strip()
        if not host:
            raise InvalidInput(f"empty host in NATS URL {url!r}")
        if ":" not in host:
            host += ":4222"
        name, _, port = host.rpartition(":")
        if not name or not port.isdigit() or not 0 < int(port) < 65536:
            raise InvalidInput(f"bad host:port {host!r} in NATS URL {url!r}")
        servers.append(f"nats://{credentials}{host}")
    given: dict[str, Any] = dict(parse_qsl(query, keep_blank_values=True))
    if path.strip("/"):
        given["name"] = unquote(path.strip("/"))
    given.update(options)
    kwargs: dict[str, Any] = {}
    for key, value in given.items():
        kind = _OPTIONS.get(key)
        if kind is None:
            raise InvalidInput(f"unknown NATS option {key!r}; known: {', '.join(sorted(_OPTIONS))}")
        try:
            kwargs[key] = kind(value)
        except (TypeError, ValueError):
            raise InvalidInput(
                f"NATS option {key} must be {getattr(kind, '__name__', kind)}, got {value!r}"
            ) from None
    if kwargs.get("partitions", 0) is None:
        del kwargs["partitions"]
    if kwargs.get("replicas", 1) not in (1, 3, 5):
        raise InvalidInput(f"replicas must be 1, 3 or 5, got {kwargs['replicas']}")
    for key in ("duplicate_window", "retry_timeout", "request_timeout"):
        if key in kwargs and not kwargs[key] > 0:
            raise InvalidInput(f"{key} must be > 0 seconds, got {kwargs[key]}")
    kwargs.setdefault("name", "evstore")
    return servers, kwargs


def open_async_backend(url: str, **options: Any) -> AsyncNatsBackend:
    """Open ``nats://host:port[,...][/NAME]`` for the asyncio store.

    With ``partitions`` given it connects lazily (a count other than the recorded one is
    refused at the first call). Without it, the store's count must be known now: a
    short-lived client on a thread of its own asks the server (opening, or creating, the
    store) while this call blocks.
    """
    servers, kwargs = parse_url(url, options)
    name = kwargs.pop("name")
    if "partitions" not in kwargs:
        kwargs["partitions"] = _recorded_partitions(servers, name, kwargs)
    return AsyncNatsBackend(servers, name, **kwargs)


def _recorded_partitions(servers: list[str], name: str, kwargs: dict[str, Any]) -> int:
    async def ask() -> int:
        probe = AsyncNatsBackend(servers, name, **kwargs)
        try:
            return await probe.open()
        finally:
            await probe.close()

    with ThreadPoolExecutor(1, thread_name_prefix="evstore-nats-open") as pool:
        return pool.submit(asyncio.run, ask()).result()


def open_backend(url: str, **options: Any) -> NatsBackend:
    """Open ``nats://...`` for the sync store: the asyncio backend on a loop of its own,
    connected at once (so its number of partitions is known)."""
    servers, kwargs = parse_url(url, options)
    name = kwargs.pop("name")
    return NatsBackend(AsyncNatsBackend(servers, name, **kwargs))
