"""NATS fault tests on a real 3-node JetStream cluster (replicas = 3), loopback only.

The leader of the log stream is killed with SIGKILL while writers append and a named
subscription delivers. Afterwards every acknowledged append must be stored exactly once,
at the position and version it was acknowledged with, and the subscription must have
delivered every event once, in order. The test prints what callers saw (errors, the
longest append) and the failover time; docs/nats.md quotes a run.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator

import nats
import orjson
import pytest

import evstore
from evstore.errors import BackendUnavailable
from tests._nats_servers import NatsCluster

pytestmark = pytest.mark.serial  # CPU-heavy cluster elections: run alone, after the parallel run

PER_WRITER = 2500
WRITERS = 2
KILL_AFTER = 1500  # acknowledged appends before the leader is killed


@pytest.fixture
def cluster() -> Iterator[NatsCluster]:
    c = NatsCluster()
    c.start()
    try:
        yield c
    finally:
        c.remove()


def stream_leader(cluster: NatsCluster, stream: str) -> str:
    """The server name of ``stream``'s current Raft leader."""

    async def ask() -> str:
        nc = await nats.connect([s.url for s in cluster.servers if s.running])
        try:
            deadline = time.monotonic() + 30
            while True:
                reply = await nc.request(f"$JS.API.STREAM.INFO.{stream}", b"", timeout=5)
                info = orjson.loads(reply.data)
                leader = info.get("cluster", {}).get("leader")
                if leader:
                    return str(leader)
                if time.monotonic() > deadline:
                    raise AssertionError(f"no leader for {stream}: {info}")
                await asyncio.sleep(0.1)
        finally:
            await nc.close()

    return asyncio.run(ask())


class _Writer(threading.Thread):
    """Appends ``PER_WRITER`` single events to its own stream, retrying each one (the same
    event id) until it is acknowledged; records what it saw."""

    def __init__(self, url: str, stream: str, count: int = PER_WRITER) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stream = stream  # a prefix when it ends in "-": 12 streams, round robin
        self.count = count
        self.acked: list[tuple[str, int, int, float]] = []  # event id, position, version, at
        self.errors: list[str] = []
        self.longest = 0.0
        self.failure: BaseException | None = None

    def run(self) -> None:
        try:
            with evstore.connect(self.url) as store:
                for i in range(self.count):
                    event = evstore.NewEvent("Tick", {"i": i})
                    stream = f"{self.stream}{i % 12}" if self.stream.endswith("-") else self.stream
                    started = time.monotonic()
                    while True:
                        try:
                            result = store.append(stream, [event])
                            break
                        except BackendUnavailable as e:
                            self.errors.append(str(e)[:200])
                            time.sleep(0.1)
                    now = time.monotonic()
                    self.longest = max(self.longest, now - started)
                    self.acked.append(
                        (str(event.event_id), result.last_position, result.version, now)
                    )
        except BaseException as e:  # surfaced by the test
            self.failure = e


def _wait(condition: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout}s")
        time.sleep(0.02)


