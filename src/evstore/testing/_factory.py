"""How the contract suite opens stores on the database under test."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import evstore


@dataclass
class StoreFactory:
    """Opens stores on one fresh database.

    ``url`` is passed to :func:`evstore.connect`; ``across_processes`` says whether another
    process opening the same URL sees the same data (False for ``memory://``), which
    enables the multi-process tests. ``options`` are passed to every connect call.
    """

    url: str
    across_processes: bool = True
    options: dict[str, Any] = field(default_factory=dict)

    def connect(self, **options: Any) -> evstore.EventStore:
        """A new sync store on the database under test."""
        return evstore.connect(self.url, **{**self.options, **options})

    def connect_async(self, **options: Any) -> evstore.AsyncEventStore:
        """A new asyncio store on the database under test."""
        return evstore.connect_async(self.url, **{**self.options, **options})
