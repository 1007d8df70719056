"""The log filters users pass, declared once for every method that reads the global log.

``read_all``, ``iter_all``, ``subscribe`` and ``Projection`` take ``**filters`` typed by
:class:`LogFilterOptions`; :func:`log_filter` validates them into the backend's
:class:`~evstore.spi.LogFilter`. A new filter is a field here, a field of ``LogFilter``,
its support in each backend, and a contract test (CONTRIBUTING.md, "Add a read filter").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TypedDict

from evstore import _validation as check
from evstore.errors import InvalidInput
from evstore.spi._model import LogFilter


class LogFilterOptions(TypedDict, total=False):
    """Which events of the global log to read; every filter given must match.

    ``types``: one event type or several; ``type_prefix``: event types that start with it
    (e.g. ``"Order"`` for ``OrderPlaced`` and ``OrderShipped``; with ``types`` both must
    match); ``category``: streams of that category (the
    stream id before the store's category separator); ``partition=(i, n)``: streams whose
    stable hash falls in slot ``i`` of ``n`` - in a store of ``P`` log partitions with ``n``
    dividing ``P``, the log partitions ``j % n == i`` (member ``i`` of a consumer group of
    ``n``); ``partition=i``: log partition ``i`` alone (the same as ``(i, P)``);
    ``stream_id``: the events of that one stream (e.g. one aggregate), in the log's order.
    """

    types: Sequence[str] | str | None
    type_prefix: str | None
    category: str | None
    partition: tuple[int, int] | int | None
    stream_id: str | None


def log_filter(options: dict[str, object], stream_prefix: str | None) -> LogFilter:
    """Validate user filter options into a :class:`LogFilter` (``InvalidInput`` if bad)."""
    unknown = set(options) - set(LogFilterOptions.__annotations__)
    if unknown:
        raise InvalidInput(
            f"unknown log filter {sorted(unknown)[0]!r}; use "
            + ", ".join(LogFilterOptions.__annotations__)
        )
    category = options.get("category")
    if category is not None:
        check.category(category)
    stream_id = options.get("stream_id")
    if stream_id is not None:
        check.stream_id(stream_id)
        if stream_prefix and not str(stream_id).startswith(stream_prefix):
            raise InvalidInput(f"stream {stream_id!r} is not a stream of this store's tenant")
    type_prefix = options.get("type_prefix")
    if type_prefix is not None:
        check.type_prefix(type_prefix)
    return LogFilter(
        types=check.types_filter(options.get("types")),
        type_prefix=type_prefix,  # type: ignore[arg-type]
        category=category,  # type: ignore[arg-type]
        partition=check.partition(options.get("partition")),
        stream_prefix=stream_prefix,
        stream_id=stream_id,  # type: ignore[arg-type]
    )