@pytest.mark.slow
def test_kill_9_of_the_stream_leader_loses_no_acknowledged_append(cluster: NatsCluster) -> None:
    name = f"f{uuid.uuid4().hex[:12]}"
    url = f"{cluster.url}/{name}?replicas=3&retry_timeout=60&request_timeout=1"
    delivered: list[evstore.RecordedEvent] = []
    writers = [_Writer(url, f"acct-{w}") for w in range(WRITERS)]
    with evstore.connect(url) as store:
        store.append("setup-1", [evstore.NewEvent("Setup", {})])  # creates the streams
        sub = store.subscribe(delivered.append, name="audit", batch_size=50)
        for w in writers:
            w.start()
        _wait(lambda: sum(len(w.acked) for w in writers) >= KILL_AFTER, 300, "first appends")
        leader = stream_leader(cluster, f"{name}-log-0")
        killed_at = time.monotonic()
        cluster.by_name(leader).kill()
        for w in writers:
            w.join(600)
            assert not w.is_alive(), "a writer hung"
            if w.failure is not None:
                raise w.failure
        new_leader = stream_leader(cluster, f"{name}-log-0")
        assert new_leader != leader
        # The failover as callers saw it: the longest time without any acknowledgement
        # after the kill (acks in flight at the kill may still arrive just after it).
        times = sorted(a[3] for w in writers for a in w.acked)
        after = [t for t in times if t >= killed_at]
        stall = max(b - a for a, b in zip([killed_at, *after], after, strict=False))
        errors = sum(len(w.errors) for w in writers)
        longest = max(w.longest for w in writers)
        print(
            f"\nNATS failover: leader {leader} killed -> {new_leader}; no append acknowledged "
            f"for {stall:.2f}s; longest append {longest:.2f}s; errors seen by callers "
            f"{errors}; appends {WRITERS * PER_WRITER} in {times[-1] - times[0]:.1f}s"
        )

        # Every acknowledged append exactly once, where it was acknowledged.
        everything = store.read_all()
        by_id: dict[str, list[evstore.RecordedEvent]] = {}
        for e in everything:
            by_id.setdefault(str(e.event_id), []).append(e)
        for w in writers:
            assert len(w.acked) == PER_WRITER
            stored = store.get_events(w.stream)
            assert [e.version for e in stored] == list(range(1, PER_WRITER + 1))
            for event_id, position, version, _ in w.acked:
                copies = by_id.get(event_id, [])
                assert len(copies) == 1, f"{event_id} stored {len(copies)} times"
                assert (copies[0].position, copies[0].version) == (position, version)
        assert len(everything) == WRITERS * PER_WRITER + 1

        # The subscription delivered everything once, in order, across the failover (it is
        # restarted from its checkpoint if the outage outlasted its retries).
        head = store.head_position()
        if not sub.running:
            with pytest.raises(BackendUnavailable):
                sub.stop()
            checkpoint = store.backend.get_checkpoint("audit")
            assert checkpoint is not None
            kept = [e for e in delivered if e.position <= checkpoint]
            delivered[:] = kept
            sub = store.subscribe(delivered.append, name="audit", batch_size=50)
        _wait(lambda: sub.position >= head, 300, "the subscription catching up")
        sub.stop()
        positions = [e.position for e in delivered]
        assert positions == sorted(set(positions)), "delivered twice or out of order"
        assert positions == [e.position for e in everything]


@pytest.mark.slow
def test_kill_9_of_the_whole_cluster_loses_no_acknowledged_append(cluster: NatsCluster) -> None:
    """Every node SIGKILLed at once, then restarted: the acknowledged appends are all there.

    With the server's default ``sync_interval`` (2 minutes) JetStream writes each message
    to the OS before acknowledging and fsyncs later; a killed *process* loses nothing (the
    OS still has the data). Only a machine crash or power loss before the next fsync can
    lose acknowledged messages, and with replicas = 3 only if it hits every replica's
    machine; ``sync_interval: always`` closes that too, at a cost (docs/nats.md).
    """
    name = f"r{uuid.uuid4().hex[:12]}"
    url = f"{cluster.url}/{name}?replicas=3&retry_timeout=60&request_timeout=2"
    acked: list[tuple[str, int]] = []
    with evstore.connect(url) as store:
        for i in range(200):
            events = [evstore.NewEvent("T", {"i": i, "k": k}) for k in range(1 + i % 5)]
            result = store.append(f"acct-{i % 7}", events)
            acked += [(str(e.event_id), p) for e, p in zip(events, result.positions, strict=True)]
    for server in cluster.servers:
        server.kill()
    for server in cluster.servers:
        server.start()
    with evstore.connect(url) as store:
        stored = {str(e.event_id): e.position for e in store.read_all()}
        assert stored == dict(acked)
        assert store.append("acct-0", [evstore.NewEvent("T", {})]).last_position > acked[-1][1]


