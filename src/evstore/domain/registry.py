"""The event registry: event type names <-> Python classes, with schema versions and upcasters.

Events are stored as JSON under a type name and a schema version. The registry turns a
domain event (a dataclass or a pydantic v2 model) into a :class:`~evstore.NewEvent` on the
way in, and a :class:`~evstore.RecordedEvent` back into today's class on the way out::

    registry = EventRegistry()

    @registry.register(version=2, aliases=["UserSignedUp"])
    @dataclass(frozen=True)
    class UserRegistered:
        email: str
        first_name: str
        last_name: str

    @registry.upcaster("UserRegistered", from_version=1)
    def _split_name(data: dict) -> dict:      # v1 had "name": "Ada Lovelace"
        first, _, last = data.pop("name").partition(" ")
        return {**data, "first_name": first, "last_name": last}

Upcasters run on read, chained one version at a time (v1 -> v2 -> v3), so events written
years ago load into the current class; the stored events are never rewritten. An alias
keeps a renamed type readable: events stored under the old name decode into the class,
and run through the same upcaster chain (versions are counted per class, not per name).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Callable, Iterable
from typing import Any, Literal, TypeVar, overload

from evstore import _validation as check
from evstore._types import NewEvent, RecordedEvent
from evstore.domain.cache import LRUCache
from evstore.errors import InvalidInput, SerializationError, UnknownEventType

__all__ = ["EventRegistry", "Upcaster"]

T = TypeVar("T", bound=type)
Upcaster = Callable[[dict[str, Any]], dict[str, Any]]
"""A function from one schema version's ``data`` to the next version's ``data``."""


@dataclasses.dataclass(frozen=True, slots=True)
class _Entry:
    name: str
    cls: type
    version: int
    pydantic: bool


_Plan = tuple[_Entry, tuple[tuple[int, Upcaster], ...]]


def _is_pydantic(cls: type) -> bool:
    return callable(getattr(cls, "model_validate", None)) and callable(
        getattr(cls, "model_dump", None)
    )


class EventRegistry:
    """Maps event type names to classes, encodes events and decodes (upcasting) them.

    ``unknown="raise"`` (default) makes :meth:`decode` raise ``UnknownEventType`` for a
    stored type with no registered class; ``unknown="raw"`` returns the
    :class:`~evstore.RecordedEvent` itself instead, for code that can skip such events.
    """

    def __init__(self, *, unknown: Literal["raise", "raw"] = "raise") -> None:
        if unknown not in ("raise", "raw"):
            raise InvalidInput(f"unknown must be 'raise' or 'raw', got {unknown!r}")
        self._unknown = unknown
        self._by_name: dict[str, _Entry] = {}  # canonical names and aliases
        self._by_class: dict[type, _Entry] = {}
        self._upcasters: dict[tuple[str, int], Upcaster] = {}
        self.mappings: LRUCache[tuple[str, int], _Plan] = LRUCache(4096, 4096)
        """The type-mapping cache: (stored type, schema version) -> class and upcasters."""

    def __repr__(self) -> str:
        entries = list(self._by_class.values())
        names = ", ".join(f"{e.name} v{e.version}" for e in entries[:8])
        more = f", ... ({len(entries)} in all)" if len(entries) > 8 else ""
        return f"<EventRegistry: {names or 'no event types'}{more}>"

    # -- registering -----------------------------------------------------------------------

    @overload
    def register(
        self, cls: T, *, name: str | None = ..., version: int = ..., aliases: Iterable[str] = ...
    ) -> T: ...

    @overload
    def register(
        self,
        cls: None = None,
        *,
        name: str | None = ...,
        version: int = ...,
        aliases: Iterable[str] = ...,
    ) -> Callable[[T], T]: ...

    def register(
        self,
        cls: T | None = None,
        *,
        name: str | None = None,
        version: int = 1,
        aliases: Iterable[str] = (),
    ) -> T | Callable[[T], T]:
        """Register an event class; usable as ``@registry.register`` or ``(...)``.

        ``name`` defaults to the class name; ``version`` is the schema version new events
        are written with; ``aliases`` are older names whose stored events decode into this
        class.
        """

        def add(klass: T) -> T:
            self._add(klass, name, version, aliases)
            return klass

        return add if cls is None else add(cls)

    def _add(self, cls: type, name: str | None, version: int, aliases: Iterable[str]) -> None:
        if not isinstance(cls, type):
            raise InvalidInput(f"register() needs a class, got {cls!r}")
        pydantic = _is_pydantic(cls)
        if not pydantic and not dataclasses.is_dataclass(cls):
            raise InvalidInput(
                f"{cls.__name__} is neither a dataclass nor a pydantic model; event classes "
                "must be one of the two"
            )
        version = check.positive_int(version, "version")
        entry = _Entry(check.event_type(name or cls.__name__), cls, version, pydantic)
        names = [entry.name, *(check.event_type(a) for a in aliases)]
        for n in names:
            taken = self._by_name.get(n)
            if taken is not None and taken.cls is not cls:
                raise InvalidInput(
                    f"event type {n!r} is already registered for {taken.cls.__qualname__}"
                )
        if cls in self._by_class and self._by_class[cls].name != entry.name:
            raise InvalidInput(f"{cls.__qualname__} is already registered")
        for n in names:
            self._by_name[n] = entry
        self._by_class[cls] = entry
        self.mappings.clear()

    def type_names(self, *classes: type) -> tuple[str, ...]:
        """Every stored type name of these registered classes - each class's name and its
        aliases - for filters: ``store.subscribe(types=registry.type_names(EmailChanged))``
        also gets the events stored under an older name."""
        names: list[str] = []
        for cls in classes:
            entry = self._by_class.get(cls)
            if entry is None:
                raise InvalidInput(f"{getattr(cls, '__qualname__', cls)!r} is not registered")
            names += [n for n, e in self._by_name.items() if e is entry and n not in names]
        return tuple(names)

    def upcaster(self, type_name: str, *, from_version: int) -> Callable[[Upcaster], Upcaster]:
        """Decorate a function that upgrades ``type_name``'s data from one version to the next."""

        def add(fn: Upcaster) -> Upcaster:
            self.add_upcaster(type_name, from_version, fn)
            return fn

        return add

    def add_upcaster(self, type_name: str, from_version: int, fn: Upcaster) -> None:
        """Register ``fn`` to turn ``type_name``'s data at ``from_version`` into the next."""
        key = (check.event_type(type_name), check.positive_int(from_version, "from_version"))
        if not callable(fn):
            raise InvalidInput("an upcaster must be callable: data dict -> data dict")
        if key in self._upcasters:
            raise InvalidInput(f"{type_name} already has an upcaster from version {from_version}")
        self._upcasters[key] = fn
        self.mappings.clear()

    # -- looking up ------------------------------------------------------------------------

    def name_of(self, cls: type) -> str:
        """The type name events of ``cls`` are stored under."""
        return self._entry_of(cls).name

    def class_of(self, type_name: str) -> type:
        """The class registered for a type name (or one of its aliases)."""
        entry = self._by_name.get(type_name)
        if entry is None:
            raise UnknownEventType(
                f"no event class is registered for type {type_name!r}; register it "
                "(or an alias of it) with the EventRegistry"
            )
        return entry.cls

    def __contains__(self, item: object) -> bool:
        return item in self._by_name or item in self._by_class

    def _entry_of(self, cls: type) -> _Entry:
        entry = self._by_class.get(cls)
        if entry is None:
            raise UnknownEventType(
                f"{cls.__qualname__} is not registered; add it with registry.register"
            )
        return entry

    # -- encoding and decoding -------------------------------------------------------------

    def encode(
        self,
        event: object,
        *,
        metadata: dict[str, Any] | None = None,
        event_id: uuid.UUID | None = None,
    ) -> NewEvent:
        """A :class:`NewEvent` for a domain event of a registered class."""
        entry = self._entry_of(type(event))
        if entry.pydantic:
            data = event.model_dump(mode="python")  # type: ignore[attr-defined]
        else:
            data = {f.name: getattr(event, f.name) for f in dataclasses.fields(entry.cls)}
        if event_id is None:
            return NewEvent(entry.name, data, metadata, schema_version=entry.version)
        return NewEvent(entry.name, data, metadata, event_id, schema_version=entry.version)

    def decode(self, recorded: RecordedEvent) -> Any:
        """Today's class instance for a stored event, upcasting old schema versions.

        Raises ``UnknownEventType`` for an unregistered type (or returns ``recorded``
        unchanged with ``unknown="raw"``), ``SerializationError`` when the stored data
        does not fit the class even after upcasting.
        """
        key = (recorded.type, recorded.schema_version)
        plan = self.mappings.get(key)
        if plan is None:
            if recorded.type not in self._by_name:
                if self._unknown == "raw":
                    return recorded
                self.class_of(recorded.type)  # raises UnknownEventType
            plan = self._plan(recorded.type, recorded.schema_version)
            self.mappings.put(key, plan, 1)
        entry, steps = plan
        data = recorded.data
        for step, upcaster in steps:
            data = self._step(entry, step, upcaster, data)
        return self._build(entry, data, recorded)

    def upcast(self, type_name: str, version: int, data: dict[str, Any]) -> dict[str, Any]:
        """Run the upcasters of ``type_name`` (or an alias) from ``version`` to the current."""
        entry, steps = self._plan(type_name, version)
        for step, upcaster in steps:
            data = self._step(entry, step, upcaster, data)
        return data

    def _plan(self, stored_as: str, version: int) -> _Plan:
        """The class and the upcasters (with their from-versions) for a stored type/version."""
        entry = self._by_name.get(stored_as)
        if entry is None:
            raise UnknownEventType(f"no event class is registered for type {stored_as!r}")
        if version > entry.version:
            raise SerializationError(
                f"stored {stored_as} has schema version {version}, newer than the registered "
                f"class {entry.cls.__qualname__} (version {entry.version}); upgrade this code"
            )
        steps = []
        for step in range(version, entry.version):
            upcaster = self._upcasters.get((entry.name, step))
            if upcaster is None:
                raise SerializationError(
                    f"stored {stored_as} is schema version {version}, but there is no upcaster "
                    f"for {entry.name} from version {step} to {step + 1}; add one with "
                    f"registry.upcaster({entry.name!r}, from_version={step})"
                )
            steps.append((step, upcaster))
        return entry, tuple(steps)

    @staticmethod
    def _step(entry: _Entry, step: int, upcaster: Upcaster, data: dict[str, Any]) -> dict[str, Any]:
        data = upcaster(dict(data))
        if not isinstance(data, dict):
            raise SerializationError(
                f"the upcaster of {entry.name} from version {step} returned "
                f"{type(data).__name__}, not a dict"
            )
        return data

    @staticmethod
    def _build(entry: _Entry, data: dict[str, Any], recorded: RecordedEvent) -> Any:
        try:
            if entry.pydantic:
                return entry.cls.model_validate(data)  # type: ignore[attr-defined]
            return entry.cls(**data)
        except Exception as e:
            raise SerializationError(
                f"stored {recorded.type} (schema version {recorded.schema_version}) at "
                f"{recorded.stream_id}@{recorded.version} does not fit "
                f"{entry.cls.__qualname__} (version {entry.version}): {e}; add an upcaster"
            ) from e
