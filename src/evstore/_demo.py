"""``evstore demo``: the seed's scenario, end to end, on the embedded SQLite default."""

from __future__ import annotations

import os
import threading
from collections import Counter

from rich.console import Console
from rich.panel import Panel

import evstore
from evstore import NO_STREAM, NewEvent, Snapshot

USERS = [
    ("ada@example.com", "Ada", "Lovelace", "web"),
    ("alan@example.com", "Alan", "Turing", "mobile"),
    ("grace@example.com", "Grace", "Hopper", "web"),
    ("edsger@example.com", "Edsger", "Dijkstra", "referral"),
]


def _registered(email: str, first: str, last: str, source: str) -> NewEvent:
    return NewEvent(
        "UserRegistered",
        {"email": email, "firstName": first, "lastName": last, "registrationSource": source},
    )


def _state(events: list[evstore.RecordedEvent], start: dict[str, object]) -> dict[str, object]:
    """Fold a user's events into its state (what an aggregate's apply would do)."""
    state = dict(start)
    for e in events:
        if e.type == "UserRegistered":
            state.update(e.data, logins=0)
        elif e.type == "EmailChanged":
            state["email"] = e.data["email"]
        elif e.type == "UserLoggedIn":
            state["logins"] = int(state.get("logins", 0)) + 1  # type: ignore[call-overload]
    return state


def run_demo(path: str, console: Console) -> None:
    """Run every step of the demo against a fresh database file at ``path``."""
    from evstore.cli import events_table

    for suffix in ("", "-wal", "-shm"):
        if os.path.exists(path + suffix):
            os.remove(path + suffix)
    url = f"sqlite:///{path}"
    console.print(Panel(f"evstore demo on [bold]{url}[/] (SQLite, WAL, synchronous=FULL)"))
    with evstore.connect(url) as store:
        by_source: Counter[str] = Counter()
        received = threading.Event()

        def project(event: evstore.RecordedEvent) -> None:
            if event.type == "UserRegistered":
                by_source[event.data["registrationSource"]] += 1
            if sum(by_source.values()) == len(USERS):
                received.set()

        # 1. A subscription first: it will catch up and then receive live events.
        console.rule("1. subscribe: a users-by-source read model, fed live")
        subscription = store.subscribe(project, name="users-by-source", types=["UserRegistered"])

        # 2. Register users: one stream per user, each must be new (NO_STREAM).
        console.rule("2. register users")
        for i, user in enumerate(USERS, start=1):
            result = store.append(f"user-{i}", [_registered(*user)], expected_version=NO_STREAM)
            console.print(f"user-{i}: {user[1]} {user[2]} -> version {result.version}")
        store.append("user-1", [NewEvent("EmailChanged", {"email": "ada@lovelace.dev"})], 1)
        for _ in range(3):
            store.append("user-1", [NewEvent("UserLoggedIn", {"device": "laptop"})])

        # 3. Show a stream.
        console.rule("3. read a stream")
        console.print(events_table(store.get_events("user-1"), "user-1"))

        # 4. Two writers load the same version; the second one's append is refused.
        console.rule("4. optimistic concurrency")
        version = store.stream_version("user-2")
        store.append("user-2", [NewEvent("EmailChanged", {"email": "alan@bletchley.uk"})], version)
        try:
            store.append("user-2", [NewEvent("EmailChanged", {"email": "a@t.uk"})], version)
        except evstore.ConcurrencyError as conflict:
            console.print(f"[yellow]caught ConcurrencyError[/]: {conflict}")
            console.print(f"expected={conflict.expected}, actual={conflict.actual}: reload, retry")
            latest = store.stream_version("user-2")
            store.append("user-2", [NewEvent("EmailChanged", {"email": "a@t.uk"})], latest)
            console.print(f"retried at version {latest}: ok, now {store.stream_version('user-2')}")

        # 5. Snapshot the user at its current version; load = snapshot + later events only.
        console.rule("5. snapshots")
        events = store.get_events("user-1")
        store.save_snapshot(Snapshot("user-1", events[-1].version, _state(events, {})))
        store.append("user-1", [NewEvent("UserLoggedIn", {"device": "phone"})])
        snapshot = store.get_snapshot("user-1")
        assert snapshot is not None
        after = store.get_events("user-1", snapshot.version + 1)
        console.print(f"snapshot at version {snapshot.version}: {snapshot.data}")
        console.print(f"then {len(after)} event(s) after it -> {_state(after, snapshot.data)}")

        # 6. The subscription has received every registration.
        console.rule("6. the subscription")
        received.wait(10)
        subscription.stop()
        console.print(f"users by registration source: {dict(by_source)}")
        console.print(f"checkpoint stored at position {subscription.position}")
        console.print(f"store: {store.stats()}")
    console.print(Panel("done. Inspect it: evstore read user-1 --url sqlite:///" + path))
