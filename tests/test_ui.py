"""The web viewer's JSON API (docs/ui.md): Starlette's TestClient, and a real uvicorn on a
loopback port for the live log and the ``evstore ui`` command."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

import evstore
from evstore.ui import create_app
from tests._ui_server import serving

HOSTILE = [
    "<script>window.__pwned=1</script>",
    "</textarea><script>window.__pwned=2</script>",
    '"><img src=x onerror="window.__pwned=3">',
    "'><svg onload=window.__pwned=4>",
]
"""Stream ids, types and data that would run a script if a page rendered them as HTML."""


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'ui.db'}"


@pytest.fixture
def store(url: str) -> Iterator[evstore.EventStore]:
    with evstore.connect(url) as opened:
        yield opened


def client_for(url: str, **options: Any) -> TestClient:
    app = create_app(evstore.connect_async(url), close_store=True, **options)
    return TestClient(app, base_url="http://127.0.0.1")


@pytest.fixture
def client(url: str, store: evstore.EventStore) -> Iterator[TestClient]:
    with client_for(url) as opened:
        yield opened


def test_stats_name_the_backend_and_count(store: evstore.EventStore, client: TestClient) -> None:
    store.append("order-1", [evstore.NewEvent("Placed", {}), evstore.NewEvent("Paid", {})])
    body = client.get("/api/stats").json()
    assert body["backend"] == "sqlite"
    assert body["partitions"] == 1
    assert body["stats"]["events"] == 2
    assert body["stats"]["streams"] == 1
    assert body["stats"]["head_position"] == 2


def test_streams_are_searched_and_paged(store: evstore.EventStore, client: TestClient) -> None:
    for name in ["order-1", "order-2", "user-1", "order-3", "order-4", "order-5"]:
        store.append(name, [evstore.NewEvent("E", {})])
    found, after, pages = [], None, 0
    while True:
        params = {"q": "order", "limit": 2} | ({"after": after} if after else {})
        page = client.get("/api/streams", params=params).json()
        found += [s["stream_id"] for s in page["streams"]]
        pages += 1
        after = page["next"]
        if after is None:
            break
    assert found == ["order-1", "order-2", "order-3", "order-4", "order-5"]
    assert pages == 3
    everything = client.get("/api/streams").json()
    assert [s["stream_id"] for s in everything["streams"]][-1] == "user-1"
    assert everything["streams"][0] == {"stream_id": "order-1", "version": 1, "state": "live"}


def test_a_stream_s_events_have_data_metadata_and_timestamps(
    store: evstore.EventStore, client: TestClient
) -> None:
    store.append("user-7", [evstore.NewEvent("Registered", {"email": "a@b.c"}, {"ip": "10.1"})])
    store.append("user-7", [evstore.NewEvent("Renamed", {"name": "Ada"})])
    body = client.get("/api/stream", params={"id": "user-7"}).json()
    assert body["version"] == 2
    first, second = body["events"]
    stored = store.get_events("user-7")[0]
    assert first == {
        "stream_id": "user-7",
        "version": 1,
        "position": 1,
        "partition": 0,
        "event_id": str(stored.event_id),
        "type": "Registered",
        "data": {"email": "a@b.c"},
        "metadata": {"ip": "10.1"},
        "schema_version": 1,
        "occurred_at": stored.occurred_at.isoformat(),
        "recorded_at": stored.recorded_at.isoformat(),
    }
    assert second["data"] == {"name": "Ada"}
    paged = client.get("/api/stream", params={"id": "user-7", "limit": 1}).json()
    assert [e["version"] for e in paged["events"]] == [1]
    assert paged["next"] == 2


def test_hostile_ids_types_and_data_come_back_as_json_text(
    store: evstore.EventStore, client: TestClient
) -> None:
    for text in HOSTILE:
        store.append(text, [evstore.NewEvent(text, {text: text}, {"note": text})])
    listed = client.get("/api/streams").json()["streams"]
    assert sorted(s["stream_id"] for s in listed) == sorted(HOSTILE)
    for text in HOSTILE:
        response = client.get("/api/stream", params={"id": text})
        assert response.headers["content-type"] == "application/json"
        assert response.headers["x-content-type-options"] == "nosniff"
        (event,) = response.json()["events"]
        assert (event["stream_id"], event["type"]) == (text, text)
        assert event["data"] == {text: text}
        assert event["metadata"] == {"note": text}


def test_the_log_shows_its_newest_events(store: evstore.EventStore, client: TestClient) -> None:
    for i in range(60):
        store.append(f"s-{i}", [evstore.NewEvent("E", {"i": i})])
    body = client.get("/api/log", params={"limit": 5}).json()
    assert [e["position"] for e in body["events"]] == [56, 57, 58, 59, 60]
    assert body["head"] == 60


def test_subscriptions_show_their_lag_and_parked_events(
    store: evstore.EventStore, client: TestClient
) -> None:
    def handler(event: evstore.RecordedEvent, tx: Any) -> None:
        if event.type == "Poison":
            raise ValueError("<b>no</b>")

    store.append("p-1", [evstore.NewEvent("Fine", {}), evstore.NewEvent("Poison", {})])
    evstore.Projection(store, "mailer", handler, retry_delay=0).catch_up()
    store.append("p-1", [evstore.NewEvent("Later", {}) for _ in range(3)])
    (info,) = client.get("/api/subscriptions").json()["subscriptions"]
    assert info == {"name": "mailer", "position": 2, "lag": 3, "lag_capped": False, "parked": 1}
    (letter,) = client.get("/api/parked", params={"name": "mailer"}).json()["parked"]
    assert (letter["position"], letter["stream_id"], letter["type"]) == (2, "p-1", "Poison")
    assert letter["error"] == "ValueError: <b>no</b>"
    assert letter["attempts"] == 3


def test_history_gives_the_append_rate_and_lags(
    url: str, store: evstore.EventStore, client: TestClient
) -> None:
    viewer = client.app.state.viewer  # type: ignore[attr-defined]
    store.append("c-1", [evstore.NewEvent("E", {})])
    client.portal.call(viewer.sample)  # type: ignore[union-attr]
    store.append("c-1", [evstore.NewEvent("E", {}) for _ in range(9)])
    with store.subscribe(lambda e: None, name="reader", from_position=4) as sub:
        assert sub.wait_until(10, timeout=30)
    store.append("c-1", [evstore.NewEvent("E", {}) for _ in range(5)])
    client.portal.call(viewer.sample)  # type: ignore[union-attr]
    points = client.get("/api/history").json()["points"]
    assert [p["head"] for p in points[-2:]] == [1, 15]
    assert points[-1]["rate"] > 0
    assert points[-1]["lags"] == {"reader": 5}


def test_bad_arguments_are_400(client: TestClient) -> None:
    for path, params in [
        ("/api/streams", {"limit": "lots"}),
        ("/api/streams", {"limit": "0"}),
        ("/api/stream", {"id": ""}),
        ("/api/stream", {"id": "s", "from": "-1"}),
        ("/api/live", {"after": "x"}),
    ]:
        response = client.get(path, params=params)
        assert response.status_code == 400, (path, params)
        assert response.json()["error"]


def test_every_route_is_read_only(client: TestClient) -> None:
    app: Any = client.app
    paths = []
    for route in app.routes:
        if isinstance(route, Route):
            assert route.methods == {"GET", "HEAD"}, route.path
            paths.append(route.path)
        else:
            assert isinstance(route, Mount) and route.path == "/static"
    for path in [*paths, "/static/app.js"]:
        for method in ("POST", "PUT", "PATCH", "DELETE"):
            assert client.request(method, path).status_code == 405, (method, path)


def test_pages_forbid_inline_scripts_and_other_origins(client: TestClient) -> None:
    response = client.get("/")
    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "default-src 'none'" in policy
    assert "frame-ancestors 'none'" in policy
    assert '<script src="/static/app.js"' in response.text
    assert client.get("/static/app.js").status_code == 200


def test_only_loopback_host_names_are_served(client: TestClient) -> None:
    assert client.get("/api/stats", headers={"host": "localhost:8000"}).status_code == 200
    # a page on another site whose name now resolves to 127.0.0.1 (DNS rebinding)
    assert client.get("/api/stats", headers={"host": "evil.example"}).status_code == 400


def test_a_token_is_required_when_set(url: str, store: evstore.EventStore) -> None:
    with client_for(url, token="s3cret") as client:
        assert client.get("/api/stats").status_code == 401
        assert client.get("/").status_code == 401
        assert client.get("/api/stats", params={"token": "wrong"}).status_code == 401
        assert client.get("/api/stats", params={"token": "s3cret"}).status_code == 200
        assert client.get("/api/stats", headers={"x-evstore-token": "s3cret"}).status_code == 200
        bearer = {"authorization": "Bearer s3cret"}
        assert client.get("/api/stats", headers=bearer).status_code == 200
        assert client.get("/", params={"token": "s3cret"}).status_code == 200
        assert client.get("/static/app.js").status_code == 200  # no data in static files


def read_events(lines: Iterator[str], count: int) -> list[dict[str, Any]]:
    """The next ``count`` events of a server-sent-events response's lines."""
    found: list[dict[str, Any]] = []
    kind = None
    for line in lines:
        if line.startswith("event: "):
            kind = line[7:]
        elif line.startswith("data: ") and kind == "event":
            found.append(json.loads(line[6:]))
            if len(found) == count:
                return found
    raise AssertionError(f"the stream ended after {len(found)} events")


