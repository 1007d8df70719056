"""Concurrency primitives for the asyncio code in ``evstore._async``.

``evstore._sio`` has the same names for threads; the sync twins generated from
``_async`` import that module instead, so the shared logic is written once.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Coroutine
from typing import Any


class Event:
    """A flag to wait on, with a timeout."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self) -> None:
        """Set the flag and wake the waiters."""
        self._event.set()

    def is_set(self) -> bool:
        """Whether the flag is set."""
        return self._event.is_set()

    def clear(self) -> None:
        """Unset the flag."""
        self._event.clear()

    async def wait(self, timeout: float | None = None) -> bool:
        """Wait until set or ``timeout`` passes; return whether it is set."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        return True


class Lock:
    """Mutual exclusion among tasks (``async with lock:``), granted in arrival order."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()

    async def __aenter__(self) -> None:
        await self._lock.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self._lock.release()


class Runner:
    """A background activity: an asyncio task."""

    def __init__(self, target: Callable[[], Coroutine[Any, Any, None]], name: str) -> None:
        self._task = asyncio.get_running_loop().create_task(target(), name=name)

    async def join(self, timeout: float | None = None) -> None:
        """Wait for the activity to end (at most ``timeout`` seconds)."""
        await asyncio.wait([self._task], timeout=timeout)

    def cancel(self) -> None:
        """Ask the activity to stop at its next await."""
        self._task.cancel()

    def done(self) -> bool:
        """Whether the activity has ended."""
        return self._task.done()


async def call(handler: Callable[..., Any], *args: Any) -> Any:
    """Call ``handler``; await its result when it is awaitable (async handlers)."""
    result = handler(*args)
    if inspect.isawaitable(result):
        return await result
    return result


async def sleep(seconds: float) -> None:
    """Sleep without blocking the event loop."""
    await asyncio.sleep(seconds)
