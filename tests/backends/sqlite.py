"""The embedded default: a fresh SQLite file per test."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evstore.testing import StoreFactory


@contextmanager
def factory(tmp_path: Path) -> Iterator[StoreFactory]:
    yield StoreFactory(f"sqlite:///{tmp_path / 'events.db'}", across_processes=True)