def test_the_live_log_sends_events_appended_after_it_opened(
    url: str, store: evstore.EventStore
) -> None:
    store.append("live-1", [evstore.NewEvent("Before", {})])
    store.append("other-1", [evstore.NewEvent("Elsewhere", {})])
    app = create_app(evstore.connect_async(url), close_store=True)
    with serving(app) as base, httpx.Client(base_url=base, timeout=30) as http:
        with http.stream("GET", "/api/live") as everything:
            assert everything.headers["content-type"].startswith("text/event-stream")
            lines = everything.iter_lines()
            backlog = read_events(lines, 2)
            store.append("live-1", [evstore.NewEvent("After", {"n": 1})])
            (fresh,) = read_events(lines, 1)
        assert [e["type"] for e in backlog] == ["Before", "Elsewhere"]
        assert (fresh["type"], fresh["data"], fresh["position"]) == ("After", {"n": 1}, 3)
        params = {"stream": "live-1", "after": "1"}
        with http.stream("GET", "/api/live", params=params) as one:
            lines = one.iter_lines()
            (first,) = read_events(lines, 1)  # after position 1: the event appended above
            store.append("other-1", [evstore.NewEvent("Elsewhere", {})])
            store.append("live-1", [evstore.NewEvent("Again", {})])
            (second,) = read_events(lines, 1)
        assert [first["version"], second["version"]] == [2, 3]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.mark.parametrize("given", ["option", "environment"])
