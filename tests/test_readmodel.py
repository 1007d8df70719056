"""Read models: handlers by event class, type filters that include renamed types' old names,
and SQL written once for SQLite and PostgreSQL (only the URL changes)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

import evstore
from evstore import EventRegistry, ReadModel, Sql, handles
from evstore.domain.readmodel import to_format_style
from tests.backends.postgresql import fresh_schema

REGISTRY = EventRegistry()


@REGISTRY.register
@dataclass(frozen=True)
class Opened:
    owner: str


@REGISTRY.register(aliases=["MoneyIn"])  # its name in older events
@dataclass(frozen=True)
class Deposited:
    amount: int


class Balances(ReadModel):
    """Written once: `?` placeholders, a '%' and a '?' inside string literals."""

    registry = REGISTRY

    def setup(self, tx: Any) -> None:
        Sql(tx).execute(
            "CREATE TABLE IF NOT EXISTS balances "
            "(account TEXT PRIMARY KEY, owner TEXT, balance INTEGER, note TEXT)"
        )

    @handles(Opened)
    def _opened(self, event: Opened, recorded: evstore.RecordedEvent, tx: Any) -> None:
        Sql(tx).execute(
            "INSERT INTO balances VALUES (?, ?, 0, '100% sure?')",
            (recorded.stream_id, event.owner),
        )

    @handles(Deposited)
    def _deposited(self, event: Deposited, recorded: evstore.RecordedEvent, tx: Any) -> None:
        Sql(tx).execute(
            "UPDATE balances SET balance = balance + ? WHERE account = ?",
            (event.amount, recorded.stream_id),
        )

    @staticmethod
    def all(tx: Any) -> list[tuple[Any, ...]]:
        rows = Sql(tx).execute("SELECT account, owner, balance, note FROM balances ORDER BY 1")
        return [tuple(row) for row in rows.fetchall()]


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'rm.db'}"
    else:
        with fresh_schema() as schema_url:
            yield schema_url


def test_the_same_read_model_runs_on_sqlite_and_postgresql(url: str) -> None:
    with evstore.connect(url) as store:
        store.append("acct-1", [REGISTRY.encode(Opened("ada")), REGISTRY.encode(Deposited(5))])
        store.append("acct-1", [evstore.NewEvent("MoneyIn", {"amount": 7})])  # the old name
        store.append("acct-1", [evstore.NewEvent("Unrelated", {})])
        model = Balances()
        assert set(model.types) == {"Opened", "Deposited", "MoneyIn"}
        projection = evstore.Projection(
            store, "balances", model, setup=model.setup, types=model.types, exactly_once=True
        )
        assert projection.catch_up() == 3
        assert projection.query(Balances.all) == [("acct-1", "ada", 12, "100% sure?")]


def test_type_names_include_aliases_for_filters() -> None:
    assert REGISTRY.type_names(Deposited) == ("Deposited", "MoneyIn")
    with evstore.connect("memory://") as store:
        store.append("a-1", [evstore.NewEvent("MoneyIn", {"amount": 1})])
        store.append("a-1", [REGISTRY.encode(Deposited(2))])
        found = store.read_all(types=REGISTRY.type_names(Deposited))
        assert [REGISTRY.decode(e) for e in found] == [Deposited(1), Deposited(2)]
    with pytest.raises(evstore.InvalidInput, match="not registered"):
        REGISTRY.type_names(int)


def test_a_read_model_needs_a_registry_and_handlers() -> None:
    class NoRegistry(ReadModel):
        @handles(Opened)
        def _opened(self, event: Opened, recorded: evstore.RecordedEvent, tx: Any) -> None: ...

    with pytest.raises(evstore.InvalidInput, match="registry"):
        NoRegistry()

    class NoHandlers(ReadModel):
        registry = REGISTRY

    with pytest.raises(evstore.InvalidInput, match="@handles"):
        NoHandlers()
    with pytest.raises(evstore.InvalidInput):
        Sql(None)


def test_placeholders_are_translated_outside_quotes_only() -> None:
    assert to_format_style("SELECT ? , '?', \"a?\" WHERE x LIKE 'a%' AND y % 2 = ?") == (
        "SELECT %s , '?', \"a?\" WHERE x LIKE 'a%%' AND y %% 2 = %s"
    )
