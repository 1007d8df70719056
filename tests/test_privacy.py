"""Forgetting a person (crypto-shredding) on every backend, also across export and copy."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

import evstore
from evstore import NewEvent, Snapshot, ops
from evstore.domain.privacy import REDACTED, PersonalData
from evstore.domain.privacy_async import AsyncPersonalData
from evstore.errors import InvalidInput
from evstore.testing import StoreFactory

BIRTH = datetime(1990, 1, 2, tzinfo=UTC)


def _write(store: evstore.EventStore) -> PersonalData:
    personal = PersonalData(store)
    store.append(
        "user-1",
        [
            personal.new_event(
                "UserRegistered",
                {"user": "u1", "email": "ann@example.com", "born": BIRTH, "plan": "pro"},
                subject="u1",
                fields=["email", "born"],
            ),
            personal.new_event("AddressSet", {"street": "Main 1"}, subject="u1"),
        ],
    )
    store.append(
        "user-2",
        [
            personal.new_event(
                "UserRegistered", {"email": "bob@x.org"}, subject="u2", fields=["email"]
            )
        ],
    )
    return personal


def _opened(store: evstore.EventStore, personal: PersonalData) -> list[dict[str, Any]]:
    return [personal.open(e).data for e in store.read_all() if e.stream_id.startswith("user-")]


def test_forget_redacts_only_that_subjects_fields(store_factory: StoreFactory) -> None:
    with store_factory.connect() as store:
        personal = _write(store)
        before = _opened(store, personal)
        assert before[0] == {"user": "u1", "email": "ann@example.com", "born": BIRTH, "plan": "pro"}
        assert before[1] == {"street": "Main 1"}
        stored = store.get_events("user-1")[0].data
        assert "ann@example.com" not in orjson.dumps(stored, default=str).decode()
        positions = [e.position for e in store.read_all() if e.stream_id.startswith("user-")]
        assert personal.forget("u1") is True
        after = _opened(store, personal)
        assert after[0] == {"user": "u1", "email": REDACTED, "born": REDACTED, "plan": "pro"}
        assert after[1] == {"$personal": REDACTED}
        assert after[2] == {"email": "bob@x.org"}  # another subject is untouched
        # The log is intact: same events, versions and positions (the key stream is gone).
        assert [e.version for e in store.get_events("user-1")] == [1, 2]
        assert ops.verify_store(store).ok
        assert [e.position for e in store.read_all() if e.stream_id.startswith("user-")] == (
            positions
        )
        with pytest.raises(InvalidInput, match="forgotten"):
            personal.new_event("X", {"email": "again"}, subject="u1", fields=["email"])
        assert personal.forget("u1") is False


def test_subscriptions_and_rebuilt_projections_see_the_redaction(
    store_factory: StoreFactory,
) -> None:
    with store_factory.connect() as store:
        personal = _write(store)
        personal.forget("u1")
        seen: list[Any] = []
        projection = evstore.Projection(
            store,
            "emails",
            personal.opened(lambda e, tx: seen.append(e.data.get("email", "-"))),
            exactly_once=False,
            category="user",
        )
        projection.catch_up()
        assert seen == [REDACTED, "-", "bob@x.org"]


def test_a_snapshot_holding_forgotten_data_is_dropped(store_factory: StoreFactory) -> None:
    with store_factory.connect() as store:
        personal = _write(store)
        state = personal.seal("u1", {"email": "ann@example.com", "count": 2}, ["email"])
        store.save_snapshot(Snapshot("user-1", 2, state))
        opened = personal.open_snapshot(store.get_snapshot("user-1"))
        assert opened is not None
        assert opened.data == {"email": "ann@example.com", "count": 2}
        assert "ann@" not in str(store.get_snapshot("user-1"))
        personal.forget("u1")
        assert personal.open_snapshot(store.get_snapshot("user-1")) is None


def test_an_exported_and_reimported_store_still_forgets(
    store_factory: StoreFactory, tmp_path: Path
) -> None:
    path = tmp_path / "x.jsonl.gz"
    with evstore.connect("memory://") as source, store_factory.connect() as target:
        _write(source)
        ops.export_store(source, path)
        assert ops.import_store(target, path).problems == []
        personal = PersonalData(target)
        assert _opened(target, personal)[0]["email"] == "ann@example.com"
        personal.forget("u1")
        assert _opened(target, personal)[0]["email"] is REDACTED
        # Forgotten before the export: the export carries no key, only ciphertext.
        PersonalData(source).forget("u1")
        ops.export_store(source, tmp_path / "after.jsonl")
        assert b"ann@example.com" not in (tmp_path / "after.jsonl").read_bytes()


def test_a_copy_to_another_backend_still_forgets(store_factory: StoreFactory) -> None:
    with store_factory.connect() as source, evstore.connect("memory://") as target:
        _write(source)
        assert ops.copy_store(source, target).problems == []
        personal = PersonalData(target)
        assert _opened(target, personal)[2]["email"] == "bob@x.org"
        personal.forget("u2")
        assert _opened(target, personal)[2]["email"] is REDACTED
        assert _opened(source, PersonalData(source))[2]["email"] == "bob@x.org"


@dataclass
class EmailChanged:
    __personal__ = ("email",)
    __subject__ = "user"
    user: str
    email: str


def test_domain_events_mark_their_personal_fields() -> None:
    registry = evstore.EventRegistry()
    registry.register(EmailChanged)
    with evstore.connect("memory://") as store:
        personal = PersonalData(store)
        store.append("user-9", [personal.seal_event(EmailChanged("u9", "c@d.e"), registry)])
        (recorded,) = store.get_events("user-9")
        assert recorded.data["user"] == "u9" and recorded.data["email"] != "c@d.e"
        assert registry.decode(personal.open(recorded)) == EmailChanged("u9", "c@d.e")
        personal.forget("u9")
        assert personal.open(recorded).data == {"user": "u9", "email": REDACTED}


def test_the_asyncio_face_forgets_too(store_factory: StoreFactory) -> None:
    async def main() -> None:
        async with store_factory.connect_async() as store:
            personal = AsyncPersonalData(store)
            event = await personal.new_event("E", {"email": "x@y.z"}, subject="s", fields=["email"])
            await store.append("user-5", [event])
            (recorded,) = await store.get_events("user-5")
            assert (await personal.open(recorded)).data == {"email": "x@y.z"}
            assert await personal.forget("s")
            assert (await personal.open(recorded)).data == {"email": REDACTED}

    asyncio.run(main())


def test_bad_marks_are_invalid_input() -> None:
    with evstore.connect("memory://") as store:
        personal = PersonalData(store)
        with pytest.raises(InvalidInput, match="not in the data"):
            personal.seal("s", {"a": 1}, ["b"])
        with pytest.raises(InvalidInput, match="subject"):
            personal.seal("", {"a": 1})
        assert store.read_all() == []
        NewEvent("ok", {})  # the store still works


def test_forget_command(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from evstore.cli import main

    url = f"sqlite:///{tmp_path / 'p.db'}"
    with evstore.connect(url) as store:
        _write(store)
    result = CliRunner().invoke(main, ["forget", "u1", "--url", url])
    assert result.exit_code == 0 and result.stdout == "forgot u1\n"
    with evstore.connect(url) as store:
        assert _opened(store, PersonalData(store))[0]["email"] is REDACTED


def test_a_key_cache_forgets_at_once_here_and_after_its_ttl_elsewhere() -> None:
    with evstore.connect("memory://") as store:
        cached = PersonalData(store, key_cache_seconds=3600)
        event = cached.new_event("E", {"email": "a@b.c"}, subject="s", fields=["email"])
        store.append("user-1", [event])
        (recorded,) = store.get_events("user-1")
        assert cached.open(recorded).data["email"] == "a@b.c"
        PersonalData(store).forget("s")  # another instance (process) forgets
        assert cached.open(recorded).data["email"] == "a@b.c"  # within the cache's TTL
        assert PersonalData(store).open(recorded).data["email"] is REDACTED
        cached.forget("s")
        assert cached.open(recorded).data["email"] is REDACTED
        with pytest.raises(InvalidInput, match="key_cache_seconds"):
            PersonalData(store, key_cache_seconds=-1)
