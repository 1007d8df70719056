"""SQLite group commit: appends arriving together share one transaction, each keeping its rules."""

from __future__ import annotations

import threading
import uuid
from pathlib import Path

import pytest

import evstore
from evstore._types import ANY, NO_STREAM
from evstore.backends.sqlite import SQLiteBackend, _Pending
from evstore.errors import (
    BackendUnavailable,
    ConcurrencyError,
    DuplicateEventId,
    InvalidInput,
    StreamDeleted,
)
from evstore.spi._model import ALL, PendingEvent, Placement


def _event(ident: str | None = None) -> PendingEvent:
    from datetime import UTC, datetime

    return PendingEvent(ident or str(uuid.uuid4()), "T", b"{}", b"{}", 1, datetime.now(UTC))


def _place(stream: str) -> Placement:
    return Placement(stream.split("-")[0], stream, 7)


def test_a_mixed_group_keeps_each_appends_semantics(tmp_path: Path) -> None:
    backend = SQLiteBackend(str(tmp_path / "g.db"), group_commit="always")
    stored = [_event(), _event()]
    first = backend.append("x-1", stored, NO_STREAM, _place("x-1"))
    backend.append("dead-1", [_event()], NO_STREAM, _place("dead-1"))
    backend.delete_stream("dead-1", True, ANY)
    taken = _event(stored[0].event_id)
    items = [
        _Pending("g-1", [_event()], NO_STREAM, _place("g-1")),  # ok: version 1
        _Pending("g-1", [_event()], NO_STREAM, _place("g-1")),  # sees the one before: conflict
        _Pending("g-1", [_event()], 1, _place("g-1")),  # ok: version 2
        _Pending("g-2", [taken], NO_STREAM, _place("g-2")),  # id stored in x-1
        _Pending("x-1", stored, NO_STREAM, _place("x-1")),  # a repeat: the original result
        _Pending("dead-1", [_event()], ANY, _place("dead-1")),  # tombstoned
        _Pending("g-3", [_event(), _event(), taken], NO_STREAM, _place("g-3")),  # all or nothing
        _Pending("g-4", [_event()], 5, _place("g-4")),  # wrong expected version
    ]
    backend._run_group(items)
    assert items[0].result is not None and items[0].result.version == 1
    assert isinstance(items[1].error, ConcurrencyError)
    assert items[2].result is not None and items[2].result.version == 2
    assert isinstance(items[3].error, DuplicateEventId)
    assert items[4].result == first
    assert isinstance(items[5].error, StreamDeleted)
    assert isinstance(items[6].error, DuplicateEventId)
    assert isinstance(items[7].error, ConcurrencyError)
    log = backend.read_all(0, 100, ALL).events
    assert [(r.stream_id, r.version) for r in log] == [
        ("x-1", 1), ("x-1", 2), ("g-1", 1), ("g-1", 2),
    ]  # fmt: skip
    assert [r.position for r in log if r.stream_id == "g-1"] == [
        items[0].result.positions[0],
        items[2].result.positions[0],
    ]
    backend.close()


def test_a_failing_transaction_fails_every_append_of_the_group_and_writes_nothing(
    tmp_path: Path,
) -> None:
    backend = SQLiteBackend(str(tmp_path / "g.db"), group_commit="always")
    items = [_Pending(f"g-{i}", [_event()], NO_STREAM, _place(f"g-{i}")) for i in range(3)]
    backend.close()  # the transaction cannot start
    backend._run_group(items)
    assert all(isinstance(i.error, BackendUnavailable) and i.result is None for i in items)
    reopened = SQLiteBackend(str(tmp_path / "g.db"))
    assert reopened.head_position() == 0
    reopened.close()


def test_bad_option_is_invalid_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="group_commit"):
        evstore.connect(f"sqlite:///{tmp_path / 'g.db'}?group_commit=sometimes")


@pytest.mark.parametrize("mode", ["on", "always"])
def test_racing_threads_form_groups_and_every_acknowledged_append_is_stored(
    tmp_path: Path, mode: str
) -> None:
    url = f"sqlite:///{tmp_path / 'race.db'}?group_commit={mode}"
    store = evstore.connect(url)
    threads, per_thread = 16, 40
    start = threading.Barrier(threads)
    acked: dict[tuple[str, int], int] = {}
    conflicts: list[str] = []
    lock = threading.Lock()

    def writer(n: int) -> None:
        start.wait()
        for i in range(per_thread):
            own = f"own-{n}"
            result = store.append(own, [evstore.NewEvent("T", {"i": i})], expected_version=i)
            with lock:
                acked[(own, result.version)] = result.positions[0]
            # Every thread races for the same shared versions: exactly one wins each.
            try:
                shared = store.append(
                    "shared-1", [evstore.NewEvent("T", {"n": n})], expected_version=i
                )
            except evstore.ConcurrencyError:
                with lock:
                    conflicts.append(f"{n}:{i}")
            else:
                with lock:
                    acked[("shared-1", shared.version)] = shared.positions[0]

    workers = [threading.Thread(target=writer, args=(n,)) for n in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    stored = {(e.stream_id, e.version): e.position for e in store.read_all()}
    assert stored == acked  # every acknowledged append, at its reported place; nothing else
    assert len([k for k in stored if k[0].startswith("own-")]) == threads * per_thread
    shared_versions = sorted(v for s, v in stored if s == "shared-1")
    assert shared_versions == list(range(1, len(shared_versions) + 1))
    assert len(shared_versions) + len(conflicts) == threads * per_thread
    backend = store._backend  # type: ignore[attr-defined]
    assert backend._group.groups < threads * per_thread * 2  # appends did share commits
    store.close()
