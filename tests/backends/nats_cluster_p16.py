"""NATS JetStream on the 3-node cluster, replicas = 3, a store of 16 log partitions: 16
R3 streams whose leaders the store spreads over the nodes. Each test's streams are deleted
afterwards (thousands of idle Raft groups would slow the test cluster down)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evstore.testing import StoreFactory
from tests._nats_servers import drop_store, shared_cluster


@contextmanager
def factory(tmp_path: Path) -> Iterator[StoreFactory]:
    node = shared_cluster().servers[0]
    name = f"q{uuid.uuid4().hex[:16]}"
    try:
        yield StoreFactory(
            f"{node.url}/{name}?partitions=16", across_processes=True, options={"replicas": 3}
        )
    finally:
        drop_store([s.url for s in shared_cluster().servers], name)
