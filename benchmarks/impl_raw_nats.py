"""The raw nats-py client on NATS JetStream: the same publishes and direct gets evstore
makes, without evstore.

One JetStream stream (file storage, replicas 1, ``allow_direct``, ``allow_atomic``), a
subject per event stream, ``Nats-Msg-Id`` on every message. W1 publishes one message per
new stream with ``Nats-Expected-Last-Subject-Sequence: 0`` (the server's "new stream"
check), W2 one ADR-50 atomic batch per append with the expectation on its first message
(the client remembers each stream's last sequence from its acks, so it reads nothing
first), W3 and W4 batch direct gets (``next_by_subj``) with each payload decoded by orjson.
nats-py is asyncio only: calls run on a private event loop thread, as evstore's sync face.
"""

from __future__ import annotations

import asyncio
import threading
import uuid
from collections.abc import Coroutine, Sequence
from typing import Any, TypeVar

import nats
import orjson
from nats.js.api import StorageType, StreamConfig

from benchmarks._common import Database, NotApplicable, payloads, stream_name

NAME = "raw"
POPULATE_BATCH = 1000
PAGE = 256  # messages per batch direct get (evstore's page)
T = TypeVar("T")


class NatsImpl:
    """nats-py 2.16 publishing and reading one JetStream stream directly."""

    name = NAME

    def __init__(self, db: Database) -> None:
        assert db.nats_server is not None and db.nats_name is not None
        self.prefix = db.nats_name
        self.stream = f"{db.nats_name}-raw"
        self.last: dict[str, int] = {}  # last sequence per subject, from the acks
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.nc = self._run(nats.connect(db.nats_server))
        self._run(
            self.nc.jetstream().add_stream(
                StreamConfig(
                    name=self.stream,
                    subjects=[f"{self.prefix}.e.*"],
                    storage=StorageType.FILE,
                    num_replicas=1,
                    allow_direct=True,
                    allow_atomic=True,
                )
            )
        )

    def _run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self) -> None:
        self._run(self.nc.close())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)

    def settings(self) -> dict[str, str]:
        return {"replicas": "1", "storage": "file", "sync_interval": "server default (2 min)"}

    # -- writes -----------------------------------------------------------------------------

    async def _publish(self, subject: str, body: bytes, headers: dict[str, str]) -> int:
        reply = await self.nc.request(subject, body, timeout=10, headers=headers)
        ack = orjson.loads(reply.data)
        if "error" in ack:
            raise RuntimeError(f"JetStream refused the publish: {ack['error']}")
        seq: int = ack["seq"]
        self.last[subject] = seq
        return seq

    def append_new_streams(self, ids: Sequence[uuid.UUID], datas: Sequence[dict[str, Any]]) -> None:
        async def run() -> None:
            for ident, data in zip(ids, datas, strict=True):
                await self._publish(
                    f"{self.prefix}.e.{stream_name(ident)}",
                    orjson.dumps(data),
                    {"Nats-Msg-Id": uuid.uuid4().hex, "Nats-Expected-Last-Subject-Sequence": "0"},
                )

        self._run(run())

    async def _batch(self, subject: str, datas: Sequence[dict[str, Any]]) -> None:
        batch, last = uuid.uuid4().hex, len(datas)
        expected = str(self.last.get(subject, 0))
        for i, data in enumerate(datas, start=1):
            headers = {"Nats-Msg-Id": uuid.uuid4().hex, "Nats-Batch-Id": batch}
            headers["Nats-Batch-Sequence"] = str(i)
            body = orjson.dumps(data)
            if i == 1:
                headers["Nats-Expected-Last-Subject-Sequence"] = expected
            if i == last:
                headers["Nats-Batch-Commit"] = "1"
                await self._publish(subject, body, headers)
            elif i == 1:
                reply = await self.nc.request(subject, body, timeout=10, headers=headers)
                if reply.data:
                    raise RuntimeError(f"JetStream refused the batch: {reply.data!r}")
            else:
                await self.nc.publish(subject, body, headers=headers)

    def append_batches(
        self, ident: uuid.UUID, batches: Sequence[Sequence[dict[str, Any]]], version: int = 0
    ) -> None:
        subject = f"{self.prefix}.e.{stream_name(ident)}"

        async def run() -> None:
            for batch in batches:
                await self._batch(subject, batch)

        self._run(run())

    def populate(self, ident: uuid.UUID, n: int, start: int = 0) -> None:
        subject = f"{self.prefix}.e.{stream_name(ident)}"

        async def run() -> None:
            for low in range(0, n, POPULATE_BATCH):
                await self._batch(subject, payloads(min(POPULATE_BATCH, n - low), start + low))

        self._run(run())

    # -- reads ------------------------------------------------------------------------------

    async def _read(self, subject: str) -> int:
        """Every message on ``subject`` by batch direct gets, payloads decoded."""
        nc, seq, count = self.nc, 1, 0
        while True:
            inbox = nc.new_inbox()
            sub = await nc.subscribe(inbox)
            request = orjson.dumps({"seq": seq, "next_by_subj": subject, "batch": PAGE})
            await nc.publish(f"$JS.API.DIRECT.GET.{self.stream}", request, reply=inbox)
            got = 0
            while True:
                msg = await sub.next_msg(10)
                headers = msg.headers or {}
                if "Status" in headers:  # the end-of-batch marker (204) or nothing (404)
                    break
                orjson.loads(msg.data)
                seq = int(headers["Nats-Sequence"]) + 1
                got += 1
            await sub.unsubscribe()
            count += got
            if got < PAGE:
                return count

    def read_stream(self, ident: uuid.UUID) -> int:
        return self._run(self._read(f"{self.prefix}.e.{stream_name(ident)}"))

    def read_log(self, page: int) -> int:
        return self._run(self._read(f"{self.prefix}.e.*"))

    # -- what a raw client has no counterpart for -------------------------------------------

    def append_singly(self, *args: Any) -> None:
        raise NotApplicable("W5/W9 are not run on NATS")

    def append_one(self, *args: Any) -> None:
        raise NotApplicable("no subscription mechanism in a raw client")

    def start_subscriber(self, *args: Any) -> Any:
        raise NotApplicable("no subscription mechanism in a raw client")

    def w6(self, *args: Any) -> dict[str, float]:
        raise NotApplicable("no domain layer in a raw client")
