"""OpenTelemetry spans and metrics (docs/observability.md), with the SDK's in-memory
exporters, on every backend (the ``db.system.name`` attribute differs per backend)."""

from __future__ import annotations

import asyncio
import importlib
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

import evstore
from evstore import observability
from evstore.examples.users import User, registry
from evstore.testing import StoreFactory

# backend module in tests/backends -> the db.system.name its spans carry
BACKENDS = {
    "memory": "memory",
    "sqlite": "sqlite",
    "postgresql": "postgresql",
    "mongodb": "mongodb",
    "nats": "nats",
}


class Telemetry:
    """The in-memory exporters the store records into during one test."""

    def __init__(self) -> None:
        self.spans = InMemorySpanExporter()
        self.tracer_provider = TracerProvider()
        self.tracer_provider.add_span_processor(SimpleSpanProcessor(self.spans))
        self.reader = InMemoryMetricReader()
        self.meter_provider = MeterProvider(metric_readers=[self.reader])

    def finished(self, name: str | None = None) -> list[ReadableSpan]:
        spans = list(self.spans.get_finished_spans())
        return [s for s in spans if name is None or s.name == name]

    def points(self, metric: str) -> list[Any]:
        """The data points of ``metric`` collected now."""
        data = self.reader.get_metrics_data()
        found = []
        for resource in data.resource_metrics if data else []:
            for scope in resource.scope_metrics:
                for m in scope.metrics:
                    if m.name == metric:
                        found.extend(m.data.data_points)
        return found


@pytest.fixture
def telemetry() -> Iterator[Telemetry]:
    recorded = Telemetry()
    observability.configure(recorded.tracer_provider, recorded.meter_provider)
    yield recorded
    observability.configure()
    recorded.tracer_provider.shutdown()
    recorded.meter_provider.shutdown()


@pytest.fixture(params=list(BACKENDS))
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, StoreFactory]]:
    module = importlib.import_module(f"tests.backends.{request.param}")
    with module.factory(tmp_path) as factory:
        yield BACKENDS[request.param], factory


