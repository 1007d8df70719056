"""W6 on evstore's domain layer: ``evstore.Aggregate``, ``EventRegistry``, ``Repository``.

Like for like with eventsourcing's ``Application``: saves and plain loads with snapshots
and the cache off (``snapshot_every=None, cache=False``); loads from a snapshot taken at
version 100 (``store.save_snapshot``, as eventsourcing's ``take_snapshot``), cache off;
loads with the repository's cache on (its default), snapshots off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import evstore
from benchmarks._common import payload, stream_name

UNAVAILABLE = (
    ""
    if all(hasattr(evstore, n) for n in ("Aggregate", "Repository", "EventRegistry", "applies"))
    else "evstore's domain layer (Aggregate, EventRegistry, Repository) has not landed yet"
)

if not UNAVAILABLE:
    registry = evstore.EventRegistry()

    @registry.register
    @dataclass(frozen=True)
    class Deposited:
        account_id: str
        amount: float
        currency: str
        description: str
        sequence: int

    @dataclass
    class Account(evstore.Aggregate):
        balance: float = 0.0
        deposits: int = 0

        def deposit(self, **fields: Any) -> None:
            self.trigger(Deposited(**fields))

        @evstore.applies(Deposited)
        def _deposited(self, event: Deposited) -> None:
            self.balance += event.amount
            self.deposits += 1


def run(
    store: Any,
    n_aggregates: int,
    n_loads: int,
    n_cached: int,
    events: int,
    snapshot_every: int,
    clock: Callable[[], float],
) -> dict[str, float]:
    import uuid

    accounts = []
    for k in range(n_aggregates):
        account = Account.create(stream_name(uuid.uuid4()))
        for i in range(events):
            account.deposit(**payload(k * events + i))
        accounts.append(account)
    ids = [a.id for a in accounts]

    plain = evstore.Repository(store, Account, registry=registry, snapshot_every=None, cache=False)
    t = clock()
    for account in accounts:
        plain.save(account)
    saves = n_aggregates / (clock() - t)
    loads = _loads(plain, ids, n_loads, events, clock)

    for ident in ids:
        account = plain.load(ident)
        store.save_snapshot(
            evstore.Snapshot(
                ident, account.version, account.to_snapshot(), Account.snapshot_schema_version()
            )
        )
    snapshots = evstore.Repository(
        store, Account, registry=registry, snapshot_every=snapshot_every, cache=False
    )
    snapshot_loads = _loads(snapshots, ids, n_loads, events, clock)

    cached = evstore.Repository(store, Account, registry=registry, snapshot_every=None)
    for ident in ids:
        cached.load(ident)  # warm the cache
    cached_loads = _loads(cached, ids, n_cached, events, clock)
    return {
        "saves/s": saves,
        "loads/s": loads,
        "loads/s (snapshot)": snapshot_loads,
        "loads/s (cache)": cached_loads,
    }


def _loads(repo: Any, ids: list[str], n: int, events: int, clock: Callable[[], float]) -> float:
    load = repo.load
    t = clock()
    for i in range(n):
        account = load(ids[i % len(ids)])
        assert account.version == events
    return n / (clock() - t)
