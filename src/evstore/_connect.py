"""Choosing a backend by URL: ``connect()`` and ``connect_async()``."""

from __future__ import annotations

import importlib
import os
from typing import Any

from evstore._async.store import AsyncEventStore
from evstore._settings import StoreSettings
from evstore._sync.store import EventStore
from evstore.errors import InvalidInput

DEFAULT_URL = "sqlite:///evstore.db"

# scheme -> module with open_backend(url, **options) and, if it has a native asyncio
# driver, open_async_backend(url, **options). Imported lazily: drivers are optional.
BACKENDS = {
    "memory": "evstore.backends.memory",
    "sqlite": "evstore.backends.sqlite",
    "postgresql": "evstore.backends.postgresql",
    "postgres": "evstore.backends.postgresql",
    "mongodb": "evstore.backends.mongodb",
    "mongodb+srv": "evstore.backends.mongodb",
}

STORE_OPTIONS = ("category_separator", "page_size", "poll_interval", "partitioning", "tenant")


def _module(url: str | None) -> tuple[str, Any]:
    if url is None:
        url = os.environ.get("EVSTORE_URL") or DEFAULT_URL
    if not isinstance(url, str):
        raise InvalidInput(f"url must be a str, got {type(url).__name__}")
    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme not in BACKENDS:
        raise InvalidInput(
            f"unsupported URL {url!r}; use one of " + ", ".join(f"{s}://" for s in BACKENDS)
        )
    try:
        module = importlib.import_module(BACKENDS[scheme])
    except ImportError as e:
        raise InvalidInput(
            f"the {scheme} backend needs an extra: pip install 'evstore[{scheme}]' ({e})"
        ) from e
    return url, module


def _split(options: dict[str, Any]) -> tuple[StoreSettings, dict[str, Any]]:
    """Validate the store's own options first: a bad one must not open (create) a database."""
    store = {k: options.pop(k) for k in STORE_OPTIONS if k in options}
    return StoreSettings(**store), options


def connect(url: str | None = None, **options: Any) -> EventStore:
    """Open an event store; the URL picks the backend.

    ``memory://``, ``sqlite:///path.db`` (the default: ``./evstore.db``, or ``$EVSTORE_URL``),
    ``postgresql://...``, ``mongodb://...``. Store options:
    ``category_separator`` (default ``"-"``), ``page_size``, ``poll_interval``,
    ``partitioning`` (a strategy from :mod:`evstore.partitioning` giving each stream its
    partition key) and ``tenant`` (a store that only reads and writes that tenant's streams,
    ``{tenant}_...``; any other stream id raises ``InvalidInput``); the rest go to the
    backend.
    """
    url, module = _module(url)
    store_options, backend_options = _split(dict(options))
    return EventStore(module.open_backend(url, **backend_options), settings=store_options)


def connect_async(url: str | None = None, **options: Any) -> AsyncEventStore:
    """Open an asyncio event store; same URLs and options as :func:`connect`."""
    url, module = _module(url)
    store_options, backend_options = _split(dict(options))
    opener = getattr(module, "open_async_backend", None)
    if opener is None:
        from evstore.backends._threaded import ThreadedBackend

        backend: Any = ThreadedBackend(module.open_backend(url, **backend_options))
    else:
        backend = opener(url, **backend_options)
    return AsyncEventStore(backend, settings=store_options)
