"""Aggregates and the event registry: dispatch, snapshots of state, encoding, upcasting."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pydantic
import pytest

import evstore
from evstore import Aggregate, EventRegistry, applies


@dataclass(frozen=True)
class Opened:
    owner: str


@dataclass(frozen=True)
class Deposited:
    amount: Decimal
    at: datetime
    ref: uuid.UUID


@dataclass(frozen=True)
class BonusDeposited(Deposited):
    pass


class Closed(pydantic.BaseModel):
    reason: str
    tags: list[str] = []


@dataclass
class Account(Aggregate):
    owner: str = ""
    balance: Decimal = Decimal(0)
    history: list[str] = field(default_factory=list)

    @applies(Opened)
    def _opened(self, event: Opened) -> None:
        self.owner = event.owner
        self.history.append("opened")

    @applies(Deposited, Closed)
    def _other(self, event: Any) -> None:
        if isinstance(event, Deposited):
            self.balance += event.amount
        self.history.append(type(event).__name__)


def test_trigger_applies_at_once_and_keeps_the_event_pending() -> None:
    account = Account.create("account-1")
    assert (account.version, account.pending_events) == (0, [])
    account.trigger(Opened("ada"))
    assert account.owner == "ada"
    assert account.version == 1
    assert account.committed_version == 0
    assert account.pending_events == [Opened("ada")]
    account.mark_committed()
    assert (account.version, account.committed_version, account.pending_events) == (1, 1, [])


def test_apply_dispatches_by_class_including_subclasses_and_shared_methods() -> None:
    account = Account.create("account-1")
    now = datetime.now(UTC)
    account.apply(Deposited(Decimal("1.5"), now, uuid.uuid4()))
    account.apply(BonusDeposited(Decimal("2"), now, uuid.uuid4()))
    account.apply(Closed(reason="done"))
    assert account.balance == Decimal("3.5")
    assert account.history == ["Deposited", "BonusDeposited", "Closed"]


def test_an_event_without_an_applies_method_is_a_clear_error() -> None:
    with pytest.raises(evstore.InvalidInput, match="@applies"):
        Account.create("account-1").apply(object())


def test_dataclass_state_round_trips_through_a_snapshot() -> None:
    account = Account.create("account-1")
    account.trigger(Opened("ada"))
    state = account.to_snapshot()
    assert state == {"owner": "ada", "balance": Decimal(0), "history": ["opened"]}
    copy = Account.from_snapshot("account-1", 7, state)
    assert (copy.id, copy.version, copy.owner, copy.pending_events) == ("account-1", 7, "ada", [])


class PlainCounter(Aggregate):
    def __init__(self) -> None:
        self.count = 0

    @applies(Opened)
    def _opened(self, event: Opened) -> None:
        self.count += 1


def test_plain_class_state_is_its_attributes_without_identity() -> None:
    counter = PlainCounter.create("c-1")
    counter.trigger(Opened("x"))
    assert counter.to_snapshot() == {"count": 1}
    assert PlainCounter.from_snapshot("c-1", 1, {"count": 5}).count == 5


def test_snapshot_schema_is_a_fingerprint_of_the_state_shape_unless_set() -> None:
    @dataclass
    class A(Aggregate):
        x: int = 0

    @dataclass
    class B(Aggregate):
        x: int = 0
        y: int = 0

    class Fixed(Aggregate):
        snapshot_schema = 7

    assert A.snapshot_schema_version() == A.snapshot_schema_version() > 0
    assert A.snapshot_schema_version() != B.snapshot_schema_version()
    assert Fixed.snapshot_schema_version() == 7


def test_create_rejects_an_empty_id() -> None:
    with pytest.raises(evstore.InvalidInput):
        Account.create("")


# -- registry ---------------------------------------------------------------------------------


@pytest.fixture
def store() -> Any:
    with evstore.connect("memory://") as s:
        yield s


def roundtrip(store: evstore.EventStore, registry: EventRegistry, event: object) -> Any:
    sid = f"s-{uuid.uuid4().hex}"
    store.append(sid, [registry.encode(event)])
    return registry.decode(store.get_events(sid)[0])


def test_dataclass_events_round_trip_with_rich_values(store: evstore.EventStore) -> None:
    registry = EventRegistry()
    registry.register(Deposited)
    event = Deposited(Decimal("10.25"), datetime.now(UTC), uuid.uuid4())
    new = registry.encode(event)
    assert (new.type, new.schema_version) == ("Deposited", 1)
    assert roundtrip(store, registry, event) == event


def test_pydantic_events_round_trip(store: evstore.EventStore) -> None:
    registry = EventRegistry()
    registry.register(Closed, name="AccountClosed", version=3)
    new = registry.encode(Closed(reason="fraud", tags=["a"]))
    assert (new.type, new.schema_version, new.data) == (
        "AccountClosed",
        3,
        {"reason": "fraud", "tags": ["a"]},
    )
    assert roundtrip(store, registry, Closed(reason="fraud", tags=["a"])) == Closed(
        reason="fraud", tags=["a"]
    )


@dataclass(frozen=True)
class UserRegistered:
    email: str
    first_name: str
    last_name: str
    source: str


def registry_v3() -> EventRegistry:
    registry = EventRegistry()
    registry.register(UserRegistered, version=3, aliases=["UserSignedUp"])

    @registry.upcaster("UserRegistered", from_version=1)
    def split_name(data: dict[str, Any]) -> dict[str, Any]:
        first, _, last = data.pop("name").partition(" ")
        return {**data, "first_name": first, "last_name": last}

    @registry.upcaster("UserRegistered", from_version=2)
    def add_source(data: dict[str, Any]) -> dict[str, Any]:
        return {**data, "source": "unknown"}

    return registry


def test_upcasters_chain_from_any_old_version_to_the_current_class(
    store: evstore.EventStore,
) -> None:
    registry = registry_v3()
    sid = "user-1"
    store.append(
        sid,
        [
            evstore.NewEvent("UserRegistered", {"email": "a@b", "name": "Ada Lovelace"}),
            evstore.NewEvent(
                "UserRegistered",
                {"email": "c@d", "first_name": "C", "last_name": "D"},
                schema_version=2,
            ),
            registry.encode(UserRegistered("e@f", "E", "F", "web")),
        ],
    )
    assert [registry.decode(e) for e in store.get_events(sid)] == [
        UserRegistered("a@b", "Ada", "Lovelace", "unknown"),
        UserRegistered("c@d", "C", "D", "unknown"),
        UserRegistered("e@f", "E", "F", "web"),
    ]


def test_an_alias_keeps_a_renamed_type_readable_through_the_same_upcasters(
    store: evstore.EventStore,
) -> None:
    registry = registry_v3()
    store.append("user-2", [evstore.NewEvent("UserSignedUp", {"email": "x@y", "name": "X Y"})])
    assert registry.decode(store.get_events("user-2")[0]) == UserRegistered(
        "x@y", "X", "Y", "unknown"
    )
    assert registry.class_of("UserSignedUp") is UserRegistered
    assert registry.name_of(UserRegistered) == "UserRegistered"


def test_a_missing_upcaster_or_a_newer_version_is_a_serialization_error(
    store: evstore.EventStore,
) -> None:
    registry = EventRegistry()
    registry.register(UserRegistered, version=3)
    store.append("u", [evstore.NewEvent("UserRegistered", {"email": "a"}, schema_version=2)])
    with pytest.raises(evstore.SerializationError, match="no upcaster"):
        registry.decode(store.get_events("u")[0])
    store.append("v", [evstore.NewEvent("UserRegistered", {"email": "a"}, schema_version=4)])
    with pytest.raises(evstore.SerializationError, match="newer"):
        registry.decode(store.get_events("v")[0])


def test_stored_data_that_does_not_fit_the_class_is_a_serialization_error(
    store: evstore.EventStore,
) -> None:
    registry = EventRegistry()
    registry.register(UserRegistered)
    store.append("u", [evstore.NewEvent("UserRegistered", {"email": "a"})])
    with pytest.raises(evstore.SerializationError, match="does not fit"):
        registry.decode(store.get_events("u")[0])


def test_unknown_types_raise_or_come_back_raw_by_choice(store: evstore.EventStore) -> None:
    store.append("u", [evstore.NewEvent("Mystery", {"x": 1})])
    recorded = store.get_events("u")[0]
    with pytest.raises(evstore.UnknownEventType, match="Mystery"):
        EventRegistry().decode(recorded)
    assert EventRegistry(unknown="raw").decode(recorded) is recorded
    with pytest.raises(evstore.UnknownEventType):
        EventRegistry().encode(Opened("x"))


def test_registering_bad_or_conflicting_classes_is_refused() -> None:
    registry = EventRegistry()
    registry.register(Opened)

    class NotAnEvent:
        pass

    with pytest.raises(evstore.InvalidInput, match="neither a dataclass"):
        registry.register(NotAnEvent)
    with pytest.raises(evstore.InvalidInput, match="already registered"):
        registry.register(Deposited, name="Opened")
    with pytest.raises(evstore.InvalidInput):
        registry.register(Deposited, version=0)
    with pytest.raises(evstore.InvalidInput):
        EventRegistry(unknown="ignore")  # type: ignore[arg-type]
    registry.add_upcaster("Opened", 1, lambda d: d)
    with pytest.raises(evstore.InvalidInput, match="already has an upcaster"):
        registry.add_upcaster("Opened", 1, lambda d: d)


def test_type_mappings_are_cached_with_counters_and_reset_on_registration(
    store: evstore.EventStore,
) -> None:
    registry = registry_v3()
    store.append("m", [evstore.NewEvent("UserSignedUp", {"email": "a", "name": "A B"})])
    store.append("m", [evstore.NewEvent("UserSignedUp", {"email": "c", "name": "C D"})])
    first, second = (registry.decode(e) for e in store.get_events("m"))
    assert (first.first_name, second.first_name) == ("A", "C")
    stats = registry.mappings.stats
    assert (stats.misses, stats.hits, stats.entries) == (1, 1, 1)
    registry.register(Opened)
    assert len(registry.mappings) == 0
