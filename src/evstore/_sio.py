"""Thread-based twins of ``evstore._aio`` for the generated sync code in ``evstore._sync``."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any


class Event:
    """A flag to wait on, with a timeout."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        """Set the flag and wake the waiters."""
        self._event.set()

    def is_set(self) -> bool:
        """Whether the flag is set."""
        return self._event.is_set()

    def clear(self) -> None:
        """Unset the flag."""
        self._event.clear()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until set or ``timeout`` passes; return whether it is set."""
        return self._event.wait(timeout)


class Lock:
    """Mutual exclusion among threads (``with lock:``)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


class Runner:
    """A background activity: a daemon thread."""

    def __init__(self, target: Callable[[], None], name: str) -> None:
        self._thread = threading.Thread(target=target, name=name, daemon=True)
        self._thread.start()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the activity to end (at most ``timeout`` seconds)."""
        if self._thread is not threading.current_thread():
            self._thread.join(timeout)

    def cancel(self) -> None:
        """Threads cannot be cancelled; the activity checks its stop flag instead."""

    def done(self) -> bool:
        """Whether the activity has ended."""
        return not self._thread.is_alive()


def call(handler: Callable[..., Any], *args: Any) -> Any:
    """Call ``handler``."""
    return handler(*args)


def sleep(seconds: float) -> None:
    """Sleep this thread."""
    time.sleep(seconds)
