"""The repository where new users stumbled: an aggregate as it was, a full replay, retry
under contention, a new aggregate whose id is taken, one made without create(), repr."""

from __future__ import annotations

import asyncio
import threading
import uuid
from dataclasses import dataclass
from typing import Any

import pytest

import evstore
from evstore import Aggregate, EventRegistry, applies
from evstore.testing import StoreFactory

REGISTRY = EventRegistry()


@REGISTRY.register
@dataclass(frozen=True)
class Deposited:
    amount: int


@dataclass
class Account(Aggregate):
    balance: int = 0

    @classmethod
    def open(cls, id: str, amount: int) -> Account:
        account = cls.create(id)
        account.deposit(amount)
        return account

    def deposit(self, amount: int) -> None:
        self.trigger(Deposited(amount))

    @applies(Deposited)
    def _deposited(self, event: Deposited) -> None:
        self.balance += event.amount


def account_id() -> str:
    return f"account-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def store(store_factory: StoreFactory) -> Any:
    with store_factory.connect() as s:
        yield s


def test_load_an_aggregate_as_it_was(store: evstore.EventStore) -> None:
    accounts = evstore.Repository(store, Account, registry=REGISTRY, snapshot_every=2)
    aid = account_id()
    account = Account.open(aid, 10)
    for amount in (1, 2, 3):
        account.deposit(amount)
    accounts.save(account)
    assert accounts.load(aid).balance == 16
    old = accounts.load(aid, version=2)
    assert (old.version, old.balance) == (2, 11)
    assert accounts.load(aid).balance == 16  # the latest state is untouched
    with pytest.raises(evstore.InvalidInput, match="no version 9"):
        accounts.load(aid, version=9)
    with pytest.raises(evstore.InvalidInput):
        accounts.load(aid, version=0)
    assert accounts.get(account_id(), version=1) is None


def test_full_replay_ignores_cache_and_snapshot(store: evstore.EventStore) -> None:
    accounts = evstore.Repository(store, Account, registry=REGISTRY, snapshot_every=2)
    aid = account_id()
    account = Account.open(aid, 5)
    account.deposit(5)
    accounts.save(account)  # crosses 2: a snapshot at version 2
    schema = Account.snapshot_schema_version()
    store.save_snapshot(evstore.Snapshot(aid, 2, {"balance": 999}, schema))  # a wrong one
    fresh = evstore.Repository(store, Account, registry=REGISTRY)
    assert fresh.load(aid).balance == 999  # trusts the snapshot
    assert fresh.load(aid, full_replay=True).balance == 10  # the events' truth
    assert fresh.load(aid).balance == 10  # and the cache now holds it


@pytest.mark.slow
def test_retry_backs_off_so_contending_writers_all_succeed(
    store_factory: StoreFactory,
) -> None:
    aid = account_id()
    with store_factory.connect() as store:
        evstore.Repository(store, Account, registry=REGISTRY).save(Account.open(aid, 0))
    errors: list[BaseException] = []
    start = threading.Barrier(8)

    shared = store_factory.connect()  # one store (one connection pool), 8 writer threads

    def writer() -> None:
        accounts = evstore.Repository(shared, Account, registry=REGISTRY)
        start.wait()
        for _ in range(5):
            try:
                # 8 writers on one aggregate: 40 commits contend, so a writer may lose
                # more than the default 10 rounds on a loaded server; backoff and
                # jitter must let every one through within 30.
                accounts.retry(aid, lambda a: a.deposit(1), attempts=30)
            except BaseException as e:
                errors.append(e)

    threads = [threading.Thread(target=writer) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    shared.close()
    assert errors == [], [repr(e) for e in errors]
    with store_factory.connect() as store:
        assert evstore.Repository(store, Account, registry=REGISTRY).load(aid).balance == 40


def test_retry_rejects_bad_backoff(store: evstore.EventStore) -> None:
    accounts = evstore.Repository(store, Account, registry=REGISTRY)
    for bad in ({"backoff": -1}, {"max_backoff": "1"}, {"attempts": 0}):
        with pytest.raises(evstore.InvalidInput):
            accounts.retry("account-x", lambda a: None, **bad)


def test_a_new_aggregate_whose_id_is_taken_says_so(store: evstore.EventStore) -> None:
    accounts = evstore.Repository(store, Account, registry=REGISTRY)
    aid = account_id()
    accounts.save(Account.open(aid, 1))
    with pytest.raises(evstore.ConcurrencyError, match="already exists") as raised:
        accounts.save(Account.open(aid, 2))
    assert "reload" not in str(raised.value)
    assert accounts.load(aid).balance == 1


def test_an_aggregate_made_without_create_is_a_clear_error(store: evstore.EventStore) -> None:
    accounts = evstore.Repository(store, Account, registry=REGISTRY)
    with pytest.raises(evstore.InvalidInput, match=r"Account\.create\(id\)"):
        Account().deposit(1)
    account = Account()
    with pytest.raises(evstore.InvalidInput, match=r"Account\.create\(id\)"):
        accounts.save(account)
    assert store.stats()["events"] == 0


def test_reprs_say_what_things_are(store: evstore.EventStore) -> None:
    aid = account_id()
    account = Account.open(aid, 7)
    assert repr(account) == f"Account(id={aid!r}, version=1, balance=7)"
    accounts = evstore.Repository(store, Account, registry=REGISTRY, snapshot_every=50)
    assert repr(accounts).startswith("<Repository of Account: snapshots every 50")
    assert "Deposited" in repr(REGISTRY)


def test_the_asyncio_repository_loads_as_of_a_version(store_factory: StoreFactory) -> None:
    async def main() -> None:
        async with store_factory.connect_async() as store:
            accounts = evstore.AsyncRepository(store, Account, registry=REGISTRY)
            aid = account_id()
            account = Account.open(aid, 3)
            account.deposit(4)
            await accounts.save(account)
            assert (await accounts.load(aid, version=1)).balance == 3
            assert (await accounts.load(aid, full_replay=True)).balance == 7
            await accounts.retry(aid, lambda a: a.deposit(1), backoff=0.001)
            assert (await accounts.load(aid)).balance == 8

    asyncio.run(main())


def test_store_and_subscription_reprs_never_show_a_password(store: evstore.EventStore) -> None:
    assert repr(store).startswith("<EventStore ")
    with store.subscribe(lambda e: None, name="shown") as sub:
        assert "shown" in repr(sub) and "running" in repr(sub)
    assert "stopped" in repr(sub)
    redact = evstore.store.facade_async.redact
    assert (
        redact("postgresql://app:s3cret@db/app?schema=x") == "postgresql://app:***@db/app?schema=x"
    )
    assert redact("postgresql://db/app?password=s3cret") == "postgresql://db/app?password=***"
    assert redact("sqlite:///app.db") == "sqlite:///app.db"
    with evstore.connect("memory://", poll_interval=0.1) as memory:
        assert repr(memory) == "<EventStore memory://>"
    assert repr(memory) == "<EventStore memory:// (closed)>"
