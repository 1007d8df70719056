"""NATS JetStream: one single-node nats-server (file storage in a temporary directory)
started once per test session on a free loopback port; each test gets a store name of its
own (its own JetStream streams and KV buckets). A server that cannot start fails the tests;
it never skips them.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from evstore.testing import StoreFactory
from tests._nats_servers import shared_server


@contextmanager
def factory(tmp_path: Path) -> Iterator[StoreFactory]:
    server = shared_server()
    yield StoreFactory(f"{server.url}/t{uuid.uuid4().hex[:16]}", across_processes=True)
