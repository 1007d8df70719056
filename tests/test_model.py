"""Property test: random operation sequences on every backend agree with a tiny model."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evstore
from evstore import ANY, NO_STREAM, STREAM_EXISTS
from evstore.testing import StoreFactory


@dataclass
class _Stream:
    events: list[tuple[int, str]] = field(default_factory=list)  # (version, type)
    last: int = 0
    visible_from: int = 1
    tombstoned: bool = False

    @property
    def visible(self) -> bool:
        return self.last >= self.visible_from


def _admits(expected: Any, s: _Stream) -> bool:
    if expected is ANY:
        return True
    if expected is NO_STREAM or expected == 0:
        return not s.visible
    if expected is STREAM_EXISTS:
        return s.visible
    return bool(expected == s.last)


names = st.sampled_from(["a", "b", "c"])
expected_versions = st.sampled_from([ANY, NO_STREAM, STREAM_EXISTS]) | st.integers(0, 6)
operations = st.lists(
    st.one_of(
        st.tuples(
            st.just("append"),
            names,
            st.integers(1, 3),
            expected_versions,
            st.sampled_from(["X", "Y"]),
        ),
        st.tuples(st.just("delete"), names, st.booleans()),
    ),
    max_size=25,
)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(ops=operations)
def test_random_operations_agree_with_the_model(
    store_factory: StoreFactory, ops: list[tuple[Any, ...]]
) -> None:
    prefix = f"m{uuid.uuid4().hex[:8]}"
    model: dict[str, _Stream] = {}
    log: list[tuple[str, int, str]] = []  # (stream, version, type) in append order
    with store_factory.connect() as store:
        for op in ops:
            sid = f"{prefix}-{op[1]}"
            s = model.setdefault(sid, _Stream())
            if op[0] == "append":
                _, _, n, expected, type_ = op
                events = [evstore.NewEvent(type_, {"k": i}) for i in range(n)]
                try:
                    result = store.append(sid, events, expected)
                except evstore.StreamDeleted:
                    assert s.tombstoned
                    continue
                except evstore.ConcurrencyError as e:
                    assert not s.tombstoned and not _admits(expected, s)
                    assert e.actual == (s.last if s.visible else 0)
                    continue
                assert not s.tombstoned and _admits(expected, s)
                new = [(s.last + i, type_) for i in range(1, n + 1)]
                s.events += new
                s.last += n
                log += [(sid, v, t) for v, t in new]
                assert result.version == s.last
            else:
                _, _, hard = op
                try:
                    store.delete_stream(sid, hard=hard)
                except evstore.StreamDeleted:
                    assert s.tombstoned
                    continue
                except evstore.StreamNotFound:
                    assert not hard and not s.visible
                    continue
                assert not s.tombstoned and (hard or s.visible)
                if hard:
                    s.tombstoned = True
                    log = [entry for entry in log if entry[0] != sid]
                    s.events = []
                else:
                    s.visible_from = s.last + 1
            for name, stream in model.items():
                if stream.tombstoned:
                    continue
                visible = [(v, t) for v, t in stream.events if v >= stream.visible_from]
                assert [(e.version, e.type) for e in store.get_events(name)] == visible
                assert store.stream_version(name) == (stream.last if stream.visible else 0)
        got = [
            (e.stream_id, e.version, e.type)
            for e in store.read_all()
            if e.stream_id.startswith(prefix + "-")
        ]
        assert got == log
