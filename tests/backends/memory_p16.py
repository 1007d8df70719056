"""The in-process backend with 16 log partitions: the same contract, partitioned."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evstore.testing import StoreFactory


@contextmanager
def factory(tmp_path: Path) -> Iterator[StoreFactory]:
    yield StoreFactory(f"memory://test-{uuid.uuid4().hex}?partitions=16", across_processes=False)
