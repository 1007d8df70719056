"""Read models for projections: handlers chosen by event class, SQL written once.

:class:`ReadModel` is to a :class:`~evstore.Projection` what
:class:`~evstore.Aggregate` is to a repository: mark a method ``@handles(EventClass)`` and
the model decodes each stored event with its registry and calls that method. Its
:attr:`~ReadModel.types` are the stored type names of the handled classes, aliases
included, so a projection filtered by them also gets events stored under an older name.

:class:`Sql` hides the placeholder difference between the SQL backends: write ``?``, and on
PostgreSQL (psycopg: ``%s``) it is translated; a projection's SQL then runs on SQLite and
PostgreSQL with only the URL changed.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

from evstore._types import RecordedEvent
from evstore.domain.registry import EventRegistry
from evstore.errors import InvalidInput

__all__ = ["ReadModel", "Sql", "handles"]

F = TypeVar("F", bound=Callable[..., Any])
_MARK = "__evstore_handles__"


def handles(*event_classes: type) -> Callable[[F], F]:
    """Mark a :class:`ReadModel` method as the handler of these event classes; it is called
    as ``method(event, recorded, tx)``: the decoded event, the stored one (stream id,
    position, ...) and the projection's transaction (None when not exactly-once)."""
    if not event_classes or not all(isinstance(c, type) for c in event_classes):
        raise InvalidInput("@handles needs one or more event classes")

    def mark(method: F) -> F:
        setattr(method, _MARK, (*getattr(method, _MARK, ()), *event_classes))
        return method

    return mark


class ReadModel:
    """A projection handler that dispatches by registered event class.

    Subclass it, set ``registry`` (or pass it to ``__init__``), mark methods with
    :func:`handles`, and give the instance to a projection as its handler, with
    ``types=model.types``. Events of other types are skipped; ``setup(tx)`` (override it)
    is the projection's setup.
    """

    registry: ClassVar[EventRegistry | None] = None
    _handlers: ClassVar[dict[type, str]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        found: dict[type, str] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                for event_class in getattr(value, _MARK, ()):
                    found[event_class] = attr
        cls._handlers = found

    def __init__(self, registry: EventRegistry | None = None) -> None:
        registry = registry or type(self).registry
        if not isinstance(registry, EventRegistry):
            raise InvalidInput(
                f"{type(self).__name__} needs an EventRegistry: set the class attribute "
                "`registry` or pass one"
            )
        if not self._handlers:
            raise InvalidInput(f"{type(self).__name__} has no method marked @handles(...)")
        self._registry = registry
        self.types: tuple[str, ...] = registry.type_names(*self._handlers)
        """The stored type names this model handles (aliases included): ``types=`` of the
        projection."""

    def setup(self, tx: Any) -> None:
        """Prepare the read model (create tables); the projection's ``setup``."""

    def __call__(self, recorded: RecordedEvent, tx: Any) -> None:
        if recorded.type not in self.types:
            return
        event = self._registry.decode(recorded)
        for klass in type(event).__mro__:
            name = self._handlers.get(klass)
            if name is not None:
                getattr(self, name)(event, recorded, tx)
                return

    def __repr__(self) -> str:
        return f"<{type(self).__name__} handling {', '.join(self.types)}>"


class Sql:
    """A projection transaction's SQL connection with ``?`` placeholders on every SQL
    backend: ``Sql(tx).execute("INSERT INTO t VALUES (?, ?)", (a, b))``.

    On SQLite statements pass through; on PostgreSQL each ``?`` outside a quoted string
    becomes ``%s`` (and a literal ``%`` becomes ``%%``). ``raw`` is the connection itself.
    """

    def __init__(self, tx: Any) -> None:
        if tx is None or not hasattr(tx, "execute"):
            raise InvalidInput(f"Sql() needs a SQL connection (SQLite, PostgreSQL), got {tx!r}")
        self.raw = tx
        self._translate = not isinstance(tx, sqlite3.Connection)

    def execute(self, statement: str, params: Sequence[Any] = ()) -> Any:
        """Run one statement; the driver's cursor (``fetchone()``, ``fetchall()``)."""
        if self._translate:
            statement = to_format_style(statement)
        return self.raw.execute(statement, tuple(params))


def to_format_style(statement: str) -> str:
    """``?`` placeholders to ``%s`` outside quoted strings and identifiers; ``%`` to ``%%``."""
    out: list[str] = []
    quote: str | None = None
    for char in statement:
        if quote is not None:
            if char == quote:
                quote = None
            out.append("%%" if char == "%" else char)
        elif char in "'\"":
            quote = char
            out.append(char)
        elif char == "?":
            out.append("%s")
        elif char == "%":
            out.append("%%")
        else:
            out.append(char)
    return "".join(out)
