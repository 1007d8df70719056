"""The outbox a process manager's handler emits to (shared by both faces)."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Protocol

from evstore._types import (
    ANY,
    STREAM_EXISTS,
    AppendRequest,
    ExpectedVersion,
    NewEvent,
    RecordedEvent,
)
from evstore.errors import InvalidInput
from evstore.spi._model import PendingAppend


class _Checker(Protocol):
    """The store's check of ``append_many``'s argument (either face)."""

    def _pending_appends(self, appends: object) -> list[PendingAppend]: ...


_NAMESPACE = uuid.UUID("6f1c9b8e-5a51-4f0e-9a52-2f5f0c3d7e11")


class Outbox:
    """What a process manager's handler emits: appends that commit with its checkpoint.

    ``tx`` is the backend's open transaction for read-model writes (None where there is
    none). Appends to one stream within a batch are merged in call order; a later one's
    ``expected_version`` must be ``ANY``, ``STREAM_EXISTS`` or the version the earlier ones
    lead to.
    """

    def __init__(self, store: _Checker, name: str, tx: Any) -> None:
        self.tx = tx
        self._store = store
        self._name = name
        self._parts: dict[str, PendingAppend] = {}
        self._ids: set[str] = set()

    def append(
        self, stream_id: str, events: Sequence[NewEvent], expected_version: ExpectedVersion = ANY
    ) -> None:
        """Emit ``events`` to ``stream_id`` (checked now: bad input raises here)."""
        [part] = self._store._pending_appends([AppendRequest(stream_id, events, expected_version)])
        for event in part.events:
            if event.event_id in self._ids:
                raise InvalidInput(f"event_id {event.event_id} is emitted twice in one batch")
            self._ids.add(event.event_id)
        prior = self._parts.get(stream_id)
        if prior is None:
            self._parts[stream_id] = part
            return
        follows = (
            part.expected is ANY
            or part.expected is STREAM_EXISTS
            or (
                isinstance(prior.expected, int)
                and isinstance(part.expected, int)
                and part.expected == prior.expected + len(prior.events)
            )
        )
        if not follows:
            raise InvalidInput(
                f"stream {stream_id!r} is emitted to twice in one batch with expected_version "
                f"{part.expected!r} after {prior.expected!r} + {len(prior.events)} events; use "
                "ANY or the version the earlier events lead to"
            )
        self._parts[stream_id] = prior._replace(events=[*prior.events, *part.events])

    def event_id(self, cause: RecordedEvent, index: int = 0) -> uuid.UUID:
        """A stable id for the ``index``-th event emitted because of ``cause``: the same on
        every delivery of ``cause`` to this manager (so a repeat is recognised)."""
        return uuid.uuid5(_NAMESPACE, f"{self._name}\x00{cause.event_id}\x00{index}")

    @property
    def appends(self) -> list[PendingAppend]:
        """The merged appends, in the order their streams were first emitted to."""
        return list(self._parts.values())
