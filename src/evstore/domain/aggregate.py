"""Aggregates: the consistency boundary of an event-sourced domain model.

An aggregate's state is rebuilt by applying its events in order. A command method checks
the rules and calls :meth:`Aggregate.trigger` with a new event; ``trigger`` applies the
event at once (so the next rule sees the new state) and keeps it as *pending* until the
:class:`~evstore.Repository` saves it::

    @dataclass
    class User(Aggregate):
        email: str = ""
        active: bool = False

        @classmethod
        def register(cls, user_id: str, email: str) -> User:
            user = cls.create(user_id)
            user.trigger(UserRegistered(email=email))
            return user

        @applies(UserRegistered)
        def _registered(self, event: UserRegistered) -> None:
            self.email = event.email
            self.active = True

Dispatch is explicit: :func:`applies` marks a method as the handler of one or more event
classes, and ``__init_subclass__`` collects the marks into a plain dict - no metaclass.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable
from typing import Any, ClassVar, Self, TypeVar

from evstore.errors import InvalidInput
from evstore.spi._model import stable_hash

__all__ = ["Aggregate", "applies"]

F = TypeVar("F", bound=Callable[..., Any])

_MARK = "__evstore_applies__"
_IDENTITY = ("id", "version", "_pending", "_snapshot_due")


def applies(*event_classes: type) -> Callable[[F], F]:
    """Mark an aggregate method as the one that applies events of these classes.

    The method takes the event and changes the aggregate's state; it must not check
    rules or raise (rules belong in command methods, before ``trigger``): it also runs
    when old events are replayed.
    """
    if not event_classes or not all(isinstance(c, type) for c in event_classes):
        raise InvalidInput("@applies needs one or more event classes, e.g. @applies(Registered)")

    def mark(method: F) -> F:
        setattr(method, _MARK, (*getattr(method, _MARK, ()), *event_classes))
        return method

    return mark


class Aggregate:
    """Base class of event-sourced aggregates.

    ``id`` is the aggregate's stream id; ``version`` the version of its last event,
    pending ones included (0 for a new aggregate). Subclasses must be constructible
    without arguments (give every state field a default); make new aggregates with
    :meth:`create`. Snapshots default to the aggregate's state: the dataclass fields
    of a dataclass aggregate, otherwise its instance attributes; override
    :meth:`to_snapshot` / :meth:`from_snapshot` when the state is not plain JSON.

    ``snapshot_schema`` versions the snapshot shape. Left at ``None`` it is a fingerprint
    of the state's field names and annotations, so adding or renaming a field makes old
    snapshots unusable automatically; set an int to control it yourself.
    """

    snapshot_schema: ClassVar[int | None] = None
    _appliers: ClassVar[dict[type, str]] = {}

    id: str
    version: int
    _pending: list[tuple[object, uuid.UUID]]
    _snapshot_due: bool  # set by the repository: the stored snapshot is missing or stale

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        appliers: dict[type, str] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                for event_class in getattr(value, _MARK, ()):
                    appliers[event_class] = attr
        cls._appliers = appliers

    @classmethod
    def create(cls, id: str) -> Self:
        """A new, empty aggregate (version 0, nothing pending) with this id."""
        if not isinstance(id, str) or not id:
            raise InvalidInput(f"aggregate id must be a non-empty str, got {id!r}")
        _show_identity(cls)
        aggregate = cls()
        aggregate.id = id
        aggregate.version = 0
        aggregate._pending = []
        aggregate._snapshot_due = False
        return aggregate

    # -- events ----------------------------------------------------------------------------

    def trigger(self, event: object) -> None:
        """Apply a new event now and keep it pending until the repository saves it."""
        self.check_created()
        self.apply(event)
        self.version += 1
        self._pending.append((event, uuid.uuid4()))

    def apply(self, event: object) -> None:
        """Change the state by one event, with the method marked ``@applies(its class)``."""
        for klass in type(event).__mro__:
            name = self._appliers.get(klass)
            if name is not None:
                getattr(self, name)(event)
                return
        raise InvalidInput(
            f"{type(self).__name__} has no method for {type(event).__name__}; "
            f"mark one with @applies({type(event).__name__})"
        )

    def check_created(self) -> None:
        """Raise ``InvalidInput`` unless the aggregate was made by :meth:`create` (or loaded
        by a repository): ``User()`` alone has no id, version or pending events."""
        if getattr(self, "_pending", None) is None:
            name = type(self).__name__
            raise InvalidInput(
                f"this {name} was made with {name}(...), which gives it no id or version; "
                f"make new aggregates with {name}.create(id) (or a classmethod that calls it)"
            )

    @property
    def pending_events(self) -> list[object]:
        """The events raised since the aggregate was loaded or last saved."""
        return [event for event, _ in self._pending]

    @property
    def committed_version(self) -> int:
        """The version the store has: ``version`` minus the pending events."""
        return self.version - len(self._pending)

    def mark_committed(self) -> None:
        """Forget the pending events (the repository calls this after a save)."""
        self._pending = []

    # -- snapshots -------------------------------------------------------------------------

    def to_snapshot(self) -> dict[str, Any]:
        """The state as a JSON-like dict (default: dataclass fields or instance attributes)."""
        if dataclasses.is_dataclass(self):
            return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {k: v for k, v in vars(self).items() if k not in _IDENTITY}

    @classmethod
    def from_snapshot(cls, id: str, version: int, state: dict[str, Any]) -> Self:
        """An aggregate at ``version`` with the state :meth:`to_snapshot` returned."""
        aggregate = cls.create(id)
        for key, value in state.items():
            setattr(aggregate, key, value)
        aggregate.version = version
        return aggregate

    @classmethod
    def snapshot_schema_version(cls) -> int:
        """The schema version stored with this class's snapshots (see ``snapshot_schema``)."""
        if cls.snapshot_schema is not None:
            return cls.snapshot_schema
        if dataclasses.is_dataclass(cls):
            shape = ";".join(f"{f.name}:{f.type}" for f in dataclasses.fields(cls))
        else:
            state = {k: v for k, v in vars(cls()).items() if k not in _IDENTITY}
            shape = ";".join(f"{k}:{type(v).__name__}" for k, v in sorted(state.items()))
        # 31 bits: stays a positive int in every backend's integer column.
        return (stable_hash(f"{cls.__qualname__}|{shape}") >> 1) or 1

    def __repr__(self) -> str:
        state = getattr(self, "id", "?"), getattr(self, "version", "?")
        return f"<{type(self).__name__} id={state[0]!r} version={state[1]}>"


def _show_identity(cls: type) -> None:
    """Put ``id`` and ``version`` first in the ``repr`` a dataclass aggregate generated for
    its fields (``User(id='user-1', version=3, email=...)``); once per class."""
    method = vars(cls).get("__repr__")
    generated = getattr(method, "__wrapped__", None)
    code = getattr(generated, "__code__", None)
    if method is None or code is None or code.co_filename != "<string>":
        return  # not a dataclass-generated repr (ours, or the class's own)

    def __repr__(self: Aggregate) -> str:
        fields: str = method(self)
        name, _, rest = fields.partition("(")
        identity = f"id={getattr(self, 'id', None)!r}, version={getattr(self, 'version', None)}"
        return f"{name}({identity}{', ' if rest != ')' else ''}{rest}"

    __repr__.__qualname__ = f"{cls.__qualname__}.__repr__"
    cls.__repr__ = __repr__  # type: ignore[assignment]
