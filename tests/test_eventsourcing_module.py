"""eventsourcing's own shipped test cases, unedited, run on evstore's persistence module.

Every TestCase class that eventsourcing 9.5.6 ships for persistence modules is subclassed
here once per backend (SQLite, PostgreSQL, MongoDB); a subclass only supplies the recorder
factory or the environment, never a test method. Each test gets fresh stores: the events'
and the snapshots'.

PostgreSQL's positions are sparse (docs/postgresql.md), so there notification ids are not
1, 2, 3: ``EXPECT_CONTIGUOUS_NOTIFICATION_IDS = False`` (eventsourcing's own switch), and the
tests that assert ids 1, 2, 3 outside that switch are strict expected failures on
PostgreSQL (they fail, and the run fails if they ever pass).
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID, uuid4

import pytest
from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.dcb import tests as shipped_dcb
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    InfrastructureFactory,
    IntegrityError,
    ProcessRecorder,
    StoredEvent,
    Tracking,
    TrackingRecorder,
)
from eventsourcing.tests import application as shipped_application
from eventsourcing.tests import persistence as shipped
from eventsourcing.tests import projection as shipped_projection
from eventsourcing.tests.application import BankAccounts
from eventsourcing.utils import Environment

from evstore import InvalidInput, NewEvent
from evstore.integrations.eventsourcing import (
    EvstoreAggregateRecorder,
    EvstoreApplicationRecorder,
    EvstoreDatastore,
    EvstoreFactory,
    EvstoreProcessRecorder,
    EvstoreSnapshotRecorder,
    EvstoreTrackingRecorder,
    snapshots_url,
)

TOPIC = "evstore.integrations.eventsourcing"
BACKENDS = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mongodb": "MongoDB"}

# (test case, test method) pairs that assert notification ids 1, 2, 3... where
# EXPECT_CONTIGUOUS_NOTIFICATION_IDS does not reach; they cannot pass on sparse positions.
CONTIGUOUS_IDS = {
    ("ApplicationRecorderTestCase", "test_insert_select"),
    ("DCBRecorderTestCase", "test_append_read"),
    ("DCBRecorderTestCase", "test_append_subscribe"),
    ("ApplicationTestCase", "test_save_returns_recording_event"),
}


class _OnBackend:
    """Fresh evstore stores for each test, named in the environment eventsourcing reads."""

    __test__ = False  # the subclasses made below for each backend are the tests
    backend: ClassVar[str]
    env: Any
    url: str
    snapshots_url: str

    @pytest.fixture(autouse=True)
    def _fresh_stores(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest
    ) -> Iterator[None]:
        case = next(c for c in type(self).__mro__ if c.__module__.startswith("eventsourcing."))
        if self.backend == "postgresql" and (case.__name__, request.function.__name__) in (
            CONTIGUOUS_IDS
        ):
            request.applymarker(
                pytest.mark.xfail(
                    strict=True, reason="asserts notification ids 1, 2, 3; positions are sparse"
                )
            )
        backend = importlib.import_module(f"tests.backends.{self.backend}")
        opened: list[EvstoreDatastore] = []
        init = EvstoreDatastore.__init__

        def tracked(datastore: EvstoreDatastore, *args: Any, **kwargs: Any) -> None:
            init(datastore, *args, **kwargs)
            opened.append(datastore)

        with ExitStack() as stack:
            (tmp_path / "events").mkdir()
            (tmp_path / "snapshots").mkdir()
            self.url = stack.enter_context(backend.factory(tmp_path / "events")).url
            self.snapshots_url = stack.enter_context(backend.factory(tmp_path / "snapshots")).url
            monkeypatch.setattr(EvstoreDatastore, "__init__", tracked)
            monkeypatch.setenv("PERSISTENCE_MODULE", TOPIC)
            monkeypatch.setenv("EVSTORE_URL", self.url)
            monkeypatch.setenv("EVSTORE_SNAPSHOTS_URL", self.snapshots_url)
            try:
                yield
            finally:
                for datastore in opened:
                    datastore.close()

    def environment(self) -> dict[str, str]:
        return {
            "PERSISTENCE_MODULE": TOPIC,
            "EVSTORE_URL": self.url,
            "EVSTORE_SNAPSHOTS_URL": self.snapshots_url,
        }

    def factory(self) -> EvstoreFactory:
        factory = InfrastructureFactory.construct(Environment(env=self.environment()))
        assert isinstance(factory, EvstoreFactory)
        return factory


class _Aggregate(_OnBackend, shipped.AggregateRecorderTestCase):
    def create_recorder(self) -> AggregateRecorder:
        return self.factory().aggregate_recorder()


class _Application(_OnBackend, shipped.ApplicationRecorderTestCase[EvstoreApplicationRecorder]):
    def create_recorder(self) -> EvstoreApplicationRecorder:
        recorder = self.factory().application_recorder()
        assert isinstance(recorder, EvstoreApplicationRecorder)
        return recorder


class _Tracking(_OnBackend, shipped.TrackingRecorderTestCase):
    def create_recorder(self) -> TrackingRecorder:
        return self.factory().tracking_recorder()


class _Process(_OnBackend, shipped.ProcessRecorderTestCase):
    def create_recorder(self) -> ProcessRecorder:
        return self.factory().process_recorder()


class _NonInterleaving(_OnBackend, shipped.NonInterleavingNotificationIDsBaseCase):
    def create_recorder(self) -> ApplicationRecorder:
        return self.factory().application_recorder()


class MyTrackingRecorder(EvstoreTrackingRecorder):
    """A subclass named by topic in the factory test."""


class _Factory(_OnBackend, shipped.InfrastructureFactoryTestCase[EvstoreFactory]):
    def setUp(self) -> None:
        self.env = Environment(env=self.environment())
        super().setUp()

    def expected_factory_class(self) -> type[EvstoreFactory]:
        return EvstoreFactory

    def expected_aggregate_recorder_class(self) -> type[AggregateRecorder]:
        return EvstoreAggregateRecorder

    def expected_application_recorder_class(self) -> type[ApplicationRecorder]:
        return EvstoreApplicationRecorder

    def expected_tracking_recorder_class(self) -> type[TrackingRecorder]:
        return EvstoreTrackingRecorder

    def tracking_recorder_subclass(self) -> type[TrackingRecorder]:
        return MyTrackingRecorder

    def expected_process_recorder_class(self) -> type[ProcessRecorder]:
        return EvstoreProcessRecorder


class _Example(_OnBackend, shipped_application.ExampleApplicationTestCase):
    expected_factory_topic = f"{TOPIC}:EvstoreFactory"


class _App(_OnBackend, shipped_application.ApplicationTestCase):
    pass


class EvstoreEventCounters(EvstoreTrackingRecorder, shipped_projection.EventCountersView):
    """The read model of eventsourcing's projection test cases, kept in evstore: a count
    is the version of a stream of ``Counted`` events, moved with the tracking record."""

    def get_created_event_counter(self) -> int:
        return self.store.stream_version("eventcounters-created")

    def get_subsequent_event_counter(self) -> int:
        return self.store.stream_version("eventcounters-subsequent")

    def incr_created_event_counter(self, tracking: Tracking) -> None:
        self._count("eventcounters-created", tracking)

    def incr_subsequent_event_counter(self, tracking: Tracking) -> None:
        self._count("eventcounters-subsequent", tracking)

    def _count(self, stream_id: str, tracking: Tracking) -> None:
        current = self.max_tracking_id(tracking.application_name)
        if current is not None and tracking.notification_id <= current:
            raise IntegrityError(f"{tracking} already recorded")
        self.store.append(stream_id, [NewEvent("Counted", {})])
        self._track(tracking, current)


class _Projections(_OnBackend):
    """The projection cases: the application, the projection's view (and, for an
    event-sourced projection, its own application) each in a store of their own."""

    view_class = EvstoreEventCounters

    def setUp(self) -> None:
        self.env = {
            "EVSTORE_URL": self.url,
            "EVENTCOUNTERS_EVSTORE_URL": self.snapshots_url,  # the projection "eventcounters"
            "COUNTERS_EVSTORE_URL": self.snapshots_url,  # the projection application "Counters"
        }
        super().setUp()


class _AggregateCounters(_Projections, shipped_projection.AggregateEventCountersProjectionTestCase):
    pass


class _TaggedCounters(_Projections, shipped_projection.TaggedDecisionCountersProjectionTestCase):
    def setUp(self) -> None:
        super().setUp()
        self.env["MAPPER_TOPIC"] = "eventsourcing.dcb.msgpack:MessagePackMapper"  # decisions


class _EventSourcedProjection(_Projections, shipped_projection.EventSourcedProjectionTestCase):
    pass


class _DCB(_OnBackend, shipped_dcb.DCBRecorderTestCase):
    """The shipped DCB case has helpers only; each test here calls one, on a fresh store."""

    def test_append_read(self) -> None:
        self._test_append_read(self.factory().dcb_recorder())

    def test_append_subscribe(self) -> None:
        self._test_append_subscribe(self.factory().dcb_recorder())


def _cases() -> Iterator[tuple[str, type[Any]]]:
    for backend, title in BACKENDS.items():
        for base in (
            _Aggregate,
            _Application,
            _Tracking,
            _Process,
            _NonInterleaving,
            _Factory,
            _Example,
            _App,
            _DCB,
            _AggregateCounters,
            _EventSourcedProjection,
            _TaggedCounters,
        ):
            attributes: dict[str, Any] = {
                "backend": backend,
                "__module__": __name__,
                "__test__": True,
            }
            if backend == "mongodb" and issubclass(base, _Projections):
                # They give a projection 1 s to catch up, which SecantusDB does alone
                # (0.1-0.4 s measured) but missed at load 22: run them after the parallel run.
                attributes["pytestmark"] = [pytest.mark.serial]
            if base is _Application:
                attributes["EXPECT_CONTIGUOUS_NOTIFICATION_IDS"] = backend != "postgresql"
            yield f"Test{title}{base.__name__.lstrip('_')}", type("", (base,), attributes)


for _name, _case in _cases():
    _case.__name__ = _case.__qualname__ = _name
    globals()[_name] = _case
del _name, _case


# -- beyond the shipped cases: what the module adds or promises in docs/eventsourcing.md --


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("sqlite:///data/app.db", "sqlite:///data/app_snapshots.db"),
        ("sqlite:///app", "sqlite:///app_snapshots"),
        ("memory://shop", "memory://shop_snapshots"),
        ("memory://", "memory://"),
        ("postgresql://u@h/db?schema=shop", "postgresql://u@h/db?schema=shop_snapshots"),
        ("postgresql://u@h/db", "postgresql://u@h/db?schema=evstore_snapshots"),
        ("mongodb://h:1/shop?replicaSet=rs0", "mongodb://h:1/shop_snapshots?replicaSet=rs0"),
        ("mongodb://h:1/", "mongodb://h:1/evstore_snapshots"),
    ],
)
def test_snapshots_default_to_a_sibling_store(url: str, expected: str) -> None:
    assert snapshots_url(url) == expected


def test_snapshots_of_a_url_without_a_default_need_their_own_url() -> None:
    with pytest.raises(InvalidInput, match="EVSTORE_SNAPSHOTS_URL"):
        snapshots_url("nats://127.0.0.1:4999")


def test_snapshots_stay_out_of_the_applications_log(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bank.db'}"
    app = BankAccounts(
        env={"PERSISTENCE_MODULE": TOPIC, "EVSTORE_URL": url, "IS_SNAPSHOTTING_ENABLED": "y"}
    )
    try:
        account_id = app.open_account("Ada", "ada@example.com")
        app.take_snapshot(account_id)
        assert (tmp_path / "bank_snapshots.db").exists()
        assert [n.topic for n in app.recorder.select_notifications(None, 10)] == [
            "eventsourcing.tests.domain:BankAccount.Opened"
        ]
        assert app.snapshots is not None
        assert len(list(app.snapshots.get(account_id))) == 1
    finally:
        app.close()


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_the_latest_snapshot_at_or_below_a_version_wins_in_any_insert_order(
    backend: str, tmp_path: Path
) -> None:
    module = importlib.import_module(f"tests.backends.{backend}")
    with module.factory(tmp_path) as store_factory:
        datastore = EvstoreDatastore(store_factory.url, store_factory.url)
        try:
            recorder = EvstoreSnapshotRecorder(datastore)
            originator_id = uuid4()

            def snapshot(version: int) -> StoredEvent:
                return StoredEvent(originator_id, version, "topic", f"v{version}".encode())

            for version in (5, 9, 2, 7):  # 2 and 7 taken later, of older versions
                recorder.insert_events([snapshot(version)])
            with pytest.raises(IntegrityError):
                recorder.insert_events([snapshot(7)])

            def latest(lte: int | None) -> list[int]:
                found = recorder.select_events(originator_id, lte=lte, desc=True, limit=1)
                return [s.originator_version for s in found]

            assert latest(None) == [9]
            assert latest(8) == [7]
            assert latest(6) == [5]
            assert latest(4) == [2]
            assert latest(1) == []
            found = recorder.select_events(originator_id, gt=2, lte=8)
            assert [s.originator_version for s in found] == [5, 7]
            assert [s.state for s in found] == [b"v5", b"v7"]
        finally:
            datastore.close()


@pytest.mark.parametrize("backend", list(BACKENDS))
def test_saving_several_aggregates_is_all_or_nothing(backend: str, tmp_path: Path) -> None:
    module = importlib.import_module(f"tests.backends.{backend}")
    with module.factory(tmp_path) as store_factory:
        env = {"PERSISTENCE_MODULE": TOPIC, "EVSTORE_URL": store_factory.url}
        app = Application[UUID](env=env)
        try:
            b = Aggregate()
            app.save(b)
            stale: Aggregate = app.repository.get(b.id)
            b.trigger_event(Aggregate.Event)
            app.save(b)
            head = app.recorder.max_notification_id()
            stale.trigger_event(Aggregate.Event)  # version 2 again: a conflict
            a = Aggregate()
            with pytest.raises(IntegrityError):
                app.save(a, stale)
            with pytest.raises(AggregateNotFoundError):
                app.repository.get(a.id)  # a was not stored either
            assert app.recorder.max_notification_id() == head
            c = Aggregate()
            b.trigger_event(Aggregate.Event)
            recordings = app.save(c, b)  # both, in one append
            assert [r.notification.originator_id for r in recordings] == [c.id, b.id]
            assert app.repository.get(b.id).version == 3
        finally:
            app.close()
