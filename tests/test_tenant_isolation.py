"""Tenant stores see their tenant only: counts, head, errors, names; on every backend.

What a tenant projection's ``tx`` can see is documented in docs/domain.md ("Tenants") and
proved here: the events it is handed are its tenant's, the raw transaction is not scoped.
"""

from __future__ import annotations

import sqlite3
import uuid
from typing import Any
from urllib.parse import urlsplit

import pytest

import evstore
from evstore import NewEvent, Snapshot, TenantPartitioning
from evstore.testing import StoreFactory


def test_stats_and_head_position_count_the_tenant_only(store_factory: StoreFactory) -> None:
    with (
        store_factory.connect(tenant="acme") as acme,
        store_factory.connect(tenant="beta") as beta,
        store_factory.connect(tenant="idle") as idle,
        store_factory.connect() as whole,
    ):
        acme.append("acme_user_1", [NewEvent("T", {}) for _ in range(2)])
        acme.append("acme_user_4", [NewEvent("T", {})])
        acme.delete_stream("acme_user_4", hard=True)  # its events are gone
        acme.append("acme_user_2", [NewEvent("T", {})])
        acme.append("acme_user_3", [NewEvent("T", {}) for _ in range(2)])
        acme.delete_stream("acme_user_3")  # its events stay in the log
        acme.save_snapshot(Snapshot("acme_user_1", 2, {"n": 2}))
        # Only acme has written: its counts are the store's counts.
        shared = ("events", "streams", "snapshots")
        everything = whole.stats()
        assert {k: acme.stats()[k] for k in shared} == {k: everything[k] for k in shared}
        acme_head = acme.head_position()  # its newest event (NATS also counts delete markers)
        assert acme_head == acme.read_all()[-1].position <= whole.head_position()
        for i in range(4):
            beta.append(f"beta_order_{i}", [NewEvent("T", {}) for _ in range(3)])
        beta.save_snapshot(Snapshot("beta_order_0", 3, {}))
        assert acme.stats() == {
            "events": 5,
            "streams": 2,
            "snapshots": 1,
            "head_position": acme_head,
        }
        assert acme.head_position() == acme_head < whole.head_position()
        assert beta.stats()["events"] == 12 and beta.stats()["snapshots"] == 1
        assert beta.head_position() == beta.read_all()[-1].position
        assert idle.stats() == {"events": 0, "streams": 0, "snapshots": 0, "head_position": 0}
        assert idle.head_position() == 0
        latest = acme.append("acme_user_2", [NewEvent("T", {})]).last_position
        assert acme.head_position() == latest > acme_head  # later appends are seen


def test_a_duplicate_event_id_never_names_another_tenants_stream(
    store_factory: StoreFactory,
) -> None:
    secret = f"beta_payroll_{uuid.uuid4().hex[:6]}"
    with (
        store_factory.connect(tenant="acme") as acme,
        store_factory.connect(tenant="beta") as beta,
    ):
        taken = uuid.uuid4()
        beta.append(secret, [NewEvent("Salary", {"amount": 1}, event_id=taken)])
        with pytest.raises(evstore.DuplicateEventId) as caught:
            acme.append("acme_user_1", [NewEvent("T", {}, event_id=taken)])
        error = caught.value
        seen = [str(error), repr(error), *map(str, error.args), str(vars(error))]
        for chained in (error.__context__, error.__cause__):
            if chained is not None:
                seen += [str(chained), repr(chained)]
        assert not any("beta" in text or "payroll" in text for text in seen), seen
        assert error.stream_id is None and acme.head_position() == 0
        # Within one tenant the other stream is named: it is the tenant's own.
        acme.append("acme_user_1", [NewEvent("T", {}, event_id=(own := uuid.uuid4()))])
        with pytest.raises(evstore.DuplicateEventId, match="acme_user_1"):
            acme.append("acme_user_2", [NewEvent("T", {}, event_id=own)])


def test_tenant_names_that_could_read_another_tenants_streams_are_refused(
    store_factory: StoreFactory,
) -> None:
    wide = TenantPartitioning(separator="::")
    for name in ("acme:", "a:", "x::y"):
        with pytest.raises(evstore.InvalidInput, match="tenant"):
            store_factory.connect(tenant=name, partitioning=wide)
        with pytest.raises(evstore.InvalidInput, match="tenant"):
            wide.stream_id(name, "user", 1)
    with store_factory.connect(tenant="acme", partitioning=wide) as acme:
        acme.append(wide.stream_id("acme", "user", 1), [NewEvent("T", {})])
        assert [s.stream_id for s in acme.list_streams()] == ["acme::user::1"]
    # ":a" is a tenant of its own: its prefix ":a::" starts no other tenant's.
    with store_factory.connect(tenant=":a", partitioning=wide) as other:
        assert other.list_streams() == [] and other.read_all() == []


def _count_all_events(tx: Any, store_factory: StoreFactory) -> int | None:
    """What the raw transaction sees of the events table/collection (None: no tx)."""
    if tx is None:
        return None
    if isinstance(tx, sqlite3.Connection):
        return int(tx.execute("SELECT count(*) FROM events").fetchone()[0])
    if hasattr(tx, "in_transaction") and hasattr(tx, "client"):  # MongoDB session
        database = urlsplit(store_factory.url).path.lstrip("/")
        return int(tx.client[database]["events"].count_documents({}, session=tx))
    return int(tx.execute("SELECT count(*) FROM events").fetchone()[0])  # PostgreSQL


def test_a_tenant_projection_gets_its_events_but_its_tx_is_not_scoped(
    store_factory: StoreFactory,
) -> None:
    with (
        store_factory.connect(tenant="acme") as acme,
        store_factory.connect(tenant="beta") as beta,
    ):
        acme.append("acme_user_1", [NewEvent("T", {}) for _ in range(2)])
        last = beta.append("beta_user_1", [NewEvent("T", {}) for _ in range(3)]).last_position
        handled: list[str] = []
        projection = evstore.Projection(acme, "view", lambda e, tx: handled.append(e.stream_id))
        projection.catch_up(until=last)
        assert handled == ["acme_user_1", "acme_user_1"]
        assert projection.position == last  # beta's events skipped, never delivered
        seen = projection.query(lambda tx: _count_all_events(tx, store_factory))
        if projection.exactly_once:
            assert seen == 5  # the raw transaction sees every tenant's rows, as documented
        else:
            assert seen is None
