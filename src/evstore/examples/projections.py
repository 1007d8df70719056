"""``UsersBySource``: a read model of users per registration source.

Give an instance to a :class:`~evstore.Projection` as both handler and setup::

    view = UsersBySource()
    projection = evstore.Projection(store, "users-by-source", view, setup=view.setup,
                                    types=UsersBySource.types)
    projection.catch_up()

On an exactly-once backend the handler receives the projection's transaction and keeps
the read model in two tables (SQLite, PostgreSQL) or collections (MongoDB) of the store's
own database, committed with the checkpoint; read it with ``projection.query(view.counts)`` (or
``view.counts(connection)`` on a connection of your own). On other backends ``tx`` is None
and the counts live in this object's memory: use a fresh projection name (or store) per
process, since a stored checkpoint would skip the events counted by an earlier process.
"""

from __future__ import annotations

from typing import Any

from evstore._types import RecordedEvent
from evstore.domain.readmodel import ReadModel, Sql, handles
from evstore.examples.users import UserDeactivated, UserRegistered, registry

__all__ = ["UsersBySource"]

_SETUP = (
    "CREATE TABLE IF NOT EXISTS example_user_source "
    "(stream_id TEXT PRIMARY KEY, source TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS example_users_by_source "
    "(source TEXT PRIMARY KEY, registered INTEGER NOT NULL, active INTEGER NOT NULL)",
)


def _mongo(tx: Any) -> Any:
    """The database of a MongoDB session, or None when ``tx`` is a SQL connection."""
    if hasattr(tx, "execute") or not hasattr(tx, "client"):
        return None
    # The store's database: the URL's (mongodb://host/NAME), else evstore's default.
    return tx.client.get_default_database("evstore")


class UsersBySource(ReadModel):
    """Per registration source: how many users registered, and how many are still active.

    A :class:`~evstore.ReadModel`: each event goes to the method marked ``@handles`` for its
    class, and its SQL (``?`` placeholders, through :class:`~evstore.Sql`) runs unchanged
    on SQLite and PostgreSQL.
    """

    registry = registry
    types = registry.type_names(UserRegistered, UserDeactivated)
    """The stored type names the read model needs, aliases included (``types=``)."""

    def __init__(self) -> None:
        super().__init__()
        self._source_of: dict[str, str] = {}
        self._counts: dict[str, list[int]] = {}

    def setup(self, tx: Any) -> None:
        """Create the read-model tables (SQL) or reset the in-memory counts."""
        if tx is None:
            self._source_of.clear()
            self._counts.clear()
            return
        if _mongo(tx) is not None:
            return  # collections are created on first write
        for statement in _SETUP:
            tx.execute(statement)

    @handles(UserRegistered)
    def _registered(self, event: UserRegistered, recorded: RecordedEvent, tx: Any) -> None:
        stream_id, source = recorded.stream_id, event.registration_source
        if tx is None:
            self._source_of[stream_id] = source
            counts = self._counts.setdefault(source, [0, 0])
            counts[0] += 1
            counts[1] += 1
            return
        db = _mongo(tx)
        if db is not None:
            db.example_user_source.insert_one({"_id": stream_id, "source": source}, session=tx)
            db.example_users_by_source.update_one(
                {"_id": source}, {"$inc": {"registered": 1, "active": 1}}, upsert=True, session=tx
            )
            return
        sql = Sql(tx)
        sql.execute(
            "INSERT INTO example_user_source (stream_id, source) VALUES (?, ?)",
            (stream_id, source),
        )
        sql.execute(
            "INSERT INTO example_users_by_source (source, registered, active) "
            "VALUES (?, 1, 1) ON CONFLICT (source) DO UPDATE SET "
            "registered = example_users_by_source.registered + 1, "
            "active = example_users_by_source.active + 1",
            (source,),
        )

    @handles(UserDeactivated)
    def _deactivated(self, event: UserDeactivated, recorded: RecordedEvent, tx: Any) -> None:
        stream_id = recorded.stream_id
        if tx is None:
            source = self._source_of.get(stream_id)
            if source is not None:
                self._counts[source][1] -= 1
            return
        db = _mongo(tx)
        if db is not None:
            user = db.example_user_source.find_one({"_id": stream_id}, session=tx)
            if user is not None:
                db.example_users_by_source.update_one(
                    {"_id": user["source"]}, {"$inc": {"active": -1}}, session=tx
                )
            return
        Sql(tx).execute(
            "UPDATE example_users_by_source SET active = active - 1 WHERE source = "
            "(SELECT source FROM example_user_source WHERE stream_id = ?)",
            (stream_id,),
        )

    def counts(self, connection: Any = None) -> dict[str, tuple[int, int]]:
        """``{source: (registered, active)}``, from ``connection`` (SQL) or from memory."""
        if connection is None:
            return {source: (c[0], c[1]) for source, c in sorted(self._counts.items())}
        db = _mongo(connection)
        if db is not None:
            docs = db.example_users_by_source.find({}, session=connection).sort("_id", 1)
            return {d["_id"]: (d["registered"], d["active"]) for d in docs}
        rows = connection.execute(
            "SELECT source, registered, active FROM example_users_by_source ORDER BY source"
        ).fetchall()
        return {source: (registered, active) for source, registered, active in rows}
