"""evstore's logs (docs/observability.md): quiet by default, one line per event of
interest (a retry, a parked event, a reconnect, a stall), no payload unless asked."""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import evstore
from evstore import observability
from evstore.examples.users import User, registry

SECRET = "ada@secret.example"


def poison(event: evstore.RecordedEvent, tx: Any) -> None:
    if event.type == "Poison":
        raise ValueError("cannot handle this one")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[evstore.EventStore]:
    with evstore.connect(f"sqlite:///{tmp_path / 'log.db'}") as opened:
        yield opened


def lines(caplog: pytest.LogCaptureFixture, logger: str, contains: str) -> list[str]:
    return [
        r.getMessage() for r in caplog.records if r.name == logger and contains in r.getMessage()
    ]


def test_the_evstore_logger_has_a_null_handler() -> None:
    assert any(isinstance(h, logging.NullHandler) for h in logging.getLogger("evstore").handlers)


def test_a_parked_event_says_nothing_without_logging_configured(tmp_path: Path) -> None:
    code = f"""
import evstore
def poison(event, tx):
    raise ValueError("cannot handle this one")
with evstore.connect("sqlite:///{tmp_path / "quiet.db"}") as store:
    store.append("p-1", [evstore.NewEvent("Poison", {{}})])
    projection = evstore.Projection(store, "quiet", poison, retry_delay=0)
    projection.catch_up()
    print(len(projection.dead_letters()))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout, done.stderr) == (0, "1\n", "")


def test_a_parked_event_is_one_line_without_its_payload(
    store: evstore.EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="evstore")
    store.append("user-1", [evstore.NewEvent("Poison", {"email": SECRET}, {"ip": SECRET})])
    projection = evstore.Projection(store, "mailer", poison, max_attempts=3, retry_delay=0)
    projection.catch_up()
    (parked,) = lines(caplog, "evstore.projection", "parked")
    assert parked.startswith("projection mailer: parked user-1@1 (Poison, position 1)")
    assert "after 3 attempts: ValueError: cannot handle this one" in parked
    attempts = lines(caplog, "evstore.projection", "failed (attempt")
    assert len(attempts) == 3  # one line per retry
    assert SECRET not in caplog.text


def test_log_payloads_adds_data_and_metadata_to_those_lines(
    store: evstore.EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="evstore")
    store.append("user-2", [evstore.NewEvent("Poison", {"email": SECRET}, {"ip": "10.0.0.1"})])
    observability.log_payloads(True)
    try:
        evstore.Projection(store, "mailer", poison, retry_delay=0).catch_up()
    finally:
        observability.log_payloads(False)
    (parked,) = lines(caplog, "evstore.projection", "parked")
    assert f"data={{'email': '{SECRET}'}}" in parked
    assert "metadata={'ip': '10.0.0.1'}" in parked


def test_a_slow_batch_is_logged_as_a_stall(
    store: evstore.EventStore, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    caplog.set_level(logging.WARNING, logger="evstore")
    monkeypatch.setattr(observability, "STALL_SECONDS", 0.05)
    result = store.append("slow-1", [evstore.NewEvent("Slow", {"email": SECRET})])
    with store.subscribe(lambda e: time.sleep(0.2), name="slowpoke") as sub:
        assert sub.wait_until(result.positions[-1], timeout=30)
    (stall,) = lines(caplog, "evstore.subscription", "one batch took")
    assert "slowpoke" in stall
    assert SECRET not in caplog.text


def test_a_repository_retry_is_one_line(
    store: evstore.EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="evstore")
    users = evstore.Repository(store, User, registry=registry, cache=False)
    users.save(User.register("user-9", SECRET, "Ada", "Lovelace", "web"))
    other = evstore.Repository(store, User, registry=registry, cache=False)
    raced = threading.Event()

    def command(user: User) -> None:
        if not raced.is_set():  # a concurrent save lands between load and save, once
            raced.set()
            other.retry("user-9", lambda u: u.change_email("first@example.com"))
        user.change_email("second@example.com")

    users.retry("user-9", command)
    assert lines(caplog, "evstore.repository", "retry") == [
        "user-9 changed concurrently: retry 1 of 9"
    ]
    assert SECRET not in caplog.text


def test_a_lost_postgresql_listener_is_one_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.backends import postgresql

    caplog.set_level(logging.INFO, logger="evstore")
    with postgresql.factory(tmp_path) as factory, factory.connect(poll_interval=0.2) as store:
        seen: list[evstore.RecordedEvent] = []
        with store.subscribe(seen.append):
            backend: Any = store.backend
            deadline = time.monotonic() + 30
            while not backend.listening and time.monotonic() < deadline:
                time.sleep(0.01)
            with postgresql.admin_connection() as admin:
                admin.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE query = %s",
                    (f'LISTEN "evstore_{backend._schema.strip(chr(34))}"',),
                )
            while not lines(caplog, "evstore.postgresql", "LISTEN connection lost"):
                assert time.monotonic() < deadline, "no log line for the lost listener"
                time.sleep(0.01)
    assert len(lines(caplog, "evstore.postgresql", "LISTEN connection lost")) == 1


def test_a_subscription_stopped_by_its_handler_is_one_error_line(
    store: evstore.EventStore, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="evstore")
    store.append("boom-1", [evstore.NewEvent("Boom", {"email": SECRET})])

    def handler(event: evstore.RecordedEvent) -> None:
        raise RuntimeError("handler broke")

    sub = store.subscribe(handler, name="fragile")
    with pytest.raises(RuntimeError, match="handler broke"):
        sub.wait(timeout=30)
    (line,) = lines(caplog, "evstore.subscription", "stopped by an error")
    assert "fragile" in line and "handler broke" in line
    assert SECRET not in caplog.text


def test_a_nats_reconnect_is_one_line_each_way(caplog: pytest.LogCaptureFixture) -> None:
    from tests._nats_servers import NatsServer

    caplog.set_level(logging.INFO, logger="evstore")
    server = NatsServer("h17-reconnect")
    server.start()
    try:
        with evstore.connect(f"{server.url}/reconnect") as store:
            store.append("n-1", [evstore.NewEvent("E", {"email": SECRET})])
            server.stop()
            deadline = time.monotonic() + 30
            while not lines(caplog, "evstore.nats", "connection lost"):
                assert time.monotonic() < deadline, "no line for the lost connection"
                time.sleep(0.05)
            server.start()
            while not lines(caplog, "evstore.nats", "reconnected"):
                assert time.monotonic() < deadline + 30, "no line for the reconnect"
                time.sleep(0.05)
            store.append("n-1", [evstore.NewEvent("E", {})])
            assert store.stream_version("n-1") == 2
        assert len(lines(caplog, "evstore.nats", "connection lost")) == 1
        (back,) = lines(caplog, "evstore.nats", "reconnected")
        assert f"(to 127.0.0.1:{server.port})" in back
        assert SECRET not in caplog.text
    finally:
        server.remove()
