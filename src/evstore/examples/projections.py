"""``UsersBySource``: a read model of users per registration source.

Give an instance to a :class:`~evstore.Projection` as both handler and setup::

    view = UsersBySource()
    projection = evstore.Projection(store, "users-by-source", view, setup=view.setup,
                                    types=UsersBySource.types)
    projection.catch_up()

On SQLite (exactly-once) the handler receives the projection's transaction and keeps the
read model in two tables of the store's own database file, committed with the checkpoint;
read it with ``view.counts(sqlite3.connect(path))``. On other backends (``tx`` is None) it
keeps the counts in memory (``view.counts()``), rebuilt from position 0 on each start.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from evstore._types import RecordedEvent
from evstore.examples.users import UserDeactivated, UserRegistered, registry

__all__ = ["UsersBySource"]

_SETUP = (
    "CREATE TABLE IF NOT EXISTS example_user_source "
    "(stream_id TEXT PRIMARY KEY, source TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS example_users_by_source "
    "(source TEXT PRIMARY KEY, registered INTEGER NOT NULL, active INTEGER NOT NULL)",
)


def _sql(tx: Any, statement: str) -> str:
    # sqlite3 takes ? placeholders, psycopg %s.
    return statement if isinstance(tx, sqlite3.Connection) else statement.replace("?", "%s")


class UsersBySource:
    """Per registration source: how many users registered, and how many are still active."""

    types = ("UserRegistered", "UserDeactivated")
    """The event types the read model needs (pass as ``types=`` to the projection)."""

    def __init__(self) -> None:
        self._source_of: dict[str, str] = {}
        self._counts: dict[str, list[int]] = {}

    def setup(self, tx: Any) -> None:
        """Create the read-model tables (SQL) or reset the in-memory counts."""
        if tx is None:
            self._source_of.clear()
            self._counts.clear()
            return
        for statement in _SETUP:
            tx.execute(statement)

    def __call__(self, recorded: RecordedEvent, tx: Any) -> None:
        """Apply one event to the read model."""
        event = registry.decode(recorded)
        if isinstance(event, UserRegistered):
            self._registered(recorded.stream_id, event.registration_source, tx)
        elif isinstance(event, UserDeactivated):
            self._deactivated(recorded.stream_id, tx)

    def _registered(self, stream_id: str, source: str, tx: Any) -> None:
        if tx is None:
            self._source_of[stream_id] = source
            counts = self._counts.setdefault(source, [0, 0])
            counts[0] += 1
            counts[1] += 1
            return
        tx.execute(
            _sql(tx, "INSERT INTO example_user_source (stream_id, source) VALUES (?, ?)"),
            (stream_id, source),
        )
        tx.execute(
            _sql(
                tx,
                "INSERT INTO example_users_by_source (source, registered, active) "
                "VALUES (?, 1, 1) ON CONFLICT (source) DO UPDATE SET "
                "registered = example_users_by_source.registered + 1, "
                "active = example_users_by_source.active + 1",
            ),
            (source,),
        )

    def _deactivated(self, stream_id: str, tx: Any) -> None:
        if tx is None:
            source = self._source_of.get(stream_id)
            if source is not None:
                self._counts[source][1] -= 1
            return
        tx.execute(
            _sql(
                tx,
                "UPDATE example_users_by_source SET active = active - 1 WHERE source = "
                "(SELECT source FROM example_user_source WHERE stream_id = ?)",
            ),
            (stream_id,),
        )

    def counts(self, connection: Any = None) -> dict[str, tuple[int, int]]:
        """``{source: (registered, active)}``, from ``connection`` (SQL) or from memory."""
        if connection is None:
            return {source: (c[0], c[1]) for source, c in sorted(self._counts.items())}
        rows = connection.execute(
            "SELECT source, registered, active FROM example_users_by_source ORDER BY source"
        ).fetchall()
        return {source: (registered, active) for source, registered, active in rows}
