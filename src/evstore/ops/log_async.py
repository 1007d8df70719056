"""The log as the operators' tools read it: one log, or ``P`` partitions each with
positions of its own. Written once for asyncio; ``log.py`` is generated.

In a store of ``P > 1`` partitions a named subscription stores one checkpoint per
partition, ``name#j`` (its cursor's component ``j``); the tools check, count and translate
each against its own partition.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from evstore.spi._model import ALL, EventRecord, LogFilter, LogPage
from evstore.spi.backend_async import AsyncBackend


def partitions(backend: AsyncBackend) -> int:
    """The store's number of log partitions ``P``."""
    return int(getattr(backend, "log_partitions", 1))


async def heads(backend: AsyncBackend) -> list[int]:
    """The newest position of every partition."""
    if partitions(backend) == 1:
        return [await backend.head_position()]
    found: list[int] = await backend.partition_heads()  # type: ignore[attr-defined]
    return found


async def page(
    backend: AsyncBackend, partition: int, after: int, limit: int, where: LogFilter = ALL
) -> LogPage:
    """Up to ``limit`` events of ``partition`` after ``after`` (the log when ``P == 1``)."""
    if partitions(backend) == 1:
        return await backend.read_all(after, limit, where)
    found: LogPage = await backend.read_partition(  # type: ignore[attr-defined]
        partition, after, limit, where
    )
    return found


async def records(
    backend: AsyncBackend, partition: int, after: int, until: int, size: int = 1000
) -> AsyncIterator[EventRecord]:
    """Events of ``partition`` with ``after < position <= until`` in order, page by page."""
    while after < until:
        found = await page(backend, partition, after, size)
        for record in found.events:
            if record.position > until:
                return
            yield record
        if not found.events or found.scanned_to <= after:
            return
        after = found.scanned_to


def partition_of_checkpoint(name: str, count: int) -> int | None:
    """The partition whose positions checkpoint ``name`` holds: 0 when ``count == 1``, else
    the ``j`` of ``name#j`` (None for a name without one)."""
    if count == 1:
        return 0
    _, sep, suffix = name.rpartition("#")
    if sep and suffix.isdigit() and int(suffix) < count and suffix == str(int(suffix)):
        return int(suffix)
    return None


def progress_names(base: str, count: int) -> list[str]:
    """The names of a resumable run's progress checkpoints: one per partition."""
    return [base] if count == 1 else [f"{base}#{j}" for j in range(count)]
