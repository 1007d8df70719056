"""``evstore streams`` and ``evstore stats``: what a store holds, for operators."""

from __future__ import annotations

import shlex

import click

from evstore.cli._open import json_option, opened, url_option
from evstore.cli.render import Output, text_table


@click.command()
@url_option
@click.option("--after", default=None, help="Start after this stream id.")
@click.option("--limit", type=click.IntRange(min=1), default=100, show_default=True)
@json_option
def streams(url: str | None, after: str | None, limit: int, as_json: bool) -> None:
    """List streams in id order with their version and state (live, deleted, tombstoned).

    The version of a deleted stream is its last version, as `evstore read` reports it.
    """
    out = Output(json=as_json)
    with opened(url) as store:
        found = store.list_streams(after=after, limit=limit + 1)
    page, more = found[:limit], len(found) > limit
    if out.json:
        for s in page:
            out.record({"stream_id": s.stream_id, "version": s.version, "state": s.state})
    elif out.tables:
        out.show(text_table(("stream", "version", "state"), page))
    else:
        for s in page:
            out.line(f"{s.stream_id}\t{s.version}\t{s.state}")
    if not page:
        out.say("no streams" + (f" after {after!r}" if after is not None else ""))
    if more:
        again = f"evstore streams --after {shlex.quote(page[-1].stream_id)}"
        out.say(f"more streams follow: {again}" + (f" --url {shlex.quote(url)}" if url else ""))


@click.command()
@url_option
@json_option
def stats(url: str | None, as_json: bool) -> None:
    """Show counts: events, streams, snapshots, checkpoints, head position."""
    out = Output(json=as_json)
    with opened(url) as store:
        counts = store.stats()
    if out.json:
        out.record(counts)
    elif out.tables:
        out.show(text_table(("what", "count"), counts.items()))
    else:
        for key, value in counts.items():
            out.line(f"{key}\t{value}")
