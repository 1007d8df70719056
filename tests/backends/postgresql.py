"""PostgreSQL: a fresh schema per test on the server named by ``EVSTORE_POSTGRES_URL``.

The default is the local server (``postgresql://postgres@127.0.0.1:5432/postgres``). A
server that cannot be reached fails the tests - it is never skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from evstore.testing import StoreFactory

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def server_url() -> str:
    """The server under test."""
    return os.environ.get("EVSTORE_POSTGRES_URL") or DEFAULT_URL


def admin_connection() -> psycopg.Connection[tuple[object, ...]]:
    """An autocommit connection to the server under test; fails loudly when unreachable."""
    url = server_url()
    try:
        return psycopg.connect(url, autocommit=True, connect_timeout=10)
    except psycopg.OperationalError as e:
        pytest.fail(
            f"PostgreSQL at {url} is unreachable ({e}); start it or set EVSTORE_POSTGRES_URL "
            "(the PostgreSQL tests never skip)",
            pytrace=False,
        )


def store_url(schema: str, **options: object) -> str:
    """The server's URL with evstore options (``schema=...``) appended."""
    url = server_url()
    query = "&".join([f"schema={schema}", *(f"{k}={v}" for k, v in options.items())])
    return f"{url}{'&' if '?' in url else '?'}{query}"


@contextmanager
def fresh_schema(**options: object) -> Iterator[str]:
    """A schema name no one uses; the schema is dropped (with its tables) afterwards."""
    schema = f"t_{uuid.uuid4().hex[:16]}"
    admin_connection().close()  # fail early and loudly when the server is unreachable
    try:
        yield store_url(schema, **options)
    finally:
        # A fresh connection: the test may have restarted the server.
        with admin_connection() as conn:
            drop = sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            conn.execute(drop)


@contextmanager
def factory(tmp_path: Path) -> Iterator[StoreFactory]:
    with fresh_schema() as url:
        yield StoreFactory(url, across_processes=True)
