"""``mongodb://`` and ``mongodb+srv://`` - MongoDB replica sets and sharded clusters.

The backend is written once, for pymongo's native asyncio client, in
``evstore._async.mongo_backend`` (how appends, the global order and live delivery work is
explained there); ``evstore._sync.mongo_backend`` is generated from it for ``MongoClient``.

URL: ``mongodb://host:port/DATABASE?replicaSet=rs0`` (database ``evstore`` when the path is
empty); every pymongo URL option works. Options: ``database`` (overrides the path),
``retry_timeout`` (seconds to keep retrying transient transaction errors, default 90), and
any pymongo client keyword argument. See ``docs/mongodb.md``.
"""

from __future__ import annotations

from evstore._async.mongo_backend import AsyncMongoBackend, open_async_backend
from evstore._sync.mongo_backend import MongoBackend, open_backend

__all__ = ["AsyncMongoBackend", "MongoBackend", "open_async_backend", "open_backend"]
