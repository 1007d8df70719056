"""``evstore migrate``: create or upgrade a store's schema explicitly."""

from __future__ import annotations

import click

import evstore
from evstore.cli._open import check_url, opened, resolve, shown, url_option
from evstore.cli.render import Output, errors


@click.command()
@url_option
def migrate(url: str | None) -> None:
    """Create or upgrade the store's schema (the one command that creates a store)."""
    out = Output()
    target, source = resolve(url)
    check_url(target, source)
    with errors(source):
        versions = evstore.migrate(target)
    if versions is not None:
        out.line(f"{shown(target)}: schema version {versions[0]} -> {versions[1]}")
        return
    with opened(target, existing=False) as store:
        out.line(f"{shown(target)}: schema ready, {store.stats()['events']} events")
