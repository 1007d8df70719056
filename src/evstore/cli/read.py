"""``evstore read STREAM``: the events of one stream, printed as they are read."""

from __future__ import annotations

import itertools

import click

from evstore.cli._open import json_option, opened, stream_summary, url_option
from evstore.cli.render import Output, events_table, fail

TABLE_ROWS = 200  # on a terminal, a table is printed every this many events


@click.command()
@url_option
@click.argument("stream")
@click.option("--from-version", type=click.IntRange(min=0), default=1, show_default=True)
@click.option("--to-version", type=click.IntRange(min=0), default=None, help="The last version.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="At most this many.")
@click.option("--backwards", is_flag=True, help="Newest first.")
@json_option
def read(
    url: str | None,
    stream: str,
    from_version: int,
    to_version: int | None,
    limit: int | None,
    backwards: bool,
    as_json: bool,
) -> None:
    """Print the events of STREAM.

    On a terminal: tables. Through a pipe: one line per event (position, stream@version,
    type, data; tab-separated), or with --json one JSON object per event with every field.
    """
    out = Output(json=as_json)
    with opened(url) as store:
        events = store.iter_events(
            stream, from_version, to_version=to_version, limit=limit, backwards=backwards
        )
        count = 0
        if out.tables:
            title: str | None = f"{stream} (version {store.stream_version(stream)})"
            while chunk := list(itertools.islice(events, TABLE_ROWS)):
                out.show(events_table(chunk, title))
                out.flush()
                count += len(chunk)
                title = None
        else:
            for event in events:
                out.event(event)
                count += 1
        if count:
            return
        summary = stream_summary(store, stream)
        if summary is None:
            raise fail(f"stream {stream!r} does not exist", "`evstore streams` lists the streams")
        if summary.state != "live":
            out.say(f"stream {stream!r} was deleted at version {summary.version}")
        else:
            out.say(f"stream {stream!r} (version {summary.version}) has no events in that range")
