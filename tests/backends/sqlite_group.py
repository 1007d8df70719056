"""SQLite with every append written through the group-commit transaction, even alone.

The contract suite run on this factory checks that an append keeps its semantics (its own
expected-version check, idempotency, DuplicateEventId, all or nothing) inside a group; its
racing-writer tests mix conflicts and repeats into real groups.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evstore.testing import StoreFactory


@contextmanager
def factory(tmp_path: Path) -> Iterator[StoreFactory]:
    url = f"sqlite:///{tmp_path / 'events.db'}?group_commit=always"
    yield StoreFactory(url, across_processes=True)
