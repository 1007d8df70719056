"""The expected-version rule where SQL carries it, tested against its one definition.

``evstore.spi.check_expected`` is the rule. SQLite's one-statement append and PostgreSQL's
append statement carry it in a SQL ``CASE`` for speed; here every stream state x every
expected-version mode runs that very statement (rolled back) and its verdict is compared
with ``check_expected``. The contract's ``test_append_admits_exactly_what_check_expected_admits``
checks the whole append path of every backend the same way.
"""

from __future__ import annotations

import sqlite3
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
import pytest

import evstore
from evstore._types import ExpectedVersion
from evstore.backends import sqlite as sqlite_backend
from evstore.backends.postgresql import _sql as pg_sql
from evstore.backends.postgresql import backend_async as pg_backend
from evstore.backends.postgresql.backend import PostgresBackend
from evstore.spi import PendingEvent, Placement, check_expected
from evstore.spi._model import PendingAppend
from evstore.testing._append_contract import (
    EXPECTED_MODES,
    STREAM_STATES,
    build_state,
    state_of,
)
from tests.backends.postgresql import fresh_schema

PLACEMENT = Placement("rule", "rule", 7)


def pending_event() -> PendingEvent:
    return PendingEvent(str(uuid.uuid4()), "Tested", b"{}", b"{}", 1, datetime.now(UTC))


def admitted(expected: ExpectedVersion, last: int, visible: bool) -> bool:
    try:
        check_expected("s", expected, last, visible)
    except evstore.ConcurrencyError:
        return False
    return True


def streams_in_every_state(store: evstore.EventStore) -> list[tuple[str, str, int, bool]]:
    """(state name, stream id, last version, visible) for a new stream in each state."""
    out = []
    for name, recipe in STREAM_STATES.items():
        last, visible = state_of(recipe)
        out.append((name, build_state(store, recipe), last, visible))
    return out


def test_sqlite_one_statement_append_agrees_with_check_expected(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'rule.db'}"
    with evstore.connect(url) as store:
        streams = streams_in_every_state(store)
    db = sqlite3.connect(tmp_path / "rule.db", isolation_level=None)
    checked = 0
    try:
        for name, sid, last, visible in streams:
            for expected in EXPECTED_MODES:
                mode, number = sqlite_backend._fast_mode(expected)
                if mode == "full":
                    continue  # STREAM_EXISTS always takes the transactional path
                pending = pending_event()
                db.execute("BEGIN IMMEDIATE")
                row = db.execute(
                    sqlite_backend._APPEND_ONE,
                    (
                        sid,
                        *sqlite_backend._columns(pending, PLACEMENT, 0),
                        sid,
                        sid,
                        mode,
                        number,
                    ),
                ).fetchone()
                db.execute("ROLLBACK")
                rule = admitted(expected, last, visible)
                case = f"{name}, expected {expected}"
                # The statement may refuse what the rule admits (the transactional path
                # then decides, with check_expected itself), never the other way round...
                assert rule or row is None, case
                # ...and it only refuses admitted appends for streams that were deleted.
                if "deleted" not in name and "again" not in name:
                    assert (row is not None) == rule, case
                checked += 1
    finally:
        db.close()
    assert checked == len(STREAM_STATES) * (len(EXPECTED_MODES) - 1)


@pytest.mark.parametrize("partitioned", [False, True])
def test_postgresql_append_statement_agrees_with_check_expected(partitioned: bool) -> None:
    options: dict[str, Any] = {"table_partitions": 4} if partitioned else {}
    with fresh_schema(**options) as url:
        with evstore.connect(url) as store:
            streams = streams_in_every_state(store)
            backend = store.backend
            assert isinstance(backend, PostgresBackend)
            schema = backend._schema
        statement = pg_sql.statements(schema, partitioned)["append"]
        conninfo = url.split("?")[0]
        checked = 0
        with psycopg.connect(conninfo) as conn:
            for name, sid, last, visible in streams:
                for expected in EXPECTED_MODES:
                    placement = Placement(PLACEMENT.category, sid, PLACEMENT.partition_hash)
                    params = pg_backend.append_params(sid, [pending_event()], expected, placement)
                    row = conn.execute(statement, params).fetchone()
                    conn.rollback()
                    assert row is not None
                    sql_last, sql_visible, tombstoned, positions, gate_open = row
                    case = f"{name}, expected {expected}"
                    assert (sql_last, sql_visible, tombstoned, gate_open) == (
                        last,
                        visible,
                        False,
                        True,
                    ), case
                    assert (positions is not None) == admitted(expected, last, visible), case
                    checked += 1
        assert checked == len(STREAM_STATES) * len(EXPECTED_MODES)


@pytest.mark.parametrize("partitioned", [False, True])
def test_postgresql_multi_stream_append_statement_agrees_with_check_expected(
    partitioned: bool,
) -> None:
    """``append_many``'s statement, with the stream under test second after a new stream
    (expected ANY): both parts are inserted exactly when the rule admits the second."""
    options: dict[str, Any] = {"table_partitions": 4} if partitioned else {}
    with fresh_schema(**options) as url:
        with evstore.connect(url) as store:
            streams = streams_in_every_state(store)
            backend = store.backend
            assert isinstance(backend, PostgresBackend)
            schema = backend._schema
        statement = pg_sql.statements(schema, partitioned)["append_many"]
        checked = 0
        with psycopg.connect(url.split("?")[0]) as conn:
            for name, sid, last, visible in streams:
                for expected in EXPECTED_MODES:
                    fresh = f"fresh-{uuid.uuid4().hex}"
                    parts = [
                        PendingAppend(fresh, [pending_event()], evstore.ANY,
                                      Placement("fresh", fresh, 1)),
                        PendingAppend(sid, [pending_event(), pending_event()], expected,
                                      Placement(PLACEMENT.category, sid, 7)),
                    ]  # fmt: skip
                    rows = conn.execute(statement, pg_backend.append_many_params(parts)).fetchall()
                    conn.rollback()
                    case = f"{name}, expected {expected}"
                    assert [r[:5] for r in rows] == [
                        (1, 0, False, False, True),
                        (2, last, visible, False, True),
                    ], case
                    inserted = [r[5] is not None for r in rows]
                    assert inserted == [admitted(expected, last, visible)] * 2, case
                    checked += 1
        assert checked == len(STREAM_STATES) * len(EXPECTED_MODES)
