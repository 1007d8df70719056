"""NATS JetStream, one server, a store of 16 log partitions (16 JetStream streams); each
test's streams are deleted afterwards."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evstore.testing import StoreFactory
from tests._nats_servers import drop_store, shared_server


@contextmanager
def factory(tmp_path: Path) -> Iterator[StoreFactory]:
    server = shared_server()
    name = f"p{uuid.uuid4().hex[:16]}"
    try:
        yield StoreFactory(f"{server.url}/{name}?partitions=16", across_processes=True)
    finally:
        drop_store([server.url], name)
