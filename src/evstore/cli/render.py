"""How the command line shows things, shared by every command and the demo.

Everything printed is text, never Rich markup: stored data such as ``[bold]x[/bold]`` or
``[/]`` and messages such as ``pip install 'evstore[postgresql]'`` print verbatim. Results
go to stdout, messages and errors to stderr. On a terminal events are tables; through a
pipe, one line per event (never wrapped), or NDJSON with ``--json``.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal
from typing import Any
from uuid import UUID

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table
from rich.text import Text

import evstore

EVENT_COLUMNS = ("position", "stream", "version", "type", "recorded_at", "data")


def _console(*, stderr: bool = False) -> Console:
    # markup, emoji and highlighting off: what is printed is exactly the text given.
    return Console(stderr=stderr, markup=False, emoji=False, highlight=False)


def _default(value: object) -> Any:
    if isinstance(value, datetime | date | time):
        return value.isoformat()
    if isinstance(value, UUID | Decimal):
        return str(value)
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    return str(value)


def to_json(value: Any) -> str:
    """A value as one line of JSON (datetimes ISO 8601, UUIDs and Decimals as strings,
    bytes in base64)."""
    return json.dumps(value, default=_default, ensure_ascii=False)


def event_dict(e: evstore.RecordedEvent) -> dict[str, Any]:
    """Every field of an event, as the JSON object ``--json`` prints."""
    return {
        "stream_id": e.stream_id,
        "version": e.version,
        "position": e.position,
        "event_id": str(e.event_id),
        "type": e.type,
        "data": e.data,
        "metadata": e.metadata,
        "schema_version": e.schema_version,
        "occurred_at": e.occurred_at.isoformat(),
        "recorded_at": e.recorded_at.isoformat(),
    }


def event_line(e: evstore.RecordedEvent) -> str:
    """One event as one line: position, stream@version, type, data (tab-separated)."""
    fields = (str(e.position), f"{e.stream_id}@{e.version}", e.type, to_json(e.data))
    return "\t".join(_one_line(f) for f in fields)


def _one_line(text: str) -> str:
    return text.replace("\r", "\\r").replace("\n", "\\n").replace("\t", "\\t")


def events_table(events: Iterable[evstore.RecordedEvent], title: str | None = None) -> Table:
    """A rich table of events; every cell is plain text."""
    table = Table(title=Text(title) if title else None, title_justify="left")
    for column in EVENT_COLUMNS:
        table.add_column(column, overflow="fold")
    for e in events:
        table.add_row(
            str(e.position),
            Text(e.stream_id),
            str(e.version),
            Text(e.type),
            e.recorded_at.isoformat(timespec="seconds"),
            Text(to_json(e.data)),
        )
    return table


def text_table(headers: Iterable[str], rows: Iterable[Iterable[object]]) -> Table:
    """A rich table whose cells print verbatim."""
    table = Table(*headers)
    for row in rows:
        table.add_row(*(Text(str(cell)) for cell in row))
    return table


@dataclass
class Output:
    """Where a command writes: results to stdout (tables on a terminal, lines or NDJSON
    through a pipe), messages to stderr."""

    json: bool = False
    terminal: bool = field(default_factory=lambda: sys.stdout.isatty())
    out: Console = field(default_factory=_console)
    err: Console = field(default_factory=lambda: _console(stderr=True))

    @property
    def tables(self) -> bool:
        """Whether results are shown as tables (on a terminal, without ``--json``)."""
        return self.terminal and not self.json

    def line(self, text: str) -> None:
        """One line on stdout, verbatim and never wrapped."""
        sys.stdout.write(text + "\n")

    def record(self, value: Mapping[str, Any]) -> None:
        """One NDJSON line on stdout."""
        self.line(to_json(value))

    def event(self, e: evstore.RecordedEvent) -> None:
        """One event as an NDJSON record or a line."""
        if self.json:
            self.record(event_dict(e))
        else:
            self.line(event_line(e))

    def show(self, renderable: Any) -> None:
        """A table (or other rich renderable) on stdout."""
        self.out.print(renderable)

    def say(self, message: str) -> None:
        """A message for the person at the terminal, on stderr."""
        self.err.print(Text(message, style="dim" if self.err.is_terminal else ""), soft_wrap=True)

    def flush(self) -> None:
        sys.stdout.flush()


class _NoProgress:
    """What :func:`progress` gives when stderr is not a terminal: nothing is shown."""

    def add_task(self, description: str, total: float | None = None) -> TaskID:
        return TaskID(0)

    def advance(self, task_id: TaskID, advance: float = 1) -> None:
        pass

    def update(self, task_id: TaskID, **fields: Any) -> None:
        pass


@contextlib.contextmanager
def progress() -> Iterator[Progress | _NoProgress]:
    """Progress bars for long work: on stderr, and only when stderr is a terminal (never in
    a pipe or a log); they disappear when done. ``add_task``, ``advance``, ``update``."""
    err = _console(stderr=True)
    if not err.is_terminal:
        yield _NoProgress()
        return
    bars = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
    )
    with bars:
        yield bars


def fail(message: str, hint: str | None = None, code: int = 1) -> click.exceptions.Exit:
    """Print ``error: message`` (and the hint) on stderr; the exception to raise."""
    err = _console(stderr=True)
    err.print(Text(f"error: {message}", style="red" if err.is_terminal else ""), soft_wrap=True)
    if hint:
        err.print(Text(f"hint: {hint}"), soft_wrap=True)
    return click.exceptions.Exit(code)


@contextlib.contextmanager
def errors(source: str | None = None) -> Iterator[None]:
    """Turn evstore errors into one line on stderr and exit code 1, never a traceback.

    ``source`` says where a URL came from (e.g. ``$EVSTORE_URL``), added to the message.
    Also: a closed pipe (``| head``) ends quietly, and Ctrl-C exits 130.
    """
    quiet_driver_logs()
    try:
        yield
    except evstore.EvstoreError as e:
        where = f" (the URL came from {source})" if source else ""
        raise fail(f"{type(e).__name__}: {e}{where}") from None
    except BrokenPipeError:
        _silence_stdout()
        raise click.exceptions.Exit(0) from None
    except KeyboardInterrupt:
        raise click.exceptions.Exit(130) from None


def _silence_stdout() -> None:
    # The reader went away (| head): point stdout at /dev/null so that flushing at exit
    # does not raise again (the recipe of the Python docs, "Note on SIGPIPE").
    devnull = os.open(os.devnull, os.O_WRONLY)
    with contextlib.suppress(OSError):
        os.dup2(devnull, sys.stdout.fileno())


def quiet_driver_logs() -> None:
    """Keep drivers' connection-retry warnings (psycopg_pool) off the user's terminal: the
    command reports what went wrong itself, as one line."""
    for name in ("psycopg.pool", "psycopg", "pymongo"):
        logging.getLogger(name).setLevel(logging.CRITICAL)
