"""The OpenTelemetry side: spans and instruments, created only when something listens.

:func:`active` is the one question the instrumented code asks: it returns a
:class:`Recorder` when a tracer or meter provider with an SDK behind it is set (globally or
by :func:`configure`), else None, and the caller then runs its plain path.
"""

from __future__ import annotations

import importlib.metadata
import threading
import time
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from evstore.errors import (
    BackendUnavailable,
    ConcurrencyError,
    DuplicateEventId,
    InvalidInput,
    StreamDeleted,
    StreamNotFound,
)

try:
    from opentelemetry import context as _context
    from opentelemetry import metrics as _metrics
    from opentelemetry import trace as _trace
except ImportError:  # the otel extra is not installed: nothing is ever recorded
    _context = None  # type: ignore[assignment]
    _metrics = None  # type: ignore[assignment]
    _trace = None  # type: ignore[assignment]

INSTRUMENTATION = "evstore"
"""The instrumentation scope name of evstore's tracer and meter."""

METRICS = {
    "db.client.operation.duration": "histogram, s: duration of each store operation, by "
    "db.operation.name (append latency: db.operation.name=append), db.system.name, error.type",
    "evstore.events.appended": "counter, {event}: events appended, by db.system.name",
    "evstore.consumer.lag": "gauge, {event}: how far each running subscription and "
    "projection is behind the head it last saw, by messaging.consumer.group.name and "
    "evstore.consumer.kind",
    "evstore.cache.lookups": "counter, {lookup}: cache look-ups by evstore.cache.name and "
    "evstore.cache.result (hit, miss)",
    "evstore.cache.hit_ratio": "gauge, 1: hits / look-ups of each cache, by evstore.cache.name",
    "evstore.group_commit.size": "histogram, {append}: appends written per group-commit "
    "transaction, by db.system.name",
}
"""The metrics evstore records: name -> kind, unit and attributes."""

# Seconds; the database conventions' advice for db.client.operation.duration.
_DURATION_BUCKETS = (0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0)
_GROUP_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

_OUTCOMES: tuple[tuple[type[BaseException], str], ...] = (
    (ConcurrencyError, "conflict"),
    (DuplicateEventId, "conflict"),
    (InvalidInput, "invalid"),
    (StreamDeleted, "not_found"),
    (StreamNotFound, "not_found"),
    (BackendUnavailable, "unavailable"),
)


def outcome(error: BaseException | None) -> str:
    """The ``evstore.outcome`` attribute for an operation that raised ``error`` (or not)."""
    if error is None:
        return "ok"
    for kind, name in _OUTCOMES:
        if isinstance(error, kind):
            return name
    return "error"


def error_type(error: BaseException) -> str:
    """``error.type``: the exception's fully qualified class name (as ``exception.type``)."""
    kind = type(error)
    return (
        kind.__qualname__
        if kind.__module__ == "builtins"
        else f"{kind.__module__}.{kind.__qualname__}"
    )


_systems: dict[type, str] = {}


def system_name(backend: object) -> str:
    """The ``db.system.name`` of a backend: its module under ``evstore.backends``
    (``sqlite``, ``postgresql``, ``memory``, ``mongodb``, ``nats``), else its top package."""
    backend = getattr(backend, "sync", backend)  # the threaded asyncio face of a sync one
    kind = type(backend)
    name = _systems.get(kind)
    if name is None:
        parts = kind.__module__.split(".")
        name = parts[2] if parts[:2] == ["evstore", "backends"] and len(parts) > 2 else parts[0]
        _systems[kind] = name
    return name


class Operation:
    """What an instrumented operation reports while it runs: ``count``, the events
    appended, read or handled (``evstore.event.count``)."""

    __slots__ = ("count", "span")

    def __init__(self, span: Any) -> None:
        self.span = span
        self.count: int | None = None


class _Timed(Operation):
    """One store operation: a CLIENT span made current, its duration recorded on exit.

    Written as a class rather than with ``contextmanager`` and ``start_as_current_span``
    (two generator layers): it is on every append's path."""

    __slots__ = ("_began", "_name", "_recorder", "_system", "_token")

    def __init__(self, recorder: Recorder, name: str, system: str, attributes: Any) -> None:
        super().__init__(
            recorder.tracer.start_span(name, kind=_trace.SpanKind.CLIENT, attributes=attributes)
        )
        self._recorder = recorder
        self._name = name
        self._system = system
        self._began = 0.0
        self._token: Any = None

    def __enter__(self) -> Operation:
        self._token = _context.attach(_trace.set_span_in_context(self.span))
        self._began = time.perf_counter()
        return self

    def __exit__(self, kind: Any, error: BaseException | None, tb: Any) -> None:
        took = time.perf_counter() - self._began
        _context.detach(self._token)
        span, system = self.span, self._system
        measured = {"db.system.name": system, "db.operation.name": self._name}
        attributes: dict[str, Any] = {"evstore.outcome": outcome(error)}
        if self.count is not None:
            attributes["evstore.event.count"] = self.count
        if error is not None:
            measured["error.type"] = attributes["error.type"] = error_type(error)
            span.record_exception(error)
            span.set_status(_trace.Status(_trace.StatusCode.ERROR, f"{kind.__name__}: {error}"))
        elif self.count is not None and self._name.startswith("append"):
            self._recorder.appended.add(self.count, {"db.system.name": system})
        span.set_attributes(attributes)
        span.end()
        self._recorder.duration.record(took, measured)


