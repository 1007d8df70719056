"""PostgreSQL with the events table hash-partitioned (16 partitions): the same contract."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evstore.testing import StoreFactory
from tests.backends.postgresql import fresh_schema


@contextmanager
def factory(tmp_path: Path) -> Iterator[StoreFactory]:
    with fresh_schema(table_partitions=16) as url:
        yield StoreFactory(url, across_processes=True)
