"""``evstore tail``: follow the global log, printing events as they are appended."""

from __future__ import annotations

import queue
import signal
from typing import Any

import click
from rich.text import Text

import evstore
from evstore.cli._open import json_option, opened, resolve, shown, url_option
from evstore.cli.render import Output, to_json


class Position(click.ParamType):  # type: ignore[type-arg]
    """A position in the global log (an integer >= 0) or ``end``."""

    name = "position"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, int) or value == "end":
            return value
        if isinstance(value, str) and value.strip().isdigit():
            return int(value)
        self.fail(f"{value!r} is not a position: use an integer >= 0 or 'end'", param, ctx)


def _stop(*_: object) -> None:
    raise KeyboardInterrupt


@click.command()
@url_option
@click.option(
    "--from-position",
    type=Position(),
    default="end",
    show_default=True,
    help="Start after this position (0: from the beginning) or at the end.",
)
@click.option("--type", "types", multiple=True, help="Only this event type (repeatable).")
@click.option("--type-prefix", default=None, help="Only event types starting with this text.")
@click.option("--category", default=None, help="Only streams of this category.")
@click.option("--stream", default=None, help="Only this stream.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Stop after N events.")
@json_option
def tail(
    url: str | None,
    from_position: int | str,
    types: tuple[str, ...],
    type_prefix: str | None,
    category: str | None,
    stream: str | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """Follow the global log, printing events as they are appended (Ctrl-C stops).

    It says on stderr what it follows and from where. Through a pipe: one line per event,
    or NDJSON with --json.
    """
    out = Output(json=as_json)
    received: queue.Queue[evstore.RecordedEvent] = queue.Queue(maxsize=1000)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)  # also when started with SIGINT ignored (`cmd &`)
    with opened(url) as store:
        start = store.head_position() if from_position == "end" else from_position
        what = " ".join(
            [f"type {t!r}" for t in types]
            + ([f"types starting with {type_prefix!r}"] if type_prefix is not None else [])
            + ([f"category {category!r}"] if category else [])
            + ([f"stream {stream!r}"] if stream else [])
        )
        out.say(
            f"following {shown(resolve(url)[0])}{' (' + what + ')' if what else ''} "
            f"after position {start}{' (the end)' if from_position == 'end' else ''}; "
            "Ctrl-C stops"
        )
        subscription = store.subscribe(
            received.put,
            from_position=int(start),
            types=list(types) or None,
            type_prefix=type_prefix,
            category=category,
            stream_id=stream,
        )
        count = 0
        try:
            while limit is None or count < limit:
                try:
                    event = received.get(timeout=0.2)
                except queue.Empty:
                    if not subscription.running:
                        break
                    continue
                _show(out, event)
                count += 1
        except KeyboardInterrupt:
            pass
        finally:
            _drain(received)
            subscription.stop()


def _drain(received: queue.Queue[evstore.RecordedEvent]) -> None:
    # Unblock a handler waiting on a full queue so that the subscription can stop.
    while True:
        try:
            received.get_nowait()
        except queue.Empty:
            return


def _show(out: Output, e: evstore.RecordedEvent) -> None:
    if out.tables:
        out.out.print(
            Text.assemble(
                (str(e.position), "bold"),
                " ",
                f"{e.stream_id}@{e.version}",
                " ",
                (e.type, "cyan"),
                " ",
                to_json(e.data),
            )
        )
    else:
        out.event(e)
    out.flush()
