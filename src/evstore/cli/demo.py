"""``evstore demo``: the worked example, end to end, on the embedded SQLite default.

The scenario itself is :func:`evstore.examples.scenario.run` (the ``User`` aggregate, the
repository with snapshots, an upcaster, the users-by-source projection); this module runs
it beside a live subscription and shows what happened.

The demo never deletes a file it did not make: it marks its database (SQLite's
``application_id``) and replaces only a file carrying that mark, unless ``--force``.
"""

from __future__ import annotations

import os
import shlex
import shutil
import sqlite3
import sys
import threading
from urllib.parse import quote

import click
from rich.console import Console
from rich.panel import Panel
from rich.text import Text

import evstore
from evstore.cli.render import Output, errors, events_table, fail, progress, text_table
from evstore.examples import scenario

DEMO_APPLICATION_ID = 0x65766465  # "evde": this file was made by `evstore demo`
SIDECARS = ("-wal", "-shm", "-journal")


def _made_by_demo(path: str) -> bool:
    try:
        db = sqlite3.connect("file:" + quote(os.path.abspath(path)) + "?mode=ro", uri=True)
        try:
            (found,) = db.execute("PRAGMA application_id").fetchone()
        finally:
            db.close()
    except sqlite3.DatabaseError:
        return False
    return bool(found == DEMO_APPLICATION_ID)


def prepare(path: str, *, force: bool = False) -> str:
    """Make room for a fresh demo database at ``path``; its URL.

    Only a file an earlier demo made is replaced (or any file, with ``force``); anything
    else is an error and nothing is touched.
    """
    if os.path.isdir(path):
        raise fail(f"{path} is a directory", "give --path a file name, e.g. --path demo.db")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise fail(f"the directory {os.path.dirname(path) or parent} does not exist")
    if os.path.exists(path):
        if not (force or _made_by_demo(path)):
            raise fail(
                f"{path} exists and was not made by `evstore demo`; the demo will not touch it",
                "choose another --path, or pass --force to replace it",
            )
        for suffix in ("", *SIDECARS):
            if os.path.exists(path + suffix):
                os.remove(path + suffix)
    return f"sqlite:///{path}"


def _mark(path: str) -> None:
    db = sqlite3.connect(path)
    try:
        db.execute(f"PRAGMA application_id={DEMO_APPLICATION_ID}")
    finally:
        db.close()


def _command_name() -> str:
    """How to type ``evstore`` again: its name if the shell finds this one, else its path."""
    invoked = sys.argv[0] if sys.argv and sys.argv[0] else "evstore"
    found = shutil.which("evstore")
    if found and os.path.exists(invoked) and os.path.samefile(found, invoked):
        return "evstore"
    if os.path.basename(invoked) == "evstore" and os.path.exists(invoked):
        relative = os.path.relpath(invoked)
        return shlex.quote(os.path.abspath(invoked) if relative.startswith("..") else relative)
    return "python -m evstore.cli" if found is None else "evstore"


@click.command()
@click.option("--path", default="evstore-demo.db", show_default=True, help="Demo database file.")
@click.option("--force", is_flag=True, help="Replace the file at --path even if not the demo's.")
def demo(path: str, force: bool) -> None:
    """Run the worked example: users, a stream, a conflict, a snapshot, a subscription.

    It writes a new SQLite database at --path; a file there that an earlier demo made is
    replaced, any other file is left alone (unless --force).
    """
    url = prepare(path, force=force)
    with errors():
        run_demo(url, path, Output().out)


def run_demo(url: str, path: str, console: Console) -> None:
    """Run the demo against the fresh database ``url`` (the file ``path``)."""
    console.print(Panel(Text(f"evstore demo on {url} (SQLite, WAL, synchronous=FULL)")))
    with evstore.connect(url) as store:
        _mark(path)
        live: list[evstore.RecordedEvent] = []
        lock = threading.Lock()

        def on_event(event: evstore.RecordedEvent) -> None:
            with lock:
                live.append(event)

        console.rule("1. a subscription, started before anything is written")
        subscription = store.subscribe(on_event, name="demo-tail")
        console.print("subscribed to the global log as 'demo-tail' (checkpointed)")

        console.rule("2. the scenario: register users, save, snapshot, conflict, upcast")
        with progress() as bars:
            task = bars.add_task("running the scenario", total=1)
            report = scenario.run(url, users=8, snapshot_every=5)
            bars.advance(task)
        for user_id in report.users:
            console.print(f"  {user_id}: version {store.stream_version(user_id)}")

        console.rule("3. read a stream")
        first = report.users[0]
        console.print(events_table(store.get_events(first), first))

        console.rule("4. optimistic concurrency")
        console.print("two sessions loaded the same user; the second save was refused:")
        console.print(Text.assemble("  ", ("ConcurrencyError", "yellow"), f": {report.conflict}"))
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
            f"  an event stored in an older (v1) shape, upcast on read: {report.legacy_user}"
        )

        console.rule("6. the subscription and the projection")
        subscription.wait_until(store.head_position(), timeout=10.0)
        subscription.stop()
        with lock:
            received = list(live)
        console.print(
            f"  'demo-tail' received {len(received)} events live, in order: "
            f"{[e.position for e in received] == sorted(e.position for e in received)}; "
            f"checkpoint {subscription.position}"
        )
        rows = [
            (source, registered, active)
            for source, (registered, active) in sorted(report.counts.items())
        ]
        table = text_table(("registration source", "registered", "active"), rows)
        table.title = "users by source"
        console.print(table)
        mode = "exactly-once (same transaction)" if report.exactly_once else "at-least-once"
        console.print(f"  the projection handled {report.handled} events, {mode}")
        console.print(f"  store: {store.stats()}")
    command = _command_name()
    console.rule("done")
    console.print("Inspect it (the command as typed, from this directory):")
    console.print(
        Text(f"  {command} read {shlex.quote(first)} --url {shlex.quote(url)}"), soft_wrap=True
    )
