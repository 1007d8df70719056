"""MongoDB (SecantusDB) with 16 log partitions: one counter document per partition."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evstore.testing import StoreFactory
from tests.backends.mongodb import fresh_database


@contextmanager
def factory(tmp_path: Path) -> Iterator[StoreFactory]:
    with fresh_database() as url:
        yield StoreFactory(f"{url}{'&' if '?' in url else '?'}partitions=16", across_processes=True)