class _Followers:
    """Running subscriptions and projections, held weakly, for the lag gauge."""

    def __init__(self) -> None:
        # Added to by any thread, read by the metric reader's: copied under the lock.
        self.lock = threading.Lock()
        self.items: weakref.WeakKeyDictionary[Any, tuple[str, str]] = weakref.WeakKeyDictionary()
        self.caches: weakref.WeakKeyDictionary[Any, str] = weakref.WeakKeyDictionary()

    def lag(self, _options: Any) -> Iterator[Any]:
        with self.lock:
            followers = list(self.items.items())
        for follower, (kind, name) in followers:
            if follower.running:
                yield _metrics.Observation(
                    follower.lag,
                    {"messaging.consumer.group.name": name, "evstore.consumer.kind": kind},
                )

    def _cache_counts(self) -> dict[str, tuple[int, int]]:
        counts: dict[str, tuple[int, int]] = {}
        with self.lock:
            caches = list(self.caches.items())
        for cache, name in caches:
            stats = cache.stats
            hits, misses = counts.get(name, (0, 0))
            counts[name] = (hits + stats.hits, misses + stats.misses)
        return counts

    def lookups(self, _options: Any) -> Iterator[Any]:
        for name, (hits, misses) in self._cache_counts().items():
            yield _metrics.Observation(
                hits, {"evstore.cache.name": name, "evstore.cache.result": "hit"}
            )
            yield _metrics.Observation(
                misses, {"evstore.cache.name": name, "evstore.cache.result": "miss"}
            )

    def hit_ratio(self, _options: Any) -> Iterator[Any]:
        for name, (hits, misses) in self._cache_counts().items():
            if hits + misses:
                yield _metrics.Observation(hits / (hits + misses), {"evstore.cache.name": name})


_followers = _Followers()


def _version() -> str:
    try:
        return importlib.metadata.version("evstore")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - run from a tree
        return ""


class Recorder:
    """evstore's tracer and instruments on one pair of providers."""

    def __init__(self, tracer_provider: Any, meter_provider: Any) -> None:
        version = _version()
        self.tracer = _trace.get_tracer(INSTRUMENTATION, version, tracer_provider)
        meter = _metrics.get_meter(INSTRUMENTATION, version, meter_provider)
        self.duration = meter.create_histogram(
            "db.client.operation.duration",
            "s",
            "Duration of evstore store operations.",
            explicit_bucket_boundaries_advisory=_DURATION_BUCKETS,
        )
        self.appended = meter.create_counter(
            "evstore.events.appended", "{event}", "Events appended."
        )
        self.group_size = meter.create_histogram(
            "evstore.group_commit.size",
            "{append}",
            "Appends written in one group-commit transaction.",
            explicit_bucket_boundaries_advisory=_GROUP_BUCKETS,
        )
        meter.create_observable_gauge(
            "evstore.consumer.lag",
            [_followers.lag],
            "{event}",
            "Events a running subscription or projection is behind the head it last saw.",
        )
        meter.create_observable_counter(
            "evstore.cache.lookups", [_followers.lookups], "{lookup}", "Cache look-ups."
        )
        meter.create_observable_gauge(
            "evstore.cache.hit_ratio", [_followers.hit_ratio], "1", "Cache hits / look-ups."
        )

    def operation(self, name: str, system: str, stream_id: str | None = None) -> _Timed:
        """A CLIENT span and a duration for one store operation (database conventions)."""
        attributes: dict[str, Any] = {"db.system.name": system, "db.operation.name": name}
        if stream_id is not None:
            attributes["evstore.stream.id"] = stream_id
        return _Timed(self, name, system, attributes)

    @contextmanager
    def batch(
        self, kind: str, group: str | None, system: str, count: int, lag: int
    ) -> Iterator[Operation]:
        """A CONSUMER span for one batch a subscription or projection handles (messaging
        conventions: a ``process`` operation of ``count`` messages)."""
        name = group or "(anonymous)"
        attributes: dict[str, Any] = {
            "messaging.system": INSTRUMENTATION,
            "messaging.operation.type": "process",
            "messaging.operation.name": kind,
            "messaging.consumer.group.name": name,
            "messaging.batch.message_count": count,
            "db.system.name": system,
            "evstore.event.count": count,
            "evstore.consumer.lag": lag,
        }
        with self.tracer.start_as_current_span(
            f"process {name}",
            kind=_trace.SpanKind.CONSUMER,
            attributes=attributes,
            record_exception=True,
            set_status_on_exception=True,
        ) as span:
            op = Operation(span)
            try:
                yield op
            except BaseException as e:
                span.set_attribute("evstore.outcome", outcome(e))
                span.set_attribute("error.type", error_type(e))
                raise
            span.set_attribute("evstore.outcome", "ok")
            if op.count is not None:  # fewer than read: the batch was cut short
                span.set_attribute("evstore.event.count", op.count)


