"""Seeing inside evstore: OpenTelemetry traces and metrics, and the logs' payload switch.

Traces and metrics. With the ``otel`` extra (``pip install 'evstore[otel]'``, the
OpenTelemetry API) and an OpenTelemetry SDK set up by the application (or passed to
:func:`configure`), every store records, whatever its backend:

- a span per ``append``, stream read, log read, snapshot read and write (kind CLIENT,
  database conventions: ``db.system.name`` = the backend, ``db.operation.name``), per
  subscription batch and per projection batch (kind CONSUMER, messaging conventions:
  ``messaging.operation.type`` = ``process``, ``messaging.consumer.group.name``,
  ``messaging.batch.message_count``); each with ``evstore.stream.id`` where there is one,
  ``evstore.event.count`` and ``evstore.outcome`` (``ok``, ``conflict``, ``invalid``,
  ``not_found``, ``unavailable``, ``error``; a failure also sets ``error.type`` and the span's
  error status);
- the metrics listed in :data:`METRICS`.

Without the API installed nothing is recorded and the store pays one ``is None`` test per
call; with the API but no SDK (no tracer or meter provider set) it pays one look-up of the
global providers per call (``benchmarks/otel_overhead.py`` measures both).

Logs. evstore logs through ``logging.getLogger("evstore.<module>")`` and is quiet by
default (a ``NullHandler`` on ``evstore``): one line per event of interest - a retry, a
parked event, a reconnect, a stall. A line names the stream, version, position and type of
an event, never its data or metadata unless :func:`log_payloads` turned that on.
"""

from __future__ import annotations

import logging
from typing import Any

from evstore.observability._otel import (
    INSTRUMENTATION,
    METRICS,
    Recorder,
    active,
    configure,
    system_name,
    track_cache,
    track_follower,
    watch_backend,
)

__all__ = [
    "INSTRUMENTATION",
    "METRICS",
    "STALL_SECONDS",
    "Recorder",
    "active",
    "configure",
    "log_payloads",
    "payload",
    "system_name",
    "track_cache",
    "track_follower",
    "watch_backend",
]

logging.getLogger("evstore").addHandler(logging.NullHandler())

_payloads = False

STALL_SECONDS = 5.0
"""A subscription or projection batch that takes longer than this is logged as a stall."""


def log_payloads(enabled: bool = True) -> None:
    """Let log lines about an event include its data and metadata (off by default: they
    may hold personal data)."""
    global _payloads
    _payloads = bool(enabled)


def payload(event: Any) -> str:
    """What a log line says about ``event``'s content: its data and metadata when
    :func:`log_payloads` is on, else nothing."""
    if not _payloads:
        return ""
    return f" data={getattr(event, 'data', None)!r} metadata={getattr(event, 'metadata', None)!r}"
