"""One eventsourcing application on its own persistence modules and on evstore's.

The same ``Application`` code, changed only by its environment (``PERSISTENCE_MODULE``):
``eventsourcing.sqlite`` / ``eventsourcing.postgres`` against
``evstore.integrations.eventsourcing`` on the same database server. Runs are interleaved
(repetition r runs the modules in turn, the first one alternating), each on a fresh
database, and the median of the repetitions is reported with the load average::

    python -m benchmarks.eventsourcing_module --backends sqlite,postgresql --n 500 --reps 3

Workloads (ops/s; an op is one ``save``/``get``/notification):

- ``open``: save N new aggregates (one event each);
- ``deposit``: N times get an aggregate, trigger one event, save it;
- ``save2``: N/2 saves of two new aggregates in one ``save(a, b)``;
- ``load``: N gets of aggregates of 10 events;
- ``log``: read the whole notification log in pages of 100;
- ``writers4``: 4 threads saving N new aggregates between them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time
from collections.abc import Callable
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event

from benchmarks._common import fresh_database
from benchmarks.impl_eventsourcing import environment

WORKLOADS = ("open", "deposit", "save2", "load", "log", "writers4")


class Account(Aggregate):
    """A bank account: opened, then deposits."""

    @event("Opened")
    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.balance = 0

    @event("Deposited")
    def deposit(self, amount: int) -> None:
        self.balance += amount


class Bank(Application[UUID]):
    """The application under test."""


def run_once(env: dict[str, str], n: int) -> dict[str, float]:
    """Every workload once on ``env``'s (fresh) database; ops/s per workload."""
    app = Bank(env=env)
    rates: dict[str, float] = {}

    def timed(name: str, ops: int, body: Callable[[], None]) -> None:
        started = time.perf_counter()
        body()
        rates[name] = ops / (time.perf_counter() - started)

    ids: list[UUID] = []

    def open_accounts() -> None:
        for i in range(n):
            account = Account(f"owner-{i}")
            app.save(account)
            ids.append(account.id)

    def deposit() -> None:
        for i in range(n):
            account: Account = app.repository.get(ids[i % len(ids)])
            account.deposit(10)
            app.save(account)

    def save_two() -> None:
        for i in range(n // 2):
            app.save(Account(f"a-{i}"), Account(f"b-{i}"))

    loaded: list[UUID] = []

    def prepare_load() -> None:
        loaded.extend(ids[: max(1, n // 10)])
        for account_id in loaded:
            account: Account = app.repository.get(account_id)
            for _ in range(10 - account.version):
                account.deposit(1)
            app.save(account)

    def load() -> None:
        for i in range(n):
            app.repository.get(loaded[i % len(loaded)])

    count = [0]

    def read_log() -> None:
        start = 1
        while True:
            page = app.recorder.select_notifications(start, 100)
            if not page:
                return
            count[0] += len(page)
            start = page[-1].id + 1

    def writers() -> None:
        def work(k: int) -> None:
            for i in range(n // 4):
                app.save(Account(f"w{k}-{i}"))

        threads = [threading.Thread(target=work, args=(k,)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    try:
        timed("open", n, open_accounts)
        timed("deposit", n, deposit)
        timed("save2", n // 2 * 2, save_two)
        prepare_load()
        timed("load", n, load)
        started = time.perf_counter()
        read_log()
        rates["log"] = count[0] / (time.perf_counter() - started)
        timed("writers4", n // 4 * 4, writers)
    finally:
        app.close()
    return rates


def modules(backend: str, db_env: dict[str, str], url: str) -> dict[str, dict[str, str]]:
    """The two environments to compare on one fresh database."""
    return {
        "eventsourcing": db_env,
        "evstore": {"PERSISTENCE_MODULE": "evstore.integrations.eventsourcing", "EVSTORE_URL": url},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--n", type=int, default=500, help="operations per workload")
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    for backend in args.backends.split(","):
        results: dict[str, list[dict[str, float]]] = {"eventsourcing": [], "evstore": []}
        for rep in range(args.reps):
            order = ["eventsourcing", "evstore"]
            if rep % 2:
                order.reverse()
            for name in order:
                with fresh_database(backend) as db:
                    env = modules(backend, environment(db), db.evstore_url)[name]
                    results[name].append(run_once(env, args.n))
        print(f"\n{backend}, n={args.n}, {args.reps} interleaved repetitions (median ops/s)")
        print(f"{'workload':10} {'eventsourcing':>14} {'evstore':>10} {'ratio':>7}")
        for workload in WORKLOADS:
            a = statistics.median(r[workload] for r in results["eventsourcing"])
            b = statistics.median(r[workload] for r in results["evstore"])
            print(f"{workload:10} {a:14.0f} {b:10.0f} {b / a:7.2f}")
    print(f"\nload average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
