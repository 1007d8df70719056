"""An ``eventsourcing`` persistence module that stores everything in evstore.

Select it in an application's environment::

    PERSISTENCE_MODULE=evstore.integrations.eventsourcing
    EVSTORE_URL=postgresql://...          # any evstore URL; each application its own store

What maps to what (evstore's public API only):

- an aggregate sequence is a stream (id: ``str(originator_id)``); a stored event is an
  evstore event of type ``topic`` whose data holds the state bytes (as text when they are
  UTF-8, else as bytes) and whose metadata holds the ``originator_version``. A stream's
  first event fixes the offset between originator versions and stream versions, so a
  sequence may start at 0 or 1 as in eventsourcing; an insert is an append with the
  expected version the originator versions imply (a conflict is ``IntegrityError``);
- a notification is an event of the store's global log; its id is the event's position
  (gap-free on SQLite and MongoDB, sparse but ordered on PostgreSQL);
- tracking records are evstore checkpoints named ``eventsourcing-tracking:<application>``;
- snapshots are events too, in a store of their own (``EVSTORE_SNAPSHOTS_URL``, by
  default derived from ``EVSTORE_URL``), so every snapshot is kept and the latest at or
  below a version is found (eventsourcing asks for that), and the application's log holds
  only its events.
"""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections.abc import Sequence
from queue import Empty
from typing import Any, Final
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from eventsourcing.dcb.api import (
    DCBAppendCondition,
    DCBEvent,
    DCBQuery,
    DCBReadResponse,
    DCBRecorder,
    DCBSequencedEvent,
)
from eventsourcing.dcb.persistence import DCBInfrastructureFactory, DCBListenNotifySubscription
from eventsourcing.persistence import (
    AggregateRecorder,
    ApplicationRecorder,
    DataError,
    InfrastructureFactory,
    IntegrityError,
    Notification,
    OperationalError,
    ProcessRecorder,
    ProgrammingError,
    Queue,
    ShutDown,
    StoredEvent,
    Subscription,
    Tracking,
    TrackingRecorder,
)
from eventsourcing.utils import Environment, EnvType, resolve_topic

from evstore._types import (
    AppendCondition,
    AppendRequest,
    AppendResult,
    NewEvent,
    Query,
    QueryItem,
    RecordedEvent,
)
from evstore.errors import (
    BackendUnavailable,
    ConcurrencyError,
    DuplicateEventId,
    EvstoreError,
    InvalidInput,
)
from evstore.store.connect import connect
from evstore.store.facade import EventStore

__all__ = [
    "EvstoreAggregateRecorder",
    "EvstoreDCBRecorder",
    "EvstoreDCBSubscription",
    "EvstoreApplicationRecorder",
    "EvstoreDatastore",
    "EvstoreFactory",
    "EvstoreProcessRecorder",
    "EvstoreSnapshotRecorder",
    "EvstoreSubscription",
    "EvstoreTrackingRecorder",
]

_VERSION: Final = "ov"  # metadata key: the event's originator_version
_MAX: Final = "max"  # snapshot metadata: the highest originator_version stored so far
_TEXT: Final = "s"  # data key: the state, when it is UTF-8 text
_BYTES: Final = "b"  # data key: the state, when it is not
_SNAPSHOT_IDS: Final = uuid.UUID("5f0c7c1e-6a43-4b0e-9a55-2f1d0c4b7e21")
_TRACKING: Final = "eventsourcing-tracking:"
_BASES_CACHED: Final = 100_000


def _translated(error: EvstoreError) -> Exception:
    """eventsourcing's error for an evstore error (raised ``from`` it by the caller)."""
    if isinstance(error, ConcurrencyError | DuplicateEventId):
        return IntegrityError(str(error))
    if isinstance(error, BackendUnavailable):
        return OperationalError(str(error))
    if isinstance(error, InvalidInput):
        return DataError(str(error))
    return ProgrammingError(str(error))


def _stream_id(originator_id: uuid.UUID | str) -> str:
    return str(originator_id)