def test_the_command_serves_on_loopback(url: str, store: evstore.EventStore, given: str) -> None:
    store.append("cli-1", [evstore.NewEvent("E", {})])
    port = free_port()
    command = [sys.executable, "-m", "evstore.cli", "ui", "--url", url, "--port", str(port)]
    env = dict(os.environ)
    if given == "option":
        command += ["--token", "t0k"]
    else:
        env["EVSTORE_UI_TOKEN"] = "t0k"
    server = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=env)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                response = httpx.get(f"http://127.0.0.1:{port}/api/stats?token=t0k", timeout=5)
                break
            except httpx.TransportError:
                assert server.poll() is None, server.stderr.read() if server.stderr else ""
                assert time.monotonic() < deadline, "evstore ui did not answer"
                time.sleep(0.1)
        assert response.json()["stats"]["events"] == 1
        unauthorised = httpx.get(f"http://127.0.0.1:{port}/api/stats", timeout=5)
        assert unauthorised.status_code == 401
    finally:
        server.terminate()
        server.wait(30)
    assert server.stderr is not None
    assert f"at http://127.0.0.1:{port}/?token=t0k" in server.stderr.read()


def test_the_command_needs_a_token_beyond_loopback(url: str, store: evstore.EventStore) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "evstore.cli", "ui", "--url", url, "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "NO_COLOR": "1"},
    )
    assert done.returncode == 1
    assert "--host 0.0.0.0 serves the viewer beyond this machine: give it a --token" in done.stderr


