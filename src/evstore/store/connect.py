"""Opening a store by URL: ``connect()``, ``connect_async()`` and ``migrate()``.

The URL's scheme names the backend: an entry point of the group ``evstore.backends``
(:mod:`evstore.spi.plugin`), or the module given as ``backend=``.
"""

from __future__ import annotations

import contextlib
import difflib
import importlib
import os
from collections.abc import Iterator
from importlib.metadata import EntryPoint, entry_points
from types import ModuleType
from typing import Any

from evstore.backends._threaded import threaded
from evstore.errors import InvalidInput
from evstore.spi.backend_async import AsyncBackend
from evstore.spi.plugin import (
    ENTRY_POINT_GROUP,
    AsyncBackendModule,
    BackendModule,
    MigratingBackendModule,
)
from evstore.store.facade import EventStore
from evstore.store.facade_async import AsyncEventStore
from evstore.store.settings import StoreSettings

DEFAULT_URL = "sqlite:///evstore.db"

STORE_OPTIONS = (
    "category_separator",
    "page_size",
    "poll_interval",
    "partitioning",
    "tenant",
    "retention_refresh",
)


def _entry_points() -> dict[str, EntryPoint]:
    return {ep.name.lower(): ep for ep in entry_points(group=ENTRY_POINT_GROUP)}


def _load(entry: EntryPoint, scheme: str) -> ModuleType:
    try:
        module = entry.load()
    except ImportError as e:
        raise InvalidInput(
            f"the {scheme}:// backend needs a driver that is not installed: "
            f"pip install '{_install_hint(entry)}' ({e})"
        ) from e
    if not isinstance(module, ModuleType):
        raise InvalidInput(f"entry point {entry.name!r} of {ENTRY_POINT_GROUP} is not a module")
    return module


def _install_hint(entry: EntryPoint) -> str:
    """What to pip install for a backend: ``evstore[EXTRA]`` (an extra that exists, named
    after the backend module: ``postgres://`` -> ``evstore[postgresql]``), or the
    distribution that registered the scheme."""
    if entry.dist is None:
        return "the distribution of the backend"
    name = entry.dist.name
    extra = entry.value.split(":", 1)[0].rsplit(".", 1)[-1]
    extras = entry.dist.metadata.get_all("Provides-Extra") or []
    return f"{name}[{extra}]" if extra in extras else name


def backend_module(url: str | None, backend: ModuleType | str | None = None) -> tuple[str, Any]:
    """The URL (``$EVSTORE_URL`` or the default when None) and the backend module serving it.

    ``backend`` overrides the scheme: a module, or the dotted name of one.
    """
    if url is None:
        url = os.environ.get("EVSTORE_URL") or DEFAULT_URL
    if not isinstance(url, str):
        raise InvalidInput(f"url must be a str, got {type(url).__name__}")
    if "://" not in url:
        hint = f"; for an SQLite file write 'sqlite:///{url}'" if url else ""
        raise InvalidInput(f"{url!r} is not a store URL (scheme://...){hint}")
    scheme = url.split("://", 1)[0].lower()
    if isinstance(backend, str):
        try:
            backend = importlib.import_module(backend)
        except ImportError as e:
            raise InvalidInput(f"cannot import backend module {backend!r}: {e}") from e
    if backend is None:
        known = _entry_points()
        if scheme not in known:
            raise InvalidInput(
                f"unsupported URL {url!r}; use one of "
                + ", ".join(f"{s}://" for s in sorted(known))
                + " (or install the distribution of a backend for it)"
            )
        backend = _load(known[scheme], scheme)
    if not isinstance(backend, BackendModule):
        raise InvalidInput(f"backend module {backend.__name__!r} has no open_backend(url, ...)")
    return url, backend


def _split(options: dict[str, Any]) -> tuple[StoreSettings, dict[str, Any]]:
    """Validate the store's own options first: a bad one must not open (create) a database."""
    store = {k: options.pop(k) for k in STORE_OPTIONS if k in options}
    return StoreSettings(**store), options


@contextlib.contextmanager
def _suggest(options: dict[str, Any]) -> Iterator[None]:
    """When the backend refuses an option, say which store option it may be a typo of."""
    try:
        yield
    except InvalidInput as e:
        for key in options:
            close = difflib.get_close_matches(key, STORE_OPTIONS, n=1, cutoff=0.8)
            if close and key in str(e):
                raise InvalidInput(f"{e}; did you mean {close[0]!r}?") from e
        raise


def connect(
    url: str | None = None, *, backend: ModuleType | str | None = None, **options: Any
) -> EventStore:
    """Open an event store; the URL picks the backend.

    ``memory://``, ``sqlite:///path.db`` (the default: ``./evstore.db``, or ``$EVSTORE_URL``),
    ``postgresql://...``, ``mongodb://...``, or any scheme a backend distribution registers
    (``backend=`` names the module instead). Store options:
    ``category_separator`` (default ``"-"``), ``page_size``, ``poll_interval``,
    ``partitioning`` (a strategy from :mod:`evstore.store.partitioning` giving each stream
    its partition key), ``tenant`` (a store that only reads and writes that tenant's
    streams, ``{tenant}_...``; any other stream id raises ``InvalidInput``) and
    ``retention_refresh`` (seconds a store may reuse the retention metadata it read; default
    0: read before every read); the rest go to the backend.
    """
    url, module = backend_module(url, backend)
    store_options, backend_options = _split(dict(options))
    with _suggest(backend_options):
        opened = module.open_backend(url, **backend_options)
    return EventStore(opened, settings=store_options, url=url)


def connect_async(
    url: str | None = None, *, backend: ModuleType | str | None = None, **options: Any
) -> AsyncEventStore:
    """Open an asyncio event store; same URLs and options as :func:`connect`."""
    url, module = backend_module(url, backend)
    store_options, backend_options = _split(dict(options))
    opened: AsyncBackend
    with _suggest(backend_options):
        if isinstance(module, AsyncBackendModule):
            opened = module.open_async_backend(url, **backend_options)
        else:
            opened = threaded(module.open_backend(url, **backend_options))
    return AsyncEventStore(opened, settings=store_options, url=url)


def migrate(
    url: str | None = None, *, backend: ModuleType | str | None = None, **options: Any
) -> tuple[int, int] | None:
    """Create or upgrade the store's schema; the schema versions (before, after) when the
    backend migrates explicitly, else None (opening the store created what it needs)."""
    url, module = backend_module(url, backend)
    if isinstance(module, MigratingBackendModule):
        return module.migrate(url, **options)
    connect(url, backend=module, **options).close()
    return None
