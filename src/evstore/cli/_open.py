"""Which store a command opens: ``--url``, else ``$EVSTORE_URL``, else ``./evstore.db``.

Commands that only look (``read``, ``tail``, ``streams``, ``stats``) open existing stores
only: a mistyped path or URL is an error with a hint, never a new empty database.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Callable, Iterator
from typing import Any, TypeVar
from urllib.parse import quote

import click

import evstore
from evstore.cli.render import errors, fail
from evstore.store.connect import DEFAULT_URL
from evstore.store.facade_async import redact

F = TypeVar("F", bound=Callable[..., Any])

URL_HELP = (
    "Store URL: memory://, sqlite:///path.db, postgresql://..., mongodb://... "
    f"[default: $EVSTORE_URL, else {DEFAULT_URL}]"
)


def url_option(function: F) -> F:
    """The ``--url`` option every store command takes."""
    return click.option("--url", default=None, metavar="URL", help=URL_HELP)(function)


def json_option(function: F) -> F:
    """The ``--json`` option: NDJSON on stdout, one object per line."""
    return click.option(
        "--json", "as_json", is_flag=True, help="Print NDJSON: one JSON object per line."
    )(function)


def resolve(url: str | None) -> tuple[str, str | None]:
    """The URL to open and where it came from (None: the command line)."""
    if url is not None:
        return url, None
    env = os.environ.get("EVSTORE_URL")
    if env:
        return env, "$EVSTORE_URL"
    return DEFAULT_URL, f"the default URL ({DEFAULT_URL})"


def shown(url: str) -> str:
    """The URL without its password, fit to print."""
    return redact(url)


def check_url(url: str, source: str | None) -> None:
    if "://" not in url:
        where = f" (from {source})" if source else ""
        raise fail(
            f"{url!r}{where} is not a store URL",
            f"for an SQLite file write sqlite:///{url}" if url else None,
        )


def _check_sqlite(url: str, source: str | None) -> None:
    """An SQLite URL must name an existing evstore database."""
    from evstore.backends import sqlite as sqlite_backend

    path, _ = sqlite_backend.parse_url(url)
    where = f" (the URL came from {source})" if source else ""
    if not os.path.exists(path):
        raise fail(
            f"no evstore database at {path}{where}",
            f"check the path; `evstore migrate --url {url}` creates one",
        )
    if os.path.isdir(path):
        raise fail(f"{path} is a directory, not an evstore database{where}")
    uri = "file:" + quote(os.path.abspath(path)) + "?mode=ro"
    try:
        db = sqlite3.connect(uri, uri=True)
        try:
            found = db.execute(
                "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'events'"
            ).fetchone()[0]
        finally:
            db.close()
    except sqlite3.DatabaseError as e:
        raise fail(f"{path} is not an evstore database ({e}){where}") from None
    if not found:
        raise fail(f"{path} is not an evstore database (it has no evstore tables){where}")


def open_store(url: str | None, *, existing: bool = True) -> evstore.EventStore:
    """Open the store a command names; with ``existing``, never create one."""
    url, source = resolve(url)
    check_url(url, source)
    scheme = url.split("://", 1)[0].lower()
    options: dict[str, Any] = {}
    if existing and scheme == "sqlite":
        _check_sqlite(url, source)
    elif existing and scheme in ("postgresql", "postgres"):
        options["create_schema"] = False
    with errors(source):
        return evstore.connect(url, **options)


@contextlib.contextmanager
def opened(url: str | None, *, existing: bool = True) -> Iterator[evstore.EventStore]:
    """``open_store`` as a context manager; evstore errors become one line on stderr."""
    store = open_store(url, existing=existing)
    _, source = resolve(url)
    with errors(source), store:
        yield store


def stream_summary(store: evstore.EventStore, stream_id: str) -> evstore.StreamSummary | None:
    """The listing entry of one stream (None if the store never had it)."""
    # Streams are listed in code-point order on every backend: start just before the id.
    before = stream_id[:-1] + chr(ord(stream_id[-1]) - 1) + "\U0010ffff"
    try:
        found = store.list_streams(after=before, limit=2)
    except evstore.InvalidInput:
        found = []
    return next((s for s in found if s.stream_id == stream_id), None)
