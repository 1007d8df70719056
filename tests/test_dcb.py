"""Dynamic consistency boundaries: tags, reads by query, conditional appends (racing writers).

Run on every backend: memory, SQLite, PostgreSQL and MongoDB keep the promises; NATS
refuses tags and conditions with ``InvalidInput`` (said in docs/dcb.md).
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

import evstore
from evstore import (
    AppendCondition,
    AppendConditionFailed,
    ConcurrencyError,
    InvalidInput,
    NewEvent,
    Query,
    QueryItem,
)
from evstore.testing import StoreFactory

DCB_BACKENDS = (
    "memory",
    "sqlite",
    "sqlite_group",
    "postgresql",
    "postgresql_partitioned",
    "mongodb",
    "mongodb_sharded",
)


def _dcb(store_factory: StoreFactory, request: pytest.FixtureRequest) -> bool:
    return request.node.callspec.params["store_factory"] in DCB_BACKENDS


@contextmanager
def _store(store_factory: StoreFactory) -> Iterator[evstore.EventStore]:
    store = store_factory.connect()
    try:
        yield store
    finally:
        store.close()


def course(c: str) -> Query:
    return Query((QueryItem(tags=(f"course:{c}",)),))


def test_tags_round_trip_and_queries_select_by_type_and_tags(
    store_factory: StoreFactory, request: pytest.FixtureRequest
) -> None:
    with _store(store_factory) as store:
        if not _dcb(store_factory, request):
            with pytest.raises(InvalidInput, match="tags"):
                store.append("x-1", [NewEvent("T", {}, tags=["a"])])
            with pytest.raises(InvalidInput, match="tags"):
                store.read_query(Query())
            assert store.stream_version("x-1") == 0  # nothing written
            return
        store.append("c-1", [NewEvent("CourseDefined", {"places": 1}, tags=["course:1"])])
        store.append("s-1", [NewEvent("StudentRegistered", {}, tags=["student:1"])])
        store.append(
            "s-1",
            [NewEvent("Joined", {}, {"by": "web"}, tags=["course:1", "student:1", "course:1"])],
        )
        store.append("plain", [NewEvent("Joined", {})])
        [joined] = store.get_events("s-1", 2)
        assert joined.tags == ("course:1", "student:1")  # duplicates dropped, order kept
        assert joined.metadata == {"by": "web"}  # the tags are not in the metadata

        def types(query: Query, after: int = 0) -> list[str]:
            return [e.type for e in store.read_query(query, after=after).events]

        assert types(course("1")) == ["CourseDefined", "Joined"]
        assert types(Query((QueryItem(types=("Joined",)),))) == ["Joined", "Joined"]
        both = QueryItem(types=("Joined",), tags=("course:1", "student:1"))
        assert types(Query((both,))) == ["Joined"]
        union = Query((QueryItem(tags=("student:1",)), QueryItem(types=("CourseDefined",))))
        assert types(union) == ["CourseDefined", "StudentRegistered", "Joined"]
        assert types(Query((QueryItem(tags=("course:2",)),))) == []
        assert len(store.read_query(Query()).events) == 4
        first = store.read_query(course("1"), limit=1)
        assert [e.type for e in first.events] == ["CourseDefined"]
        assert first.head == first.events[0].position
        whole = store.read_query(course("1"))
        assert whole.head == store.head_position()
        assert types(course("1"), after=whole.events[0].position) == ["Joined"]


def test_an_append_conditioned_on_a_boundary_fails_if_it_moved(
    store_factory: StoreFactory, request: pytest.FixtureRequest
) -> None:
    with _store(store_factory) as store:
        if not _dcb(store_factory, request):
            with pytest.raises(InvalidInput):
                store.append("x", [NewEvent("T", {})], condition=AppendCondition(Query()))
            assert store.stream_version("x") == 0
            return
        read = store.read_query(course("1"))
        assert read.events == []
        store.append("c-1", [NewEvent("CourseDefined", {}, tags=["course:1"])])
        store.append("other", [NewEvent("CourseDefined", {}, tags=["course:2"])])
        with pytest.raises(AppendConditionFailed) as failed:
            store.append(
                "s-1",
                [NewEvent("Joined", {}, tags=["course:1"])],
                condition=AppendCondition(course("1"), after=read.head),
            )
        assert isinstance(failed.value, ConcurrencyError)
        assert store.stream_version("s-1") == 0  # nothing written
        again = store.read_query(course("1"))
        event = NewEvent("Joined", {}, tags=["course:1"])
        condition = AppendCondition(course("1"), after=again.head)
        result = store.append("s-1", [event], condition=condition)
        # the same append repeated (a lost reply): the original result, not a conflict
        assert store.append("s-1", [event], condition=condition) == result
        # an event of another boundary does not fail the condition
        store.append("c-3", [NewEvent("CourseDefined", {}, tags=["course:3"])])
        latest = store.read_query(course("1")).head
        store.append(
            "s-2",
            [NewEvent("Joined", {}, tags=["course:1"])],
            condition=AppendCondition(course("1"), after=latest),
        )
        with pytest.raises(InvalidInput):
            store.append("s-9", [NewEvent("T", {})], condition="no")  # type: ignore[arg-type]
        with pytest.raises(InvalidInput, match="evstore:tags"):
            store.append(
                "s-9", [NewEvent("T", {"x": 1}, metadata={"evstore:tags": ["b"]}, tags=["a"])]
            )


@pytest.fixture(params=DCB_BACKENDS)
def dcb_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """A fresh store on each backend that offers boundaries."""
    module = importlib.import_module(f"tests.backends.{request.param}")
    with module.factory(tmp_path) as factory:
        yield factory


def _race(stores: list[evstore.EventStore], round_: int) -> list[str]:
    """Every decider reads the boundary of one course, then all append at once."""
    tag = f"course:{round_}"
    query = Query((QueryItem(tags=(tag,)),))
    stores[0].append(f"c-{round_}", [NewEvent("CourseDefined", {}, tags=[tag])])
    barrier = threading.Barrier(len(stores))
    outcomes: list[str] = []

    def decide(i: int) -> None:
        boundary = stores[i].read_query(query)  # every decider sees the same boundary
        barrier.wait()
        try:
            stores[i].append(
                f"student-{round_}-{i}",
                [NewEvent("Joined", {"student": i}, tags=[tag, f"student:{i}"])],
                condition=AppendCondition(query, after=boundary.head),
            )
            outcomes.append("won")
        except AppendConditionFailed:
            outcomes.append("lost")

    threads = [threading.Thread(target=decide, args=(i,)) for i in range(len(stores))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    joined = stores[0].read_query(Query((QueryItem(types=("Joined",), tags=(tag,)),)))
    assert len(joined.events) == outcomes.count("won")
    return sorted(outcomes)


def test_racing_deciders_on_one_boundary_exactly_one_wins(dcb_factory: StoreFactory) -> None:
    stores = [dcb_factory.connect() for _ in range(4)]  # a store (a connection) each
    try:
        for round_ in range(5):
            assert _race(stores, round_) == ["lost", "lost", "lost", "won"]
    finally:
        for store in stores:
            store.close()


def test_deciders_of_disjoint_boundaries_all_win(dcb_factory: StoreFactory) -> None:
    stores = [dcb_factory.connect() for _ in range(4)]
    try:
        barrier = threading.Barrier(4)
        errors: list[BaseException] = []

        def decide(i: int) -> None:
            query = course(f"own-{i}")
            boundary = stores[i].read_query(query)
            barrier.wait()
            try:
                stores[i].append(
                    f"s-{i}",
                    [NewEvent("Joined", {}, tags=[f"course:own-{i}"])],
                    condition=AppendCondition(query, after=boundary.head),
                )
            except BaseException as e:
                errors.append(e)

        threads = [threading.Thread(target=decide, args=(i,)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert errors == []
    finally:
        for store in stores:
            store.close()


@pytest.mark.parametrize("url", ["memory://?partitions=4", "sqlite:///{tmp}/p4.db?partitions=4"])
def test_a_store_of_several_partitions_refuses_boundaries(url: str, tmp_path: object) -> None:
    # One boundary needs one order of events; P > 1 partitions have none across them.
    with evstore.connect(url.format(tmp=tmp_path)) as store:
        with pytest.raises(InvalidInput, match="log partitions"):
            store.read_query(Query())
        with pytest.raises(InvalidInput, match="log partitions"):
            store.append("a", [NewEvent("T", {}, tags=["t"])])
        with pytest.raises(InvalidInput, match="log partitions"):
            store.append("a", [NewEvent("T", {})], condition=AppendCondition(Query()))
        assert store.stream_version("a") == 0


def test_a_copied_store_answers_the_same_queries(tmp_path: Path) -> None:
    from evstore.ops import copy_store

    query = Query((QueryItem(types=("Joined",), tags=("course:1",)),))
    with (
        evstore.connect(f"sqlite:///{tmp_path / 'a.db'}") as source,
        evstore.connect(f"sqlite:///{tmp_path / 'b.db'}") as destination,
    ):
        source.append("s-1", [NewEvent("Joined", {}, tags=["course:1", "student:1"])])
        source.append("s-2", [NewEvent("Joined", {}, tags=["course:2"])])
        copy_store(source, destination)
        [copied] = destination.read_query(query).events
        assert (copied.stream_id, copied.tags) == ("s-1", ("course:1", "student:1"))
        with pytest.raises(AppendConditionFailed):
            destination.append(
                "s-3", [NewEvent("Joined", {})], condition=AppendCondition(query, after=0)
            )
