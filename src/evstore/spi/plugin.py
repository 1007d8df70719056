"""How a backend plugs in: the module a URL scheme names, and the entry-point group.

A backend is a module registered under the entry-point group ``evstore.backends``, the
entry point's name being the URL scheme it serves. evstore's own backends are registered
the same way (see ``pyproject.toml``), so a backend in another distribution is opened by
URL exactly like ours::

    # the other distribution's pyproject.toml
    [project.entry-points."evstore.backends"]
    mydb = "mydb_evstore.backend"

A module may also be passed directly: ``evstore.connect(url, backend=module)``.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

from evstore.spi.backend import Backend
from evstore.spi.backend_async import AsyncBackend

ENTRY_POINT_GROUP = "evstore.backends"


@runtime_checkable
class BackendModule(Protocol):
    """Every backend module: opens a sync backend for a URL and the backend's options."""

    def open_backend(self, url: str, **options: Any) -> Backend:
        """A ready backend for ``url``; bad options raise ``InvalidInput``."""
        ...


@runtime_checkable
class AsyncBackendModule(BackendModule, Protocol):
    """A backend module with a native asyncio driver (otherwise threads serve asyncio)."""

    def open_async_backend(self, url: str, **options: Any) -> AsyncBackend:
        """A ready asyncio backend for ``url``."""
        ...


@runtime_checkable
class MigratingBackendModule(BackendModule, Protocol):
    """A backend module whose schema can be created or upgraded explicitly."""

    def migrate(self, url: str, **options: Any) -> tuple[int, int]:
        """Create or upgrade the schema; return the schema versions (before, after)."""
        ...
