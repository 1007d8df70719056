"""Parked events (a projection's dead letters) from the library: list, replay, discard."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import evstore
from evstore import NewEvent, ops
from evstore.cli import main
from evstore.errors import InvalidInput
from evstore.testing import StoreFactory


def test_parked_events_are_listed_replayed_and_discarded(store_factory: StoreFactory) -> None:
    with store_factory.connect() as store:
        for i in range(6):
            store.append(f"p-{i}", [NewEvent("E", {"bad": i % 2 == 1, "i": i})])
        failing = {"on": True}
        handled: list[int] = []

        def handler(event: evstore.RecordedEvent, tx: Any) -> None:
            if failing["on"] and event.data["bad"]:
                raise ValueError(f"cannot handle {event.data['i']}")
            handled.append(event.data["i"])

        projection = evstore.Projection(
            store, "parks", handler, max_attempts=1, retry_delay=0, exactly_once=False
        )
        projection.catch_up(until=store.head_position())
        parked = ops.parked_events(store, "parks")
        assert [(p.stream_id, p.error) for p in parked] == [
            (f"p-{i}", f"ValueError: cannot handle {i}") for i in (1, 3, 5)
        ]
        assert [p.stream_id for p in ops.parked_events(store, "parks", limit=1)] == ["p-1"]
        assert ops.parked_events(store, "other") == []
        assert projection.replay() == 0  # still failing: all stay, attempts counted
        assert [p.attempts for p in ops.parked_events(store, "parks")] == [2, 2, 2]
        failing["on"] = False
        assert projection.replay(parked[0].position) == 1
        assert ops.discard_parked(store, "parks", parked[1].position)
        assert not ops.discard_parked(store, "parks", parked[1].position)
        assert [p.stream_id for p in ops.parked_events(store, "parks")] == ["p-5"]
        assert projection.replay() == 1
        assert ops.parked_events(store, "parks") == []
        assert sorted(handled) == [0, 1, 2, 4, 5]  # 3 was discarded, never handled
        assert {s.name: s.parked for s in ops.subscriptions(store)}["parks"] == 0
        with pytest.raises(InvalidInput):
            ops.parked_events(store, "parks", limit=0)
        with pytest.raises(InvalidInput):
            ops.discard_parked(store, "parks", -1)


def test_parked_events_of_a_store_of_several_log_partitions(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p4.db'}"
    with evstore.connect(url, partitions=4) as store:
        streams = [f"p-{i}" for i in range(40)]
        bad = {}  # one failing stream per partition
        for sid in streams:
            bad.setdefault(store.partition_of(sid), sid)
        assert len(bad) == 4
        for sid in streams:
            store.append(sid, [NewEvent("E", {"bad": sid in bad.values()})])

        def handler(event: evstore.RecordedEvent, tx: Any) -> None:
            if event.data["bad"]:
                raise ValueError(f"cannot handle {event.stream_id}")

        projection = evstore.Projection(
            store, "parks", handler, max_attempts=1, retry_delay=0, exactly_once=False
        )
        projection.catch_up(until=store.head())
        every = ops.parked_events(store, "parks")
        assert sorted(p.stream_id for p in every) == sorted(bad.values())
        assert every == projection.dead_letters()
        for j, sid in bad.items():
            (only,) = ops.parked_events(store, "parks", partition=j)
            assert (only.stream_id, only.name) == (sid, f"parks#{j}")
        with pytest.raises(InvalidInput):
            ops.discard_parked(store, "parks", every[0].position)  # which partition's?
        with pytest.raises(InvalidInput):
            ops.parked_events(store, "parks", partition=4)

        one = ops.parked_events(store, "parks", partition=2)[0]
        runner = CliRunner()
        listed = runner.invoke(main, ["subscriptions", "--url", url, "parked", "parks"])
        rows = [r.split("\t") for r in listed.stdout.splitlines()]
        assert rows[0][:2] == ["partition", "position"]
        assert sorted((r[0], r[2]) for r in rows[1:]) == sorted(
            (str(j), sid) for j, sid in bad.items()
        )
        args = ["subscriptions", "--url", url, "discard", "parks", str(one.position)]
        assert runner.invoke(main, args).exit_code != 0  # no partition given
        dropped = runner.invoke(main, [*args, "--partition", "2"])
        assert dropped.exit_code == 0, dropped.output
        assert ops.parked_events(store, "parks", partition=2) == []
        assert len(ops.parked_events(store, "parks")) == 3
