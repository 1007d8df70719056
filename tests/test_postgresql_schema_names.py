"""A PostgreSQL schema name that is a reserved word works: every identifier is quoted."""

from __future__ import annotations

import pytest
from psycopg import sql

import evstore
from tests.backends.postgresql import admin_connection, store_url


@pytest.mark.parametrize("schema", ["user", "order", "select"])
def test_a_reserved_word_is_a_usable_schema_name(schema: str) -> None:
    try:
        with evstore.connect(store_url(schema)) as store:
            position = store.append("a-1", [evstore.NewEvent("T", {"n": 1})]).last_position
            assert [e.position for e in store.read_all()] == [position]
            assert store.stats()["events"] == 1

            def count(event: evstore.RecordedEvent, tx: object) -> None:
                tx.execute("SELECT count(*) FROM events")  # type: ignore[attr-defined]

            assert evstore.Projection(store, "p", count).catch_up() == 1
    finally:
        with admin_connection() as conn:
            conn.execute(sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema)))