def test_the_command_refuses_a_missing_database(tmp_path: Path) -> None:
    missing = f"sqlite:///{tmp_path / 'nope.db'}"
    done = subprocess.run(
        [sys.executable, "-m", "evstore.cli", "ui", "--url", missing],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "no evstore database at" in done.stderr
    assert not (tmp_path / "nope.db").exists()


@pytest.mark.parametrize("name", ["memory", "postgresql", "mongodb", "nats"])
def test_the_api_reads_every_backend(name: str, tmp_path: Path) -> None:
    import importlib

    module = importlib.import_module(f"tests.backends.{name}")
    with module.factory(tmp_path) as factory, factory.connect() as store:
        result = store.append("order-1", [evstore.NewEvent("Placed", {"total": 3})])
        with store.subscribe(lambda e: None, name="audit") as sub:
            assert sub.wait_until(result.positions[-1], timeout=30)
        store.append(HOSTILE[0], [evstore.NewEvent(HOSTILE[1], {HOSTILE[2]: HOSTILE[3]})])
        app = create_app(factory.connect_async(), close_store=True)
        with TestClient(app, base_url="http://127.0.0.1") as client:
            stats = client.get("/api/stats").json()
            assert (stats["backend"], stats["stats"]["events"]) == (name, 2)
            streams = client.get("/api/streams").json()["streams"]
            assert sorted(s["stream_id"] for s in streams) == sorted(["order-1", HOSTILE[0]])
            (event,) = client.get("/api/stream", params={"id": HOSTILE[0]}).json()["events"]
            assert (event["type"], event["data"]) == (HOSTILE[1], {HOSTILE[2]: HOSTILE[3]})
            subscriptions = client.get("/api/subscriptions").json()["subscriptions"]
            assert [(s["name"], s["lag"]) for s in subscriptions] == [("audit", 1)]


def test_a_store_of_several_partitions_follows_one_stream_live(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'p4.db'}"
    with evstore.connect(url, partitions=4) as store:
        for i in range(8):
            store.append(f"noise-{i}", [evstore.NewEvent("Noise", {})])
        first = store.append("order-9", [evstore.NewEvent("Placed", {})])
        app = create_app(evstore.connect_async(url), close_store=True)
        with serving(app) as base, httpx.Client(base_url=base, timeout=30) as http:
            assert http.get("/api/stats").json()["partitions"] == 4
            (shown,) = http.get("/api/stream", params={"id": "order-9"}).json()["events"]
            assert shown["partition"] == store.partition_of("order-9") == 3  # not 0
            params = {"stream": "order-9", "after": shown["position"]}
            params["partition"] = shown["partition"]
            with http.stream("GET", "/api/live", params=params) as live:
                lines = live.iter_lines()
                for i in range(8):
                    store.append(f"noise-{i}", [evstore.NewEvent("Noise", {})])
                store.append("order-9", [evstore.NewEvent("Paid", {})])
                (paid,) = read_events(lines, 1)
        assert (paid["type"], paid["version"]) == ("Paid", 2)
        assert first.positions[0] == shown["position"]