def _originator_id(stream_id: str) -> uuid.UUID | str:
    """A UUID when the stream id is one in canonical form (as stored), else the str."""
    if len(stream_id) == 36:
        try:
            parsed = uuid.UUID(stream_id)
        except ValueError:
            return stream_id
        if str(parsed) == stream_id:
            return parsed
    return stream_id


def _state_data(state: bytes) -> dict[str, Any]:
    try:
        text = state.decode("utf-8")
    except UnicodeDecodeError:
        return {_BYTES: state}
    # PostgreSQL's jsonb holds no NUL character; such (rare) states go as bytes.
    return {_BYTES: state} if "\x00" in text else {_TEXT: text}


def _state(data: dict[str, Any]) -> bytes:
    text = data.get(_TEXT)
    if isinstance(text, str):
        return text.encode("utf-8")
    raw = data[_BYTES]
    assert isinstance(raw, bytes)
    return raw


def _stored_event(event: RecordedEvent) -> StoredEvent:
    return StoredEvent(
        originator_id=_originator_id(event.stream_id),
        originator_version=int(event.metadata[_VERSION]),
        topic=event.type,
        state=_state(event.data),
    )


def _notification(event: RecordedEvent) -> Notification:
    return Notification(
        id=event.position,
        originator_id=_originator_id(event.stream_id),
        originator_version=int(event.metadata[_VERSION]),
        topic=event.type,
        state=_state(event.data),
    )


def snapshots_url(url: str) -> str:
    """The store of snapshots beside the store at ``url`` (a sibling file, schema or database).

    ``sqlite:///app.db`` -> ``sqlite:///app_snapshots.db``; ``memory://name`` ->
    ``memory://name_snapshots`` (``memory://`` stays private); PostgreSQL: the schema
    ``<schema>_snapshots``; MongoDB: the database ``<database>_snapshots``. Any other scheme
    needs ``EVSTORE_SNAPSHOTS_URL``.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "sqlite":  # (urlunsplit would drop the empty authority's slashes)
        base, mark, rest = url.partition("?")
        head, dot, ext = base.rpartition(".")
        base = f"{head}_snapshots.{ext}" if dot and "/" not in ext else f"{base}_snapshots"
        return base + mark + rest
    if scheme == "memory":
        return (
            url
            if not parts.netloc
            else urlunsplit(parts._replace(netloc=parts.netloc + "_snapshots"))
        )
    if scheme in ("postgresql", "postgres"):
        options = dict(parse_qsl(parts.query))
        options["schema"] = options.get("schema", "evstore") + "_snapshots"
        return urlunsplit(parts._replace(query=urlencode(options)))
    if scheme in ("mongodb", "mongodb+srv"):
        database = parts.path.strip("/") or "evstore"
        return urlunsplit(parts._replace(path=f"/{database}_snapshots"))
    raise InvalidInput(f"no default snapshot store for {scheme}:// URLs; set EVSTORE_SNAPSHOTS_URL")


class EvstoreDatastore:
    """The evstore stores of one application: its events, and (opened when first used)
    its snapshots. Recorders made by one factory share it."""

    def __init__(self, url: str | None, snapshots_url: str | None = None) -> None:
        self.store: EventStore = connect(url)
        self._url = url
        self._snapshots_url = snapshots_url
        self._other: dict[str, EventStore] = {}
        self._lock = threading.Lock()
        # stream id -> originator_version of its first event (see EvstoreAggregateRecorder)
        self.bases: dict[str, int] = {}

    def store_for(self, purpose: str) -> EventStore:
        """The store that keeps ``purpose``'s sequences (``"snapshots"``: the snapshots)."""
        if purpose == "events":
            return self.store
        with self._lock:
            store = self._other.get(purpose)
            if store is None:
                url = self._snapshots_url if purpose == "snapshots" else None
                if url is None:
                    url = snapshots_url(self.store.url or "")
                    if purpose != "snapshots":
                        url = url.replace("snapshots", purpose)
                store = self._other[purpose] = connect(url)
            return store

    def close(self) -> None:
        """Close every store."""
        with self._lock:
            for store in self._other.values():
                store.close()
            self._other.clear()
        self.store.close()


