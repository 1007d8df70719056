"""Contract: every bad input is ``InvalidInput`` with nothing written, never an outage.

``BackendUnavailable`` means the backend is unreachable or failing; a bad argument must
never be reported as it (nor as ``TypeError``, ``OverflowError``, ``RecursionError``, a
driver's error or an ``AssertionError``). The named cases are the ones seen escaping; the
fuzz test throws generated hostile arguments at every public method of the store.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import evstore
from evstore import NewEvent, Snapshot
from evstore.testing._base import ContractBase, unique
from evstore.testing._factory import StoreFactory

# Outcomes a public call may have besides success: its documented errors.
DOCUMENTED = (
    evstore.InvalidInput,
    evstore.ConcurrencyError,
    evstore.StreamNotFound,
    evstore.StreamDeleted,
    evstore.DuplicateEventId,
)


def _circular() -> dict[str, Any]:
    d: dict[str, Any] = {}
    d["self"] = d
    return d


def _deep(levels: int) -> dict[str, Any]:
    d: dict[str, Any] = {}
    for _ in range(levels):
        d = {"d": d}
    return d


def _forged_mode() -> object:
    """An object that looks like ``evstore.ANY`` (same class, same name) but is not it."""
    forged = object.__new__(type(evstore.ANY))
    type(evstore.ANY).__init__(forged, "ANY")
    return forged


LONE = "\ud800"
HUGE = 2**63
HOSTILE: list[Any] = [
    None,
    True,
    -1,
    0,
    HUGE,
    -(2**63) - 1,
    2**64,
    2**31,
    1.5,
    float("nan"),
    "",
    LONE,
    f"a{LONE}b",
    "a\x00b",
    "x" * 300,
    "-lead",
    b"bytes",
    [],
    {},
    ("a",),
    object(),
]


class InputContract(ContractBase):
    """Bad input: InvalidInput, nothing written; on every public method."""

    def _unchanged(self, store: evstore.EventStore, call: Any) -> evstore.InvalidInput:
        head, streams = store.head_position(), store.list_streams(limit=1000)
        with pytest.raises(evstore.InvalidInput) as caught:
            call()
        assert store.head_position() == head and store.list_streams(limit=1000) == streams
        assert len(str(caught.value)) < 2000, "the message echoes the input"
        return caught.value

    def test_data_that_json_cannot_hold_is_invalid_input(self, store: evstore.EventStore) -> None:
        sid = unique()
        cases: list[dict[str, Any]] = [
            {"loop": _circular()},
            _deep(300),
            {"text": LONE},
            {LONE: 1},
            {"nested": [{"k": f"x{LONE}"}]},
            {"big": HUGE},
            {"big": [-(2**63) - 1]},
        ]
        for data in cases:
            self._unchanged(store, lambda d=data: store.append(sid, [NewEvent("T", d)]))
            self._unchanged(store, lambda d=data: store.append(sid, [NewEvent("T", {}, d)]))
        error = self._unchanged(store, lambda: store.append(sid, [NewEvent("T", _deep(300))]))
        assert "254" in str(error)
        store.append(sid, [NewEvent("T", _deep(200))])  # within the limit: stored
        # -2**63 fits in 64 bits: accepted at the top level and nested alike.
        store.append(sid, [NewEvent("T", {"a": -(2**63), "b": [-(2**63)], "c": {"d": -(2**63)}})])
        assert store.get_events(sid)[-1].data == {
            "a": -(2**63),
            "b": [-(2**63)],
            "c": {"d": -(2**63)},
        }

    def test_names_with_lone_surrogates_are_invalid_input(self, store: evstore.EventStore) -> None:
        bad = f"s-{LONE}"
        self._unchanged(store, lambda: store.append(bad, [NewEvent("T", {})]))
        self._unchanged(store, lambda: store.append(unique(), [NewEvent(bad, {})]))
        self._unchanged(store, lambda: store.get_events(bad))
        self._unchanged(store, lambda: store.read_all(category=bad))
        self._unchanged(store, lambda: store.read_all(types=[bad]))
        self._unchanged(store, lambda: store.subscribe(lambda e: None, name=bad))
        self._unchanged(store, lambda: evstore.Projection(store, bad, lambda e, tx: None))

    def test_integers_the_database_cannot_hold_are_invalid_input(
        self, store: evstore.EventStore, store_factory: StoreFactory
    ) -> None:
        sid = unique()
        store.append(sid, [NewEvent("T", {})])
        calls = [
            lambda: store.append(sid, [NewEvent("T", {})], expected_version=HUGE),
            lambda: store.get_events(sid, HUGE),
            lambda: store.get_events(sid, to_version=HUGE),
            lambda: store.get_events(sid, limit=HUGE),
            lambda: store.read_all(HUGE),
            lambda: store.read_all(limit=HUGE),
            lambda: store.list_streams(limit=HUGE),
            lambda: store.save_snapshot(Snapshot(sid, HUGE, {})),
            lambda: store.delete_stream(sid, expected_version=HUGE),
            lambda: store.subscribe(lambda e: None, batch_size=HUGE),
            lambda: store.subscribe(lambda e: None, from_position=HUGE),
            lambda: evstore.Projection(store, "p", lambda e, tx: None, batch_size=HUGE),
            lambda: store.append(sid, [NewEvent("T", {}, schema_version=2**31)]),
            lambda: store.save_snapshot(Snapshot(sid, 1, {}, schema_version=2**31)),
            lambda: store_factory.connect(page_size=HUGE),
        ]
        for call in calls:
            self._unchanged(store, call)
        # The largest values that fit are accepted where they mean something.
        store.append(sid, [NewEvent("T", {}, schema_version=2**31 - 1)])
        assert store.get_events(sid, 2**63 - 1) == []
        assert store.get_events(sid)[-1].schema_version == 2**31 - 1

    def test_a_forged_expected_version_mode_is_invalid_input(
        self, store: evstore.EventStore
    ) -> None:
        forged = _forged_mode()
        assert repr(forged) == "ANY" and forged is not evstore.ANY
        sid = unique()
        self._unchanged(store, lambda: store.append(sid, [NewEvent("T", {})], forged))  # type: ignore[arg-type]
        store.append(sid, [NewEvent("T", {})], evstore.ANY)

    def test_a_stream_id_starting_with_the_separator_has_a_readable_category(
        self, store: evstore.EventStore
    ) -> None:
        sid = f"-{unique()}"
        position = store.append(sid, [NewEvent("T", {})]).last_position
        assert [e.position for e in store.read_all(category="")] == [position]

    def test_an_event_too_large_for_the_backend_is_invalid_input_without_an_echo(
        self, store: evstore.EventStore
    ) -> None:
        sid = unique()
        marker = "Z" * 1000
        data = {"blob": marker * 17_000}  # 17 MB: over MongoDB's 16 MiB document limit
        try:
            store.append(sid, [NewEvent("T", data)])
        except evstore.InvalidInput as e:
            assert marker not in str(e) and len(str(e)) < 2000
            assert store.stream_version(sid) == 0
        else:  # a backend without such a limit stores it whole
            assert store.get_events(sid)[0].data == data

    @pytest.mark.slow
    def test_fuzz_every_public_method_with_hostile_arguments(
        self, store: evstore.EventStore
    ) -> None:
        tried: dict[str, int] = {}
        sid = unique()
        store.append(sid, [NewEvent("T", {"i": 0})])
        value = st.one_of(
            st.sampled_from(HOSTILE),
            st.sampled_from([sid, unique(), 1, 5, None]),
            st.builds(_circular),
            st.integers(),
            st.text(max_size=4),
        )

        def new_event(type_: Any, data: Any, meta: Any, version: Any) -> Any:
            return NewEvent(type_, data, meta, schema_version=version)

        def sub(**kw: Any) -> None:
            store.subscribe(lambda e: None, **kw).stop()

        methods: dict[str, Any] = {
            "append": lambda a, b, c, d: store.append(a, [new_event(b, c, None, 1)], d),
            "append_events": lambda a, b, c, d: store.append(a, b),
            "append_meta": lambda a, b, c, d: store.append(a, [new_event("T", {}, b, c)]),
            "get_events": lambda a, b, c, d: store.get_events(a, b, to_version=c, limit=d),
            "get_events_backwards": lambda a, b, c, d: store.get_events(a, backwards=b, limit=c),
            "iter_events": lambda a, b, c, d: list(store.iter_events(a, b, limit=c)),
            "read_all": lambda a, b, c, d: store.read_all(a, limit=b, types=c, category=d),
            "read_all_partition": lambda a, b, c, d: store.read_all(partition=a),
            "iter_all": lambda a, b, c, d: list(store.iter_all(a, limit=b, category=c)),
            "stream_version": lambda a, b, c, d: store.stream_version(a),
            "get_snapshot": lambda a, b, c, d: store.get_snapshot(a),
            "save_snapshot": lambda a, b, c, d: store.save_snapshot(Snapshot(a, b, c)),
            "delete_stream": lambda a, b, c, d: store.delete_stream(a, hard=b, expected_version=c),
            "list_streams": lambda a, b, c, d: store.list_streams(after=a, limit=b),
            "subscribe": lambda a, b, c, d: sub(from_position=a, name=b, batch_size=c, types=d),
            "checkpoint_name": lambda a, b, c, d: store.checkpoint_name(a),
            "projection": lambda a, b, c, d: evstore.Projection(
                store, a, lambda e, tx: None, batch_size=b, from_position=c, category=d
            ),
            "append_many": lambda a, b, c, d: store.append_many(
                [(a, [new_event(b, c, None, 1)], d), (unique(), [new_event("T", {}, None, 1)])]
            ),
            "append_many_raw": lambda a, b, c, d: store.append_many(a),
            "get_checkpoint": lambda a, b, c, d: store.get_checkpoint(a),
            "compare_and_set_checkpoint": lambda a, b, c, d: store.compare_and_set_checkpoint(
                a, b, c
            ),
            "delete_checkpoint": lambda a, b, c, d: store.delete_checkpoint(a),
            "process_manager": lambda a, b, c, d: evstore.ProcessManager(
                store, a, lambda e, outbox: None, batch_size=b, from_position=c, category=d
            ),
        }

        @settings(
            max_examples=25,
            deadline=None,
            suppress_health_check=list(HealthCheck),
            database=None,
        )
        @given(a=value, b=value, c=value, d=value)
        def fuzz(name: str, a: Any, b: Any, c: Any, d: Any) -> None:
            tried[name] = tried.get(name, 0) + 1
            head = store.head_position()
            try:
                methods[name](a, b, c, d)
            except evstore.InvalidInput:
                assert store.head_position() == head, f"{name} wrote before refusing"
            except DOCUMENTED:
                pass
            except evstore.BackendUnavailable as e:  # pragma: no cover - the failure
                pytest.fail(f"{name}{(a, b, c, d)!r:.300}: bad input reported as an outage: {e}")
            except Exception as e:  # pragma: no cover - the failure
                pytest.fail(f"{name}{(a, b, c, d)!r:.300} raised {type(e).__name__}: {e!r:.300}")

        for name in methods:
            fuzz(name)
        assert set(tried) == set(methods), f"not every method was tried: {tried}"
        print(f"fuzz: {sum(tried.values())} calls over {len(tried)} methods")