GROUP = 4  # members of the consumer group
GROUP_PARTITIONS = 8
GROUP_APPENDS = 300  # per writer, single events over 12 streams each


@pytest.mark.slow
def test_consumer_group_keeps_delivering_across_a_leader_kill(cluster: NatsCluster) -> None:
    """A store of 8 R3 partitions (leaders spread: each node leads 2-3 of them), a
    consumer group of 4 members (``subscribe(name=..., partition=(i, 4))``, each on its
    own connection) and 4 writers; the node leading partition 0 is killed with SIGKILL
    mid-way. Every event reaches exactly one member exactly once, in stream order, and a
    member started again afterwards finds its checkpoints at the head (nothing past a
    checkpoint is delivered twice)."""
    name = f"g{uuid.uuid4().hex[:12]}"
    url = (
        f"{cluster.url}/{name}?replicas=3&retry_timeout=60&request_timeout=1"
        f"&partitions={GROUP_PARTITIONS}"
    )
    seen: list[list[tuple[float, evstore.RecordedEvent]]] = [[] for _ in range(GROUP)]
    stores = [evstore.connect(url) for _ in range(GROUP)]
    try:
        leaders = stores[0].backend.leaders()  # type: ignore[attr-defined]
        assert len(set(leaders)) == 3, leaders

        def member(i: int) -> evstore.Subscription:
            def handle(e: evstore.RecordedEvent) -> None:
                seen[i].append((time.monotonic(), e))

            return stores[i].subscribe(handle, name="group", partition=(i, GROUP), batch_size=20)

        subs = [member(i) for i in range(GROUP)]
        writers = [_Writer(url, f"grp{w}-", GROUP_APPENDS) for w in range(4)]
        for w in writers:
            w.start()
        _wait(lambda: sum(len(w.acked) for w in writers) >= 400, 300, "first appends")
        victim = leaders[0]
        killed_at = time.monotonic()
        cluster.by_name(victim).kill()
        for w in writers:
            w.join(600)
            assert not w.is_alive(), "a writer hung"
            if w.failure is not None:
                raise w.failure
        head = stores[1].head()
        for i, sub in enumerate(subs):
            assert sub.wait_until(head, timeout=300), (i, sub.error)
            sub.stop()
        after_kill = sorted(t for member_seen in seen for t, _ in member_seen if t >= killed_at)
        stall = max(b - a for a, b in zip([killed_at, *after_kill], after_kill, strict=False))
        print(
            f"\nNATS consumer group: {victim} (leader of partitions "
            f"{[j for j, n in enumerate(leaders) if n == victim]}) killed; longest time "
            f"without a delivery {stall:.2f}s; errors seen by writers "
            f"{sum(len(w.errors) for w in writers)}"
        )
        everything = stores[1].read_all(evstore.LogCursor.start(GROUP_PARTITIONS))
        assert len(everything) == 4 * GROUP_APPENDS
        acked = {i for w in writers for i, *_ in w.acked}
        assert {str(e.event_id) for e in everything} == acked  # each acknowledged append once
        delivered = [e for member_seen in seen for _, e in member_seen]
        keys = Counter((e.partition, e.position) for e in delivered)
        assert keys == Counter((e.partition, e.position) for e in everything)  # exactly once
        for i, member_seen in enumerate(seen):
            versions: dict[str, list[int]] = {}
            for _, e in member_seen:
                assert e.partition % GROUP == i
                versions.setdefault(e.stream_id, []).append(e.version)
            for sid, got in versions.items():
                assert got == list(range(1, len(got) + 1)), sid  # stream order, no gap
        # Started again, every member finds its checkpoints at the head: nothing again.
        again: list[evstore.RecordedEvent] = []
        for i in range(GROUP):
            with stores[i].subscribe(again.append, name="group", partition=(i, GROUP)) as sub:
                assert sub.wait_caught_up(60)
        assert again == []
    finally:
        for s in stores:
            s.close()