class EvstoreAggregateRecorder(AggregateRecorder):
    """Aggregate sequences as evstore streams (see the module's docstring)."""

    def __init__(self, datastore: EvstoreDatastore) -> None:
        self.datastore = datastore
        self.store = datastore.store

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Append the events, each sequence at the version its originator versions imply."""
        self._insert(stored_events)
        return None

    def _insert(
        self, stored_events: Sequence[StoredEvent], tracking: Tracking | None = None
    ) -> list[int]:
        """Store the events, all or none (one append of every sequence); their positions,
        in the order given."""
        if not stored_events:
            return []
        by_stream: dict[str, list[int]] = {}
        for i, stored in enumerate(stored_events):
            by_stream.setdefault(_stream_id(stored.originator_id), []).append(i)
        requests: list[tuple[str, list[NewEvent], int]] = []
        firsts: dict[str, int] = {}
        guessed: set[str] = set()
        for stream_id, indexes in by_stream.items():
            events = [stored_events[i] for i in indexes]
            first = firsts[stream_id] = events[0].originator_version
            for offset, stored in enumerate(events):
                if stored.originator_version != first + offset:
                    msg = f"originator versions of {stream_id!r} are not consecutive"
                    raise IntegrityError(msg)
            new = [
                NewEvent(s.topic, _state_data(s.state), {_VERSION: s.originator_version})
                for s in events
            ]
            # An unknown stream is taken to be new; if it is not, its first event says
            # where its numbering starts, and the append is tried again.
            base = self.datastore.bases.get(stream_id)
            if base is None:
                guessed.add(stream_id)
            requests.append((stream_id, new, self._expected(stream_id, first, base)))
        while True:
            try:
                if tracking is not None:
                    done = self._append_tracked(requests, tracking)
                    if done is None:
                        continue  # the tracking record moved meanwhile: look again
                    results = done
                elif len(requests) == 1:
                    results = [self.store.append(*requests[0])]
                else:
                    results = self.store.append_many([AppendRequest(*r) for r in requests])
                break
            except ConcurrencyError as e:
                if e.stream_id not in guessed or e.actual == 0:
                    raise IntegrityError(str(e)) from e
                guessed.discard(e.stream_id)
                k = next(i for i, r in enumerate(requests) if r[0] == e.stream_id)
                expected = self._expected(e.stream_id, firsts[e.stream_id], self._base(e.stream_id))
                requests[k] = (e.stream_id, requests[k][1], expected)
            except EvstoreError as e:
                raise _translated(e) from e
        positions = [0] * len(stored_events)
        for (stream_id, _, expected), result in zip(requests, results, strict=True):
            if expected == 0:
                self._remember(stream_id, firsts[stream_id])
            for i, position in zip(by_stream[stream_id], result.positions, strict=True):
                positions[i] = position
        return positions

    def _append_tracked(
        self, requests: list[tuple[str, list[NewEvent], int]], tracking: Tracking
    ) -> list[AppendResult] | None:
        """The appends and the tracking record in one transaction (None: it moved)."""
        name = _TRACKING + tracking.application_name
        current = self.store.get_checkpoint(name)
        if current is not None and tracking.notification_id <= current:
            msg = f"{tracking} is not after {current}, already recorded"
            raise IntegrityError(msg)
        return self.store.append_with_checkpoint(
            [AppendRequest(*r) for r in requests], name, current, tracking.notification_id
        )

    @staticmethod
    def _expected(stream_id: str, first: int, base: int | None) -> int:
        """The stream version before ``first`` (0: a new stream)."""
        expected = 0 if base is None else first - base
        if expected < 0:
            msg = f"{stream_id!r} already has version {first}"
            raise IntegrityError(msg)
        return expected

    def _remember(self, stream_id: str, base: int) -> None:
        bases = self.datastore.bases
        if len(bases) >= _BASES_CACHED:
            bases.clear()
        bases[stream_id] = base

    def _base(self, stream_id: str) -> int | None:
        """The originator version of the stream's first event (None: no such stream)."""
        base = self.datastore.bases.get(stream_id)
        if base is None:
            first = self.store.get_events(stream_id, limit=1)
            if not first:
                return None
            base = int(first[0].metadata[_VERSION])
            self._remember(stream_id, base)
        return base

    def select_events(
        self,
        originator_id: uuid.UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        """The sequence's events with ``gt < originator_version <= lte``."""
        stream_id = _stream_id(originator_id)
        if limit is not None and limit <= 0:
            return []
        try:
            if gt is None and lte is None and not desc:
                events = self.store.get_events(stream_id, limit=limit)
                if events and events[0].version == 1:
                    self._remember(stream_id, int(events[0].metadata[_VERSION]))
            else:
                base = self._base(stream_id)
                if base is None:
                    return []
                low = 1 if gt is None else max(1, gt - base + 2)
                high = None if lte is None else lte - base + 1
                if high is not None and high < low:
                    return []
                events = self.store.get_events(
                    stream_id, low, to_version=high, limit=limit, backwards=desc
                )
        except EvstoreError as e:
            raise _translated(e) from e
        return [_stored_event(event) for event in events]


class EvstoreApplicationRecorder(EvstoreAggregateRecorder, ApplicationRecorder):
    """Also the application sequence: the store's global log."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Append the events; their notification ids (positions), in the order given."""
        return self._insert(stored_events)

    def select_notifications(
        self,
        start: int | None,
        limit: int,
        stop: int | None = None,
        topics: Sequence[str] = (),
        *,
        inclusive_of_start: bool = True,
    ) -> Sequence[Notification]:
        """Up to ``limit`` events of the log from ``start`` to ``stop``, of ``topics``."""
        if limit <= 0:
            return []
        after = 0 if start is None else start - 1 if inclusive_of_start else start
        try:
            events = self.store.read_all(
                max(after, 0), limit=limit, types=list(topics) if topics else None
            )
        except EvstoreError as e:
            raise _translated(e) from e
        return [_notification(e) for e in events if stop is None or e.position <= stop]

    def max_notification_id(self) -> int | None:
        """The newest position, or None for an empty log."""
        try:
            head = self.store.head_position()
        except EvstoreError as e:
            raise _translated(e) from e
        return head or None

    def subscribe(self, gt: int | None = None, topics: Sequence[str] = ()) -> EvstoreSubscription:
        """The log after ``gt``, then live (an evstore subscription)."""
        return EvstoreSubscription(self, gt=gt, topics=topics)


class EvstoreSubscription(Subscription[EvstoreApplicationRecorder]):
    """An evstore subscription delivering into a bounded queue that ``next()`` reads."""

    def __init__(
        self,
        recorder: EvstoreApplicationRecorder,
        gt: int | None = None,
        topics: Sequence[str] = (),
    ) -> None:
        super().__init__(recorder, gt, topics)
        self._queue: Queue[Notification] = Queue(maxsize=1000)
        try:
            self._subscription = recorder.store.subscribe(
                self._put, from_position=gt or 0, types=list(topics) if topics else None
            )
        except EvstoreError as e:
            raise _translated(e) from e

    def _put(self, event: RecordedEvent) -> None:
        self._queue.put(_notification(event))

    def stop(self) -> None:
        """Stop delivering; ``next()`` then ends the iteration."""
        super().stop()
        self._queue.shutdown(immediate=True)  # pyright: ignore[reportAttributeAccessIssue]
        with contextlib.suppress(ShutDown):  # the handler was putting an event nobody takes
            self._subscription.stop()

    def __next__(self) -> Notification:
        while not self._has_been_stopped:
            try:
                return self._queue.get(timeout=0.1)
            except Empty:
                if not self._subscription.running:
                    self._failed()
            except ShutDown:
                break
        raise StopIteration

    def _failed(self) -> None:
        """The evstore subscription stopped by itself: stop, and raise its error."""
        error = self._subscription.error
        self.stop()
        if isinstance(error, EvstoreError):
            raise _translated(error) from error
        if error is not None and not isinstance(error, ShutDown):
            raise error


class EvstoreTrackingRecorder(TrackingRecorder):
    """Tracking records as evstore checkpoints, moved only forwards (compare-and-set)."""

    def __init__(self, datastore: EvstoreDatastore) -> None:
        self.datastore = datastore
        self.store = datastore.store

    @staticmethod
    def _checkpoint(application_name: str) -> str:
        return _TRACKING + application_name

    def insert_tracking(self, tracking: Tracking) -> None:
        """Record ``tracking``; ``IntegrityError`` unless it is past the recorded one."""
        self._track(tracking, self.max_tracking_id(tracking.application_name))

    def _track(self, tracking: Tracking, current: int | None) -> None:
        name = self._checkpoint(tracking.application_name)
        while True:
            if current is not None and tracking.notification_id <= current:
                msg = f"{tracking} is not after {current}, already recorded"
                raise IntegrityError(msg)
            try:
                if self.store.compare_and_set_checkpoint(name, current, tracking.notification_id):
                    return
            except EvstoreError as e:
                raise _translated(e) from e
            current = self.max_tracking_id(tracking.application_name)

    def max_tracking_id(self, application_name: str) -> int | None:
        """The notification id recorded for ``application_name``, if any."""
        try:
            return self.store.get_checkpoint(self._checkpoint(application_name))
        except EvstoreError as e:
            raise _translated(e) from e


class EvstoreProcessRecorder(EvstoreTrackingRecorder, EvstoreApplicationRecorder, ProcessRecorder):
    """Events with the tracking record of the notification that caused them."""

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Append the events and move the tracking record given as ``tracking=``, in one
        transaction (``store.append_with_checkpoint``): both or neither."""
        tracking: Tracking | None = kwargs.get("tracking")
        if tracking is not None and not stored_events:
            self.insert_tracking(tracking)
            return []
        return self._insert(stored_events, tracking)


class EvstoreSnapshotRecorder(AggregateRecorder):
    """Snapshots: every one kept, any version, the latest at or below a version found.

    Each sequence is a stream of its own store; an event's metadata holds the snapshot's
    version and the highest version stored up to it, so reading backwards stops as soon
    as no older snapshot can be a better answer (at once, when snapshots come in order).
    """

    def __init__(self, datastore: EvstoreDatastore, purpose: str = "snapshots") -> None:
        self.datastore = datastore
        self.purpose = purpose

    @property
    def store(self) -> EventStore:
        """The store of this recorder's sequences."""
        return self.datastore.store_for(self.purpose)

    def insert_events(
        self, stored_events: Sequence[StoredEvent], **kwargs: Any
    ) -> Sequence[int] | None:
        """Store the snapshots; ``IntegrityError`` for a version already stored."""
        by_stream: dict[str, list[StoredEvent]] = {}
        for stored in stored_events:
            by_stream.setdefault(_stream_id(stored.originator_id), []).append(stored)
        for stream_id, events in by_stream.items():
            versions = [e.originator_version for e in events]
            if len(set(versions)) != len(versions):
                msg = f"{stream_id!r}: a version given twice"
                raise IntegrityError(msg)
            self._append(stream_id, events)
        return None

    def _append(self, stream_id: str, events: list[StoredEvent]) -> None:
        store = self.store
        while True:
            try:
                newest = store.get_events(stream_id, backwards=True, limit=1)
                version = newest[0].version if newest else 0
                highest = int(newest[0].metadata[_MAX]) if newest else None
                new = []
                for stored in events:
                    ov = stored.originator_version
                    highest = ov if highest is None else max(highest, ov)
                    new.append(
                        NewEvent(
                            stored.topic,
                            _state_data(stored.state),
                            {_VERSION: ov, _MAX: highest},
                            event_id=uuid.uuid5(_SNAPSHOT_IDS, f"{stream_id}\x1f{ov}"),
                        )
                    )
                store.append(stream_id, new, expected_version=version)
                return
            except ConcurrencyError:
                continue  # another snapshot came in between: look again
            except EvstoreError as e:
                raise _translated(e) from e

    def select_events(
        self,
        originator_id: uuid.UUID | str,
        *,
        gt: int | None = None,
        lte: int | None = None,
        desc: bool = False,
        limit: int | None = None,
    ) -> Sequence[StoredEvent]:
        """The snapshots with ``gt < version <= lte``, ordered by version."""
        if limit is not None and limit <= 0:
            return []
        wanted: list[RecordedEvent] = []
        try:
            for event in self.store.iter_events(_stream_id(originator_id), backwards=True):
                ov = int(event.metadata[_VERSION])
                if (gt is None or ov > gt) and (lte is None or ov <= lte):
                    wanted.append(event)
                if desc and limit is not None and len(wanted) >= limit:
                    wanted.sort(key=_version_of, reverse=True)
                    del wanted[limit:]
                    # nothing older can beat the worst of the best ``limit``
                    if int(event.metadata[_MAX]) <= _version_of(wanted[-1]):
                        break
        except EvstoreError as e:
            raise _translated(e) from e
        wanted.sort(key=_version_of, reverse=desc)
        return [_stored_event(e) for e in wanted[:limit]]


def _version_of(event: RecordedEvent) -> int:
    return int(event.metadata[_VERSION])


class EvstoreDCBRecorder(DCBRecorder):
    """eventsourcing's DCB recorder over evstore's boundaries (``read_query`` and
    conditional appends); every event goes to the stream ``DCB_STREAM``."""

    DCB_STREAM = "eventsourcing-dcb"

    def __init__(self, datastore: EvstoreDatastore) -> None:
        self.datastore = datastore
        self.store = datastore.store

    def read(
        self,
        query: DCBQuery | None = None,
        *,
        after: int | None = None,
        limit: int | None = None,
    ) -> DCBReadResponse:
        """The events matching ``query`` after ``after``, and the position read to."""
        if limit is not None and limit <= 0:
            return _DCBResponse([], None)
        try:
            result = self.store.read_query(_query(query), after=after or 0, limit=limit)
        except EvstoreError as e:
            raise _translated(e) from e
        events = [
            DCBSequencedEvent(DCBEvent(e.type, _state(e.data), list(e.tags)), e.position)
            for e in result.events
        ]
        return _DCBResponse(events, result.head or None)

    def append(
        self, events: Sequence[DCBEvent], condition: DCBAppendCondition | None = None
    ) -> int:
        """Append ``events`` unless ``condition`` fails (``IntegrityError``); the last position."""
        if not events:
            msg = "Should be at least one event. Avoid this elsewhere"
            raise ProgrammingError(msg)
        new = [NewEvent(e.type, _state_data(e.data), tags=tuple(e.tags)) for e in events]
        when = None
        if condition is not None:
            when = AppendCondition(_query(condition.fail_if_events_match), condition.after or 0)
        try:
            result = self.store.append(self.DCB_STREAM, new, condition=when)
        except EvstoreError as e:
            raise _translated(e) from e
        return result.positions[-1]

    def subscribe(
        self, query: DCBQuery | None = None, *, after: int | None = None
    ) -> EvstoreDCBSubscription:
        """The matching events after ``after``, then live."""
        return EvstoreDCBSubscription(self, query=query, after=after)


def _query(query: DCBQuery | None) -> Query:
    if query is None:
        return Query()
    return Query(tuple(QueryItem(tuple(i.types), tuple(i.tags)) for i in query.items))


class _DCBResponse(DCBReadResponse):
    def __init__(self, events: list[DCBSequencedEvent], head: int | None) -> None:
        self._events = iter(events)
        self._head = head

    @property
    def head(self) -> int | None:
        return self._head

    def __next__(self) -> DCBSequencedEvent:
        return next(self._events)


class EvstoreDCBSubscription(DCBListenNotifySubscription[EvstoreDCBRecorder]):
    """eventsourcing's pulling subscription, woken by an evstore subscription."""

    def __init__(
        self, recorder: EvstoreDCBRecorder, query: DCBQuery | None = None, after: int | None = None
    ) -> None:
        self._wakeup = recorder.store.subscribe(self._woken, from_position="end")
        super().__init__(recorder=recorder, query=query, after=after)

    def _woken(self, _: RecordedEvent) -> None:
        self._has_been_notified.set()

    def stop(self) -> None:
        """Stop pulling and stop the wake-ups."""
        super().stop()
        self._wakeup.stop()


class EvstoreFactory(
    InfrastructureFactory[EvstoreTrackingRecorder],
    DCBInfrastructureFactory[EvstoreTrackingRecorder],
):
    """eventsourcing's infrastructure factory for evstore.

    Settings (from the application's environment, prefixed by its name or not, as every
    eventsourcing setting): ``EVSTORE_URL`` (the store of the application's events; without
    it evstore's default: ``$EVSTORE_URL``, else ``sqlite:///evstore.db``) and
    ``EVSTORE_SNAPSHOTS_URL`` (by default derived from it: see :func:`snapshots_url`).
    """

    EVSTORE_URL = "EVSTORE_URL"
    EVSTORE_SNAPSHOTS_URL = "EVSTORE_SNAPSHOTS_URL"

    def __init__(self, env: Environment | EnvType | None) -> None:
        super().__init__(env)
        try:
            self.datastore = EvstoreDatastore(
                self.env.get(self.EVSTORE_URL) or None,
                self.env.get(self.EVSTORE_SNAPSHOTS_URL) or None,
            )
        except EvstoreError as e:
            raise _translated(e) from e

    def aggregate_recorder(self, purpose: str = "events") -> AggregateRecorder:
        """``"events"``: sequences in the application's store; any other purpose
        (``"snapshots"``): a :class:`EvstoreSnapshotRecorder` in a store of its own."""
        if purpose == "events":
            return EvstoreAggregateRecorder(self.datastore)
        return EvstoreSnapshotRecorder(self.datastore, purpose)

    def application_recorder(self) -> ApplicationRecorder:
        """The application's events and notification log (``APPLICATION_RECORDER_TOPIC``
        may name a subclass)."""
        cls: type[EvstoreApplicationRecorder] = self._class(
            self.APPLICATION_RECORDER_TOPIC, EvstoreApplicationRecorder
        )
        return cls(self.datastore)

    def tracking_recorder(
        self, tracking_recorder_class: type[EvstoreTrackingRecorder] | None = None
    ) -> EvstoreTrackingRecorder:
        """A tracking recorder (``TRACKING_RECORDER_TOPIC`` or the class given)."""
        cls = tracking_recorder_class or self._class(
            self.TRACKING_RECORDER_TOPIC, EvstoreTrackingRecorder
        )
        return cls(datastore=self.datastore)

    def process_recorder(self) -> ProcessRecorder:
        """Events with tracking records (``PROCESS_RECORDER_TOPIC`` may name a subclass)."""
        cls: type[EvstoreProcessRecorder] = self._class(
            self.PROCESS_RECORDER_TOPIC, EvstoreProcessRecorder
        )
        return cls(datastore=self.datastore)

    def _class(self, key: str, default: type[Any]) -> type[Any]:
        topic = self.env.get(key)
        if not topic:
            return default
        cls = resolve_topic(topic)
        if not (isinstance(cls, type) and issubclass(cls, default)):
            msg = f"{key}={topic!r} is not a subclass of {default.__name__}"
            raise ProgrammingError(msg)
        return cls

    def dcb_recorder(self) -> DCBRecorder:
        """Decisions with tags, read and appended through dynamic consistency boundaries."""
        return EvstoreDCBRecorder(self.datastore)

    def close(self) -> None:
        """Close the stores."""
        self.datastore.close()
