"""Mistakes in what is passed to ``connect()`` fail at once, as one line naming the cause
(they are not failures of a backend, and waiting cannot fix them)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

import evstore
from tests.backends.postgresql import server_url


@pytest.mark.parametrize("url", ["memory://", "sqlite:///{tmp}/typo.db", "postgresql"])
def test_a_misspelt_store_option_says_did_you_mean(url: str, tmp_path: Path) -> None:
    url = server_url() if url == "postgresql" else url.format(tmp=tmp_path)
    with pytest.raises(evstore.InvalidInput, match="did you mean 'poll_interval'"):
        evstore.connect(url, poll_intervall=1)
    with pytest.raises(evstore.InvalidInput, match="did you mean 'poll_interval'"):
        evstore.connect_async(url, poll_intervall=1)
    assert not (tmp_path / "typo.db").exists()


def test_a_bare_path_is_not_a_url_and_the_error_says_what_is() -> None:
    with pytest.raises(evstore.InvalidInput, match=r"write 'sqlite:///app\.db'"):
        evstore.connect("app.db")


def _base() -> str:
    return server_url().split("?", 1)[0].rsplit("/", 1)[0]


def _with(query: str) -> str:
    url = server_url()
    return f"{url}{'&' if '?' in url else '?'}{query}"


# pool_timeout=30: if the pool were left to retry, the error would be BackendUnavailable.
POSTGRES_MISTAKES = {
    "no database": (f"{_base()}/evstore_no_such_db?pool_timeout=30", "evstore_no_such_db"),
    "no role": (
        _base().replace("//postgres@", "//evstore_no_role@") + "/postgres?pool_timeout=30",
        'role "evstore_no_role" does not exist',
    ),
    "bad parameter": (_with("sslmod=x&pool_timeout=30"), "sslmod"),
}


@pytest.mark.parametrize("case", POSTGRES_MISTAKES)
def test_postgresql_mistakes_fail_at_once_without_pool_warnings(
    case: str, caplog: pytest.LogCaptureFixture
) -> None:
    url, reason = POSTGRES_MISTAKES[case]
    caplog.set_level(logging.INFO)
    with pytest.raises(evstore.InvalidInput) as raised:
        evstore.connect(url)
    assert reason in str(raised.value) and "\n" not in str(raised.value)

    async def use() -> None:
        store = evstore.connect_async(url)
        try:
            await store.head_position()
        finally:
            await store.close()

    with pytest.raises(evstore.InvalidInput, match=reason):
        asyncio.run(use())
    assert not [r for r in caplog.records if r.name.startswith("psycopg")], caplog.records