_configured: tuple[Any, Any] | None = None
_cache: tuple[Any, Any, Recorder | None] = (None, None, None)


def configure(tracer_provider: Any = None, meter_provider: Any = None) -> None:
    """Record with these providers instead of OpenTelemetry's global ones (both None: the
    global ones again). For tests, and applications that keep providers of their own."""
    global _configured
    both = (tracer_provider, meter_provider)
    _configured = None if both == (None, None) else both


def _listening(provider: Any, idle: tuple[type, ...]) -> bool:
    return provider is not None and not isinstance(provider, idle)


if _trace is not None:
    import os

    from opentelemetry.environment_variables import (
        OTEL_PYTHON_METER_PROVIDER,
        OTEL_PYTHON_TRACER_PROVIDER,
    )
    from opentelemetry.metrics import NoOpMeterProvider

    _IDLE_TRACERS: tuple[type, ...] = (_trace.ProxyTracerProvider, _trace.NoOpTracerProvider)
    try:  # what get_meter_provider() returns until one is set
        from opentelemetry.metrics._internal import _ProxyMeterProvider

        _IDLE_METERS: tuple[type, ...] = (_ProxyMeterProvider, NoOpMeterProvider)
    except ImportError:  # pragma: no cover - an API without the private proxy class
        _IDLE_METERS = (NoOpMeterProvider,)
    # The API's get_*_provider() look in os.environ on every call until a provider is set
    # (microseconds): while none is set and no variable names one, the module globals say so.
    _unset: Any = None
    if (
        OTEL_PYTHON_TRACER_PROVIDER not in os.environ
        and OTEL_PYTHON_METER_PROVIDER not in os.environ
    ):
        try:
            from opentelemetry.metrics import _internal as _unset_meters

            _unset = (_trace, _unset_meters)
            _ = (_trace._TRACER_PROVIDER, _unset_meters._METER_PROVIDER)
        except (ImportError, AttributeError):  # pragma: no cover - another API layout
            _unset = None


def active() -> Recorder | None:
    """The recorder to use now, or None when nothing listens (no extra, or no SDK set up)."""
    global _cache
    if _trace is None:
        return None
    if (
        _configured is None
        and _unset is not None
        and _unset[0]._TRACER_PROVIDER is None
        and _unset[1]._METER_PROVIDER is None
    ):
        return None
    if _configured is not None:
        tracers, meters = _configured
    else:
        tracers, meters = _trace.get_tracer_provider(), _metrics.get_meter_provider()
    cached_tracers, cached_meters, recorder = _cache
    if tracers is cached_tracers and meters is cached_meters:
        return recorder
    recorder = None
    if _listening(tracers, _IDLE_TRACERS) or _listening(meters, _IDLE_METERS):
        recorder = Recorder(tracers, meters)
    _cache = (tracers, meters, recorder)
    return recorder


def track_follower(follower: Any, kind: str, name: str | None) -> None:
    """Report ``follower.lag`` in ``evstore.consumer.lag`` while it runs."""
    if _trace is not None:
        with _followers.lock:
            _followers.items[follower] = (kind, name or "(anonymous)")


def track_cache(cache: Any, name: str) -> None:
    """Report a :class:`~evstore.LRUCache`'s look-ups and hit ratio under ``name``."""
    if _trace is not None:
        with _followers.lock:
            _followers.caches[cache] = name


def watch_backend(backend: object) -> None:
    """Record the group-commit batch sizes of a backend that groups appends (it has a
    ``group_commit_observer`` attribute; SQLite)."""
    if _trace is None:
        return
    target = getattr(backend, "sync", backend)
    if not hasattr(target, "group_commit_observer"):
        return
    attributes = {"db.system.name": system_name(target)}

    def observe(size: int) -> None:
        recorder = active()
        if recorder is not None:
            recorder.group_size.record(size, attributes)

    target.group_commit_observer = observe
