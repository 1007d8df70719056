"""The in-process backend: a private named store per test."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evstore.testing import StoreFactory


@contextmanager
def factory(tmp_path: Path) -> Iterator[StoreFactory]:
    yield StoreFactory(f"memory://test-{uuid.uuid4().hex}", across_processes=False)
