"""The ``evstore`` command: a demo and a few operator tools.

    evstore demo                 the seed's scenario on ./evstore-demo.db
    evstore read STREAM          print a stream
    evstore tail                 follow the global log
    evstore streams              list streams
    evstore stats                counts
    evstore migrate              create or upgrade the schema explicitly

Every command but ``demo`` takes ``--url`` (default ``$EVSTORE_URL``, else ./evstore.db).
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator

import click
from rich.console import Console
from rich.table import Table

import evstore
from evstore.cli.render import events_table, to_json

console = Console()

url_option = click.option(
    "--url",
    envvar="EVSTORE_URL",
    default=None,
    help="Store URL (memory://, sqlite:///path.db, postgresql://..., mongodb://...).",
)


@click.group()
@click.version_option(package_name="evstore")
def main() -> None:
    """evstore - an event store for Python."""


@main.command()
@click.option("--path", default="evstore-demo.db", show_default=True, help="Demo database file.")
def demo(path: str) -> None:
    """Run the seed's scenario: users, a stream, a conflict, a snapshot, a subscription."""
    from evstore.cli.demo import run_demo

    run_demo(path, console)


@main.command()
@url_option
@click.argument("stream")
@click.option("--from-version", default=1, show_default=True)
@click.option("--limit", type=int, default=None)
@click.option("--backwards", is_flag=True)
def read(
    url: str | None, stream: str, from_version: int, limit: int | None, backwards: bool
) -> None:
    """Print the events of STREAM."""
    with _errors(), evstore.connect(url) as store:
        events = store.get_events(stream, from_version, limit=limit, backwards=backwards)
        console.print(events_table(events, f"{stream} (version {store.stream_version(stream)})"))


@main.command()
@url_option
@click.option("--from-position", default="end", show_default=True, help="A position or 'end'.")
@click.option("--type", "types", multiple=True, help="Only these event types.")
@click.option("--category", default=None, help="Only streams of this category.")
def tail(url: str | None, from_position: str, types: tuple[str, ...], category: str | None) -> None:
    """Follow the global log, printing events as they are appended (Ctrl-C stops)."""
    start: int | str = from_position if from_position == "end" else int(from_position)
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())

    def show(e: evstore.RecordedEvent) -> None:
        console.print(
            f"[bold]{e.position}[/] {e.stream_id}@{e.version} [cyan]{e.type}[/] {to_json(e.data)}"
        )

    with _errors(), evstore.connect(url) as store:
        sub = store.subscribe(show, from_position=start, types=types or None, category=category)  # type: ignore[arg-type]
        while not done.wait(0.2) and sub.running:
            pass
        sub.stop()


@main.command()
@url_option
@click.option("--after", default=None, help="Start after this stream id.")
@click.option("--limit", default=100, show_default=True)
def streams(url: str | None, after: str | None, limit: int) -> None:
    """List streams with their version and state."""
    with _errors(), evstore.connect(url) as store:
        table = Table("stream", "version", "state")
        for s in store.list_streams(after=after, limit=limit):
            table.add_row(s.stream_id, str(s.version), s.state)
        console.print(table)


@main.command()
@url_option
def stats(url: str | None) -> None:
    """Show counts: events, streams, snapshots, checkpoints, head position."""
    with _errors(), evstore.connect(url) as store:
        table = Table("what", "count")
        for key, value in store.stats().items():
            table.add_row(key, str(value))
        console.print(table)


@main.command()
@url_option
def migrate(url: str | None) -> None:
    """Create or upgrade the store's schema (opening a store does it too)."""
    with _errors():
        versions = evstore.migrate(url)
    if versions is not None:
        console.print(f"schema version {versions[0]} -> {versions[1]}")
        return
    with _errors(), evstore.connect(url) as store:
        console.print(f"schema ready: {store.stats()['events']} events")


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    """Print evstore errors as one red line and exit 1, instead of a traceback."""
    try:
        yield
    except evstore.EvstoreError as e:
        console.print(f"[red]{type(e).__name__}: {e}[/]")
        raise SystemExit(1) from e
