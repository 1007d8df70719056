"""SQLite with 16 log partitions (``partitions=16``): the same contract, partitioned."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evstore.testing import StoreFactory


@contextmanager
def factory(tmp_path: Path) -> Iterator[StoreFactory]:
    yield StoreFactory(f"sqlite:///{tmp_path / 'events.db'}?partitions=16", across_processes=True)
