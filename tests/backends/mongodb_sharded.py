"""MongoDB (SecantusDB) opened with ``sharded=True``: the layout for a sharded cluster (shard
keys led by ``log_partition``, no unique index on event ids). SecantusDB has no sharding, so
this runs the layout's queries and checks, not a cluster."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evstore.testing import StoreFactory
from tests.backends.mongodb import fresh_database


@contextmanager
def factory(tmp_path: Path) -> Iterator[StoreFactory]:
    with fresh_database() as url:
        yield StoreFactory(f"{url}{'&' if '?' in url else '?'}sharded=true", across_processes=True)
