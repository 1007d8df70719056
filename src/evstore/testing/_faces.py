"""The two faces of a store, for running every contract test on both.

The sync face is :class:`evstore.EventStore` itself. The async face is
:class:`evstore.AsyncEventStore` driven from the test's thread: an event loop runs on a
thread of its own, and :class:`SyncOverAsync` turns each call into a coroutine run on that
loop, each async iterator into an iterator and each async context manager into a context
manager. A contract test written against the sync API thus exercises the asyncio source
(the sync store is generated from it, but the generator is not what runs there).

Handlers given to ``subscribe`` or a projection run on the loop's thread on the async face;
they must not call the store back (no contract handler does).
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import Callable, Coroutine, Iterator
from types import TracebackType
from typing import Any, TypeVar, cast

import evstore
from evstore.testing._factory import StoreFactory

T = TypeVar("T")


class EventLoopThread:
    """An asyncio event loop running on a daemon thread until :meth:`close`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="evstore-contract-loop", daemon=True
        )
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and return its result (or raise its exception)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def close(self) -> None:
        """Cancel what still runs on the loop, stop it and join its thread."""

        async def cancel_rest() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        self.run(cancel_rest())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


_ASYNC_CLASSES: dict[type[Any], bool] = {}


def _is_async_class(cls: type[Any]) -> bool:
    found = _ASYNC_CLASSES.get(cls)
    if found is None:
        found = _ASYNC_CLASSES[cls] = any(
            inspect.iscoroutinefunction(getattr(cls, name, None))
            or name in ("__aenter__", "__anext__")
            for name in dir(cls)
        )
    return found


class SyncOverAsync:
    """A blocking proxy of an asyncio object: methods run on an :class:`EventLoopThread`."""

    def __init__(self, target: Any, runner: EventLoopThread) -> None:
        self._target = target
        self._runner = runner

    @property
    def target(self) -> Any:
        """The asyncio object behind this proxy."""
        return self._target

    def _wrap(self, value: Any) -> Any:
        return wrap(value, self._runner)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value) or isinstance(value, type):
            return self._wrap(value)

        def call(*args: Any, **kwargs: Any) -> Any:
            async def on_loop() -> Any:
                result = value(*args, **kwargs)
                if inspect.isawaitable(result):
                    result = await result
                return result

            return self._wrap(self._runner.run(on_loop()))

        return call

    def __iter__(self) -> Iterator[Any]:
        iterator = self._target.__aiter__()
        while True:
            try:
                item = self._runner.run(_anext(iterator))
            except StopAsyncIteration:
                return
            yield self._wrap(item)

    def __next__(self) -> Any:
        try:
            return self._wrap(self._runner.run(_anext(self._target)))
        except StopAsyncIteration:
            raise StopIteration from None

    def __enter__(self) -> Any:
        entered = self._runner.run(self._target.__aenter__())
        return self if entered is self._target else self._wrap(entered)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> Any:
        return self._runner.run(self._target.__aexit__(exc_type, exc, tb))

    def __repr__(self) -> str:
        return f"<sync over {self._target!r}>"


async def _anext(iterator: Any) -> Any:
    return await iterator.__anext__()


def wrap(value: Any, runner: EventLoopThread) -> Any:
    """``value`` as the sync face sees it: asyncio objects proxied, plain values as they are."""
    if isinstance(value, SyncOverAsync) or not _is_async_class(type(value)):
        return value
    return SyncOverAsync(value, runner)


class Face:
    """How a contract test opens stores and projections: through the sync or async API."""

    name = "sync"

    def __init__(self, factory: StoreFactory) -> None:
        self.factory = factory

    def connect(self, **options: Any) -> evstore.EventStore:
        """A store on the database under test, with the blocking API."""
        return self.factory.connect(**options)

    def projection(
        self, store: evstore.EventStore, name: str, handler: Callable[..., Any], **options: Any
    ) -> evstore.Projection:
        """A projection over ``store`` (an ``AsyncProjection`` on the async face)."""
        return evstore.Projection(store, name, handler, **options)

    def close(self) -> None:
        """Release what the face holds (the async face's event loop)."""


class AsyncFace(Face):
    """The asyncio store and projections, each call run on an event loop thread."""

    name = "async"

    def __init__(self, factory: StoreFactory) -> None:
        super().__init__(factory)
        self.runner = EventLoopThread()

    def connect(self, **options: Any) -> evstore.EventStore:
        async def open_store() -> evstore.AsyncEventStore:
            return self.factory.connect_async(**options)

        return cast(evstore.EventStore, wrap(self.runner.run(open_store()), self.runner))

    def projection(
        self, store: evstore.EventStore, name: str, handler: Callable[..., Any], **options: Any
    ) -> evstore.Projection:
        target = cast(SyncOverAsync, store).target

        async def build() -> evstore.AsyncProjection:
            return evstore.AsyncProjection(target, name, handler, **options)

        return cast(evstore.Projection, wrap(self.runner.run(build()), self.runner))

    def close(self) -> None:
        self.runner.close()


def open_face(name: str, factory: StoreFactory) -> Face:
    """The face called ``name`` ("sync" or "async") on ``factory``'s database."""
    return AsyncFace(factory) if name == "async" else Face(factory)
