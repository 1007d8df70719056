"""Driver errors to evstore errors: one table per backend, applied by one context manager.

Modelled on httpx's ``map_exceptions``: a backend writes its translation once, as a table
from driver exception classes to functions that build the evstore error, and wraps its own
statements in ``with self._errors:`` (or ``async with``: the same object serves both)::

    _errors = ErrorMap({
        sqlite3.OperationalError: lambda e: BackendUnavailable(f"SQLite error: {e}"),
        sqlite3.DatabaseError: not_a_database,  # may return None: "not mine"
    })

The most specific class in the table that the raised exception is an instance of wins,
whatever the order of the table. Its function returns the evstore error to raise (chained
``from`` the driver's) or None to let the driver's exception through unchanged. evstore's
own errors, and exceptions no entry covers, always pass through unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any

from evstore.errors import EvstoreError

Translate = Callable[[Any], BaseException | None]


class ErrorMap:
    """A table of driver exception class -> translation, usable as a context manager."""

    __slots__ = ("_cache", "_table")

    def __init__(self, table: Mapping[type[BaseException], Translate]) -> None:
        self._table = dict(table)
        self._cache: dict[type[BaseException], Translate | None] = {}

    def _find(self, kind: type[BaseException]) -> Translate | None:
        try:
            return self._cache[kind]
        except KeyError:
            pass
        found: type[BaseException] | None = None
        for mapped in self._table:
            if issubclass(kind, mapped) and (found is None or issubclass(mapped, found)):
                found = mapped
        translate = None if found is None else self._table[found]
        self._cache[kind] = translate
        return translate

    def translate(self, exc: BaseException) -> BaseException:
        """The evstore error for ``exc`` (its ``__cause__`` set), or ``exc`` itself."""
        if isinstance(exc, EvstoreError):
            return exc
        translate = self._find(type(exc))
        mapped = None if translate is None else translate(exc)
        if mapped is None:
            return exc
        mapped.__cause__ = exc
        mapped.__suppress_context__ = True
        return mapped

    def __enter__(self) -> None:
        return None

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            return
        mapped = self.translate(exc)
        if mapped is not exc:
            raise mapped
