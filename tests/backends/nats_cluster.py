"""NATS JetStream on a 3-node cluster with replicas = 3: three nats-servers routed to
each other on free loopback ports, started once per test session; each test gets a store
name of its own (its R3 streams and KV buckets). Direct gets may be answered by any of the
three replicas, so this is where read-your-writes is put to the test.

The URL names one node (the client learns the others from it); ``replicas=3`` is an
option of every connect. Worker processes that open the URL alone find the R3 streams and
read as their replicas require.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evstore.testing import StoreFactory
from tests._nats_servers import shared_cluster


@contextmanager
def factory(tmp_path: Path) -> Iterator[StoreFactory]:
    node = shared_cluster().servers[0]
    yield StoreFactory(
        f"{node.url}/c{uuid.uuid4().hex[:16]}", across_processes=True, options={"replicas": 3}
    )
