"""``evstore demo``: the seed's scenario, end to end, on the embedded SQLite default.

The scenario itself is :func:`evstore.examples.scenario.run` (the ``User`` aggregate, the
repository with snapshots, an upcaster, the users-by-source projection); this module runs
it beside a live subscription and shows what happened.
"""

from __future__ import annotations

import os
import threading

from rich.console import Console
from rich.panel import Panel
from rich.table import Table

import evstore
from evstore.cli.render import events_table
from evstore.examples import scenario


def _fresh(path: str) -> str:
    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    return f"sqlite:///{path}"


def run_demo(path: str, console: Console) -> None:
    """Run the demo against a fresh database file at ``path``."""

    url = _fresh(path)
    console.print(Panel(f"evstore demo on [bold]{url}[/] (SQLite, WAL, synchronous=FULL)"))
    with evstore.connect(url) as store:
        live: list[evstore.RecordedEvent] = []
        lock = threading.Lock()

        def on_event(event: evstore.RecordedEvent) -> None:
            with lock:
                live.append(event)

        console.rule("1. a subscription, started before anything is written")
        subscription = store.subscribe(on_event, name="demo-tail")
        console.print("subscribed to the global log as 'demo-tail' (checkpointed)")

        console.rule("2. the scenario: register users, save, snapshot, conflict, upcast")
        report = scenario.run(url, users=8, snapshot_every=5)
        for user_id in report.users:
            console.print(f"  {user_id}: version {store.stream_version(user_id)}")

        console.rule("3. read a stream")
        first = report.users[0]
        console.print(events_table(store.get_events(first), first))

        console.rule("4. optimistic concurrency")
        console.print("two sessions loaded the same user; the second save was refused:")
        console.print(f"  [yellow]ConcurrencyError[/]: {report.conflict}")
        console.print(f"  repository.retry reloaded and applied it again: {report.retried_email}")

        console.rule("5. snapshots")
        if report.snapshot is not None:
            stream, version = report.snapshot
            after = store.get_events(stream, version + 1)
            console.print(
                f"  a save crossed the snapshot interval: snapshot of {stream} at version "
                f"{version}; loading reads it plus {len(after)} later event(s), not the whole "
                "stream"
            )
        console.print(
            f"  an event stored in the seed's v1 shape, upcast on read: {report.legacy_user}"
        )

        console.rule("6. the subscription and the projection")
        expected = store.head_position()
        deadline = 10.0
        while deadline > 0 and (not live or live[-1].position < expected):
            threading.Event().wait(0.05)
            deadline -= 0.05
        subscription.stop()
        with lock:
            received = list(live)
        console.print(
            f"  'demo-tail' received {len(received)} events live, in order: "
            f"{[e.position for e in received] == sorted(e.position for e in received)}; "
            f"checkpoint {subscription.position}"
        )
        table = Table("registration source", "registered", "active", title="users by source")
        for source, (registered, active) in sorted(report.counts.items()):
            table.add_row(source, str(registered), str(active))
        console.print(table)
        mode = "exactly-once (same transaction)" if report.exactly_once else "at-least-once"
        console.print(f"  the projection handled {report.handled} events, {mode}")
        console.print(f"  store: {store.stats()}")
    console.print(Panel(f"done. Inspect it: evstore read {first} --url {url}"))