def attrs(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


def test_append_span_and_metrics_name_the_backend(
    telemetry: Telemetry, backend: tuple[str, StoreFactory]
) -> None:
    system, factory = backend
    with factory.connect() as store:
        store.append(
            "order-1", [evstore.NewEvent("Placed", {"n": 1}), evstore.NewEvent("Paid", {})]
        )
    (span,) = telemetry.finished("append")
    assert span.kind == SpanKind.CLIENT
    assert attrs(span) == {
        "db.system.name": system,
        "db.operation.name": "append",
        "evstore.stream.id": "order-1",
        "evstore.event.count": 2,
        "evstore.outcome": "ok",
    }
    (appended,) = telemetry.points("evstore.events.appended")
    assert appended.value == 2
    assert dict(appended.attributes) == {"db.system.name": system}
    durations = [
        p
        for p in telemetry.points("db.client.operation.duration")
        if p.attributes["db.operation.name"] == "append"
    ]
    assert [(p.count, dict(p.attributes)) for p in durations] == [
        (1, {"db.system.name": system, "db.operation.name": "append"})
    ]
    assert tuple(durations[0].explicit_bounds) == (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 10)


def test_an_atomic_append_to_several_streams_is_one_span(
    telemetry: Telemetry, backend: tuple[str, StoreFactory]
) -> None:
    system, factory = backend
    with factory.connect() as store:
        store.append_many(
            [
                evstore.AppendRequest("cart-1", [evstore.NewEvent("Added", {})]),
                evstore.AppendRequest("stock-1", [evstore.NewEvent("Held", {})]),
                evstore.AppendRequest("stock-2", [evstore.NewEvent("Held", {})]),
            ]
        )
    (span,) = telemetry.finished("append_many")
    assert attrs(span) == {
        "db.system.name": system,
        "db.operation.name": "append_many",
        "evstore.event.count": 3,
        "evstore.outcome": "ok",
    }
    (appended,) = telemetry.points("evstore.events.appended")
    assert appended.value == 3


def test_a_conflict_is_an_error_span_with_its_outcome(
    telemetry: Telemetry, backend: tuple[str, StoreFactory]
) -> None:
    system, factory = backend
    with factory.connect() as store:
        store.append("order-2", [evstore.NewEvent("Placed", {})])
        with pytest.raises(evstore.ConcurrencyError):
            store.append("order-2", [evstore.NewEvent("Placed", {})], expected_version=0)
    failed = telemetry.finished("append")[-1]
    assert failed.status.status_code == StatusCode.ERROR
    assert attrs(failed)["evstore.outcome"] == "conflict"
    assert attrs(failed)["error.type"] == "evstore.errors.ConcurrencyError"
    assert attrs(failed)["db.system.name"] == system
    assert "evstore.event.count" not in attrs(failed)
    (exception,) = failed.events
    assert exception.name == "exception"
    assert dict(exception.attributes or {})["exception.type"] == "evstore.errors.ConcurrencyError"
    (appended,) = telemetry.points("evstore.events.appended")
    assert appended.value == 1  # the refused append added nothing
    errors = [
        p
        for p in telemetry.points("db.client.operation.duration")
        if p.attributes.get("error.type") == "evstore.errors.ConcurrencyError"
    ]
    assert [p.count for p in errors] == [1]


def test_reads_and_snapshots_have_spans(
    telemetry: Telemetry, backend: tuple[str, StoreFactory]
) -> None:
    system, factory = backend
    with factory.connect() as store:
        store.append("user-1", [evstore.NewEvent("Registered", {"i": i}) for i in range(3)])
        assert len(store.get_events("user-1")) == 3
        assert len(store.read_all(stream_id="user-1")) == 3
        store.save_snapshot(evstore.Snapshot("user-1", 3, {"state": 1}))
        assert store.get_snapshot("user-1") is not None
    (read,) = telemetry.finished("read_stream")
    assert attrs(read)["evstore.event.count"] == 3
    assert attrs(read)["evstore.stream.id"] == "user-1"
    logged = telemetry.finished("read_all")
    assert sum(attrs(s)["evstore.event.count"] for s in logged) == 3
    assert {attrs(s)["db.system.name"] for s in [read, *logged]} == {system}
    (saved,) = telemetry.finished("save_snapshot")
    (loaded,) = telemetry.finished("get_snapshot")
    assert attrs(saved)["evstore.outcome"] == attrs(loaded)["evstore.outcome"] == "ok"
    assert attrs(loaded)["evstore.event.count"] == 1


def test_a_subscription_batch_is_a_consumer_span(
    telemetry: Telemetry, backend: tuple[str, StoreFactory]
) -> None:
    system, factory = backend
    with factory.connect() as store:
        result = store.append("cart-1", [evstore.NewEvent("Added", {"i": i}) for i in range(3)])
        seen: list[int] = []
        with store.subscribe(lambda e: seen.append(e.position), name="mailer") as sub:
            assert sub.wait_until(result.positions[-1], timeout=30)
    batches = telemetry.finished("process mailer")
    assert sum(attrs(s)["messaging.batch.message_count"] for s in batches) == 3
    first = batches[0]
    assert first.kind == SpanKind.CONSUMER
    assert {k: v for k, v in attrs(first).items() if not k.endswith(("count", "lag"))} == {
        "messaging.system": "evstore",
        "messaging.operation.type": "process",
        "messaging.operation.name": "subscription",
        "messaging.consumer.group.name": "mailer",
        "db.system.name": system,
        "evstore.outcome": "ok",
    }


def test_a_projection_batch_is_a_consumer_span_and_its_lag_a_gauge(
    telemetry: Telemetry, backend: tuple[str, StoreFactory]
) -> None:
    system, factory = backend
    release = threading.Event()
    started = threading.Event()

    def handler(event: evstore.RecordedEvent, tx: Any) -> None:
        started.set()
        assert release.wait(30)

    with factory.connect() as store:
        result = store.append("acct-1", [evstore.NewEvent("Opened", {"i": i}) for i in range(5)])
        projection = evstore.Projection(store, "balances", handler, batch_size=2)
        with projection:
            assert started.wait(30)
            (lag,) = [
                p
                for p in telemetry.points("evstore.consumer.lag")
                if p.attributes["messaging.consumer.group.name"] == "balances"
            ]
            assert lag.attributes["evstore.consumer.kind"] == "projection"
            # the first batch is being handled: nothing is done yet
            assert lag.value == result.positions[-1]
            release.set()
            projection.wait_until(result.positions[-1], timeout=30)
    batches = telemetry.finished("process balances")
    assert sum(attrs(s)["messaging.batch.message_count"] for s in batches) == 5
    assert all(attrs(s)["messaging.operation.name"] == "projection" for s in batches)
    assert all(attrs(s)["db.system.name"] == system for s in batches)
    assert attrs(batches[0])["evstore.consumer.lag"] == result.positions[-1]


def test_the_async_store_records_the_same_spans(telemetry: Telemetry, tmp_path: Path) -> None:
    async def main() -> None:
        async with evstore.connect_async(f"sqlite:///{tmp_path / 'a.db'}") as store:
            await store.append("a-1", [evstore.NewEvent("Done", {})])
            await store.get_events("a-1")

    asyncio.run(main())
    assert [s.name for s in telemetry.finished()] == ["append", "read_stream"]
    assert attrs(telemetry.finished("append")[0])["db.system.name"] == "sqlite"


class Tracked(User):
    """A User whose caches no other test creates (the metric sums caches by name)."""


def test_cache_lookups_and_hit_ratio(telemetry: Telemetry, tmp_path: Path) -> None:
    with evstore.connect(f"sqlite:///{tmp_path / 'c.db'}") as store:
        writer = evstore.Repository(store, Tracked, registry=registry, cache=False)
        writer.save(Tracked.register("user-7", "ada@example.com", "Ada", "Lovelace", "web"))
        users = evstore.Repository(store, Tracked, registry=registry)
        users.get("user-7")  # a miss, then cached
        users.get("user-7")  # a hit
        lookups = {
            p.attributes["evstore.cache.result"]: p.value
            for p in telemetry.points("evstore.cache.lookups")
            if p.attributes["evstore.cache.name"] == "Tracked.states"
        }
        ratio = [
            p.value
            for p in telemetry.points("evstore.cache.hit_ratio")
            if p.attributes["evstore.cache.name"] == "Tracked.states"
        ]
    assert lookups == {"hit": 1, "miss": 1}
    assert ratio == [0.5]


def test_group_commit_sizes_add_up_to_the_appends(telemetry: Telemetry, tmp_path: Path) -> None:
    writers, each = 8, 20
    with evstore.connect(f"sqlite:///{tmp_path / 'g.db'}") as store:

        def write(w: int) -> None:
            for i in range(each):
                store.append(f"w{w}-{i}", [evstore.NewEvent("E", {})])

        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    (sizes,) = telemetry.points("evstore.group_commit.size")
    assert sizes.sum == writers * each  # every append was written in exactly one group
    assert 1 <= sizes.count <= writers * each
    assert dict(sizes.attributes) == {"db.system.name": "sqlite"}


def run_python(code: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


STORE_WORK = """
import evstore, tempfile, os
with evstore.connect("sqlite:///" + os.path.join(tempfile.mkdtemp(), "x.db")) as store:
    store.append("s-1", [evstore.NewEvent("E", {})])
    print(len(store.get_events("s-1")), evstore.observability.active())
"""


def test_without_the_api_installed_nothing_is_recorded() -> None:
    blocker = """
import sys
class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ModuleNotFoundError(name)
sys.meta_path.insert(0, Block())
"""
    assert run_python(blocker + STORE_WORK) == "1 None"


def test_with_the_api_but_no_sdk_nothing_is_recorded() -> None:
    assert run_python(STORE_WORK) == "1 None"


def test_the_global_providers_are_used_once_set() -> None:
    code = """
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import evstore
with evstore.connect("memory://") as store:
    store.append("s-1", [evstore.NewEvent("E", {})])   # before: nothing listens
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    store.append("s-1", [evstore.NewEvent("E", {})])
    print([s.name for s in exporter.get_finished_spans()])
"""
    assert run_python(code) == "['append']"


def test_no_span_carries_data_or_metadata(telemetry: Telemetry, tmp_path: Path) -> None:
    secret = "ada@secret.example"
    with evstore.connect(f"sqlite:///{tmp_path / 's.db'}") as store:
        result = store.append("u-1", [evstore.NewEvent("E", {"email": secret}, {"ip": secret})])
        store.get_events("u-1")
        store.read_all()
        with store.subscribe(lambda e: None) as sub:
            assert sub.wait_until(result.positions[-1], timeout=30)
        store.save_snapshot(evstore.Snapshot("u-1", 1, {"email": secret}))
        store.get_snapshot("u-1")
    spans = telemetry.finished()
    assert {s.name for s in spans} >= {"append", "read_stream", "read_all", "process (anonymous)"}
    for span in spans:
        assert all(secret not in str(value) for value in attrs(span).values()), span.name
        assert secret not in span.name


@pytest.mark.parametrize("name", ["memory", "sqlite", "postgresql"])
def test_a_query_read_and_a_conditional_append_have_spans(
    telemetry: Telemetry, name: str, tmp_path: Path
) -> None:
    module = importlib.import_module(f"tests.backends.{name}")
    boundary = evstore.Query((evstore.QueryItem(tags=("course:c1",)),))
    with module.factory(tmp_path) as factory, factory.connect() as store:
        store.append("course-c1", [evstore.NewEvent("Defined", {}, tags=["course:c1"])])
        read = store.read_query(boundary)
        store.append("course-c1", [evstore.NewEvent("Joined", {}, tags=["course:c1"])])
        with pytest.raises(evstore.AppendConditionFailed):
            store.append(
                "student-1",
                [evstore.NewEvent("Joined", {}, tags=["course:c1"])],
                condition=evstore.AppendCondition(boundary, after=read.head),
            )
    (query,) = telemetry.finished("read_query")
    assert attrs(query) == {
        "db.system.name": name,
        "db.operation.name": "read_query",
        "evstore.event.count": 1,
        "evstore.outcome": "ok",
    }
    refused = telemetry.finished("append")[-1]
    assert attrs(refused)["evstore.outcome"] == "conflict"
    assert attrs(refused)["error.type"] == "evstore.errors.AppendConditionFailed"


def test_a_running_subscription_s_lag_is_a_gauge(telemetry: Telemetry, tmp_path: Path) -> None:
    release = threading.Event()
    started = threading.Event()

    def handler(event: evstore.RecordedEvent) -> None:
        started.set()
        assert release.wait(30)

    with evstore.connect(f"sqlite:///{tmp_path / 'lag.db'}") as store:
        result = store.append("s-1", [evstore.NewEvent("E", {"i": i}) for i in range(4)])
        with store.subscribe(handler, name="slow") as sub:
            assert started.wait(30)
            (lag,) = [
                p
                for p in telemetry.points("evstore.consumer.lag")
                if p.attributes["messaging.consumer.group.name"] == "slow"
            ]
            assert lag.attributes["evstore.consumer.kind"] == "subscription"
            assert lag.value == 4
            release.set()
            assert sub.wait_until(result.positions[-1], timeout=30)
        assert (
            not [  # a stopped subscription is no longer reported
                p
                for p in telemetry.points("evstore.consumer.lag")
                if p.attributes["messaging.consumer.group.name"] == "slow"
            ]
        )


@pytest.mark.parametrize("name", ["memory", "sqlite", "postgresql"])
def test_an_append_with_a_checkpoint_is_one_span(
    telemetry: Telemetry, name: str, tmp_path: Path
) -> None:
    module = importlib.import_module(f"tests.backends.{name}")
    with module.factory(tmp_path) as factory, factory.connect() as store:
        appended = store.append_with_checkpoint(
            [evstore.AppendRequest("out-1", [evstore.NewEvent("Sent", {})])], "relay", None, 7
        )
        assert appended is not None
        assert store.append_with_checkpoint([], "relay", None, 8) is None  # not at None
    first, refused = telemetry.finished("append_with_checkpoint")
    assert attrs(first) == {
        "db.system.name": name,
        "db.operation.name": "append_with_checkpoint",
        "evstore.event.count": 1,
        "evstore.outcome": "ok",
    }
    assert attrs(refused)["evstore.event.count"] == 0
    (counted,) = telemetry.points("evstore.events.appended")
    assert counted.value == 1
