"""``evstore ui``: serve the read-only web viewer of a store (needs the ``ui`` extra)."""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
from typing import Any

import click

import evstore
from evstore.cli._open import _check_sqlite, check_url, resolve, shown, url_option
from evstore.cli.render import errors, fail

LOOPBACK_NAMES = ("localhost",)


def _loopback(host: str) -> bool:
    if host in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command("ui")
@url_option
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True)
@click.option(
    "--token",
    default=None,
    envvar="EVSTORE_UI_TOKEN",
    help="Require this token on every request (?token=... or an X-Evstore-Token header); "
    "'auto' makes one up. Required when --host is not a loopback address. "
    "[default: $EVSTORE_UI_TOKEN, which other users cannot read in the process list]",
)
@click.option(
    "--sample-interval",
    type=click.FloatRange(min=0.1),
    default=5.0,
    show_default=True,
    help="Seconds between the chart's samples (append rate, subscription lag).",
)
def ui(url: str | None, host: str, port: int, token: str | None, sample_interval: float) -> None:
    """Serve a read-only web viewer of a store: streams, events, the live log,
    subscriptions and projections, stats, a chart of append rate and lag."""
    try:
        from evstore.ui import create_app, server
    except ImportError as e:
        raise fail(f"the viewer needs the ui extra ({e})", "pip install 'evstore[ui]'") from None
    if not _loopback(host) and not token:
        raise fail(
            f"--host {host} serves the viewer beyond this machine: give it a --token",
            "--token auto makes one up",
        )
    if token == "auto":
        token = secrets.token_urlsafe(16)
    resolved, source = resolve(url)
    check_url(resolved, source)
    options: dict[str, Any] = {}
    scheme = resolved.split("://", 1)[0].lower()
    if scheme == "sqlite":
        _check_sqlite(resolved, source)
    elif scheme in ("postgresql", "postgres"):
        options["create_schema"] = False

    async def serve() -> None:
        with errors(source):
            store = evstore.connect_async(resolved, **options)
            await store.stats()  # fail now, not on the first page view
        hosts = ["127.0.0.1", "localhost"] + ([] if _loopback(host) else [host])
        app = create_app(
            store,
            token=token,
            allowed_hosts=hosts,
            sample_interval=sample_interval,
            close_store=True,
        )
        where = f"http://{host}:{port}/" + (f"?token={token}" if token else "")
        click.echo(f"evstore ui: {shown(resolved)} at {where} (Ctrl-C stops)", err=True)
        await server(app, host=host, port=port).serve()

    asyncio.run(serve())
