"""The errors evstore raises: one tree, rooted at :class:`EvstoreError`.

::

    EvstoreError
     ├── ConcurrencyError       expected_version did not match; nothing was written
     │    └── AppendConditionFailed  an event matching the append's condition came after it
     ├── StreamNotFound         the stream does not exist (or is soft-deleted)
     ├── StreamDeleted          the stream was hard-deleted (tombstoned)
     ├── DuplicateEventId       an event_id is already stored elsewhere
     ├── UnknownEventType       the event registry has no class for a stored type
     ├── InvalidInput           a bad argument; raised before anything is written
     │    └── SerializationError  data or metadata cannot be stored as JSON
     └── BackendUnavailable     the database cannot be reached or stayed busy

Driver errors never leak out: each backend translates them at one boundary
and chains the original (``raise BackendUnavailable(...) from e``).
"""

from __future__ import annotations

__all__ = [
    "AppendConditionFailed",
    "BackendUnavailable",
    "ConcurrencyError",
    "DuplicateEventId",
    "EvstoreError",
    "InvalidInput",
    "SerializationError",
    "StreamDeleted",
    "StreamNotFound",
    "UnknownEventType",
]


class EvstoreError(Exception):
    """Base class of every error evstore raises."""


class ConcurrencyError(EvstoreError):
    """The stream's version did not match ``expected_version``; nothing was written.

    ``expected`` is what the caller asked for (an int or ``ANY``/``NO_STREAM``/
    ``STREAM_EXISTS``), ``actual`` the stream's version when the append ran.
    Reload the aggregate and retry the command.
    """

    def __init__(self, stream_id: str, expected: object, actual: int) -> None:
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual
        super().__init__(
            f"stream {stream_id!r}: expected version {expected!r}, but it is at {actual}; "
            "reload and retry"
        )


class AppendConditionFailed(ConcurrencyError):
    """An event matching the append's condition (a DCB query) was stored after its ``after``
    position (the first one at ``position``); nothing was written. Read again and decide
    again."""

    def __init__(self, stream_id: str, after: int, position: int) -> None:
        EvstoreError.__init__(
            self,
            f"an event matching the append condition is stored at position {position}, "
            f"after {after}; read the boundary again and retry",
        )
        self.stream_id = stream_id
        self.expected = after
        self.actual = position
        self.after = after
        self.position = position


class StreamNotFound(EvstoreError):
    """The stream does not exist (never written, or soft-deleted)."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        super().__init__(f"stream {stream_id!r} does not exist")


class StreamDeleted(EvstoreError):
    """The stream was hard-deleted: it can be neither read nor written again."""

    def __init__(self, stream_id: str) -> None:
        self.stream_id = stream_id
        super().__init__(f"stream {stream_id!r} was hard-deleted and cannot be used again")


class DuplicateEventId(EvstoreError):
    """An ``event_id`` being appended is already stored at another place."""

    def __init__(self, event_id: str, detail: str = "", *, stream_id: str | None = None) -> None:
        self.event_id = event_id
        self.stream_id = stream_id
        """The other stream that holds the id, when the message names it."""
        super().__init__(
            f"event_id {event_id} is already stored"
            + (f" ({detail})" if detail else "")
            + "; give each new event a fresh event_id"
        )


class UnknownEventType(EvstoreError):
    """A stored event's type has no class in the :class:`EventRegistry`."""


class InvalidInput(EvstoreError, ValueError):
    """An argument is malformed; the message says what to fix. Nothing was written."""


class SerializationError(InvalidInput):
    """``data`` or ``metadata`` cannot be encoded to JSON (or stored JSON cannot be read)."""


class BackendUnavailable(EvstoreError):
    """The backend cannot be reached, or stayed busy past its timeout."""
