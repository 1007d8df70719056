"""MongoDB (SecantusDB) with 16 log partitions opened with ``sharded=True`` (see
mongodb_sharded.py): every append names its partition's shard key."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evstore.testing import StoreFactory
from tests.backends.mongodb import fresh_database


@contextmanager
def factory(tmp_path: Path) -> Iterator[StoreFactory]:
    with fresh_database() as url:
        query = "sharded=true&partitions=16"
        yield StoreFactory(f"{url}{'&' if '?' in url else '?'}{query}", across_processes=True)
