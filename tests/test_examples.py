"""The shipped examples run end to end on every backend (``evstore demo`` relies on them)."""

from __future__ import annotations

import pytest

import evstore
from evstore.examples import scenario
from evstore.examples.users import User, UserRegistered, registry, user_stream
from evstore.testing import StoreFactory


def test_the_scenario_tells_the_whole_story(store_factory: StoreFactory) -> None:
    report = scenario.run(store_factory.url, users=8, snapshot_every=5)
    assert report.snapshot == ("user-0000", 6)
    assert "expected version 1" in report.conflict
    assert report.retried_email == "retried@example.com"
    assert report.legacy_user == {
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@analytical.engine",
        "version": 2,
    }
    assert report.handled == 10  # 9 registrations and 1 deactivation
    assert report.counts == {
        "mobile": (2, 2),
        "partner": (2, 1),
        "referral": (2, 2),
        "web": (3, 3),
    }


def test_the_user_aggregate_enforces_its_rules() -> None:
    user = User.register(user_stream(), "ada@example.com", "Ada", "Lovelace", "web")
    assert user.pending_events == [UserRegistered("ada@example.com", "Ada", "Lovelace", "web")]
    with pytest.raises(evstore.InvalidInput):
        user.change_email("not-an-address")
    user.change_email("ada@example.com")  # unchanged: no event
    user.deactivate("bye")
    with pytest.raises(evstore.InvalidInput):
        user.change_email("new@example.com")
    assert len(user.pending_events) == 2


def test_the_seeds_v1_user_registered_loads_through_the_upcaster() -> None:
    with evstore.connect("memory://") as store:
        seed_shape = {
            "email": "a@b.c",
            "firstName": "A",
            "lastName": "B",
            "registrationSource": "ads",
        }
        store.append("user-1", [evstore.NewEvent("UserRegistered", seed_shape)])
        event = registry.decode(store.get_events("user-1")[0])
        assert event == UserRegistered("a@b.c", "A", "B", "ads")
        user = evstore.Repository(store, User, registry=registry).load("user-1")
        assert (user.first_name, user.registration_source, user.active) == ("A", "ads", True)
