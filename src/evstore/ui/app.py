"""The viewer's ASGI app: a JSON API over an async store, the live log as server-sent
events, and the static page (plain HTML, JS and CSS shipped in ``evstore/ui/static``).

Read-only by construction: every route is GET (HEAD) and calls only reading methods of
the store. Stored data leaves as JSON only; the page puts it into the DOM with
``textContent``, never as HTML.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

import evstore
from evstore.errors import EvstoreError, InvalidInput
from evstore.observability import system_name
from evstore.ops.verify_async import subscriptions

STATIC = Path(__file__).parent / "static"
MAX_LIMIT = 500
SEARCH_SCAN = 5000
"""Stream ids one search request reads at most (it returns where to go on from)."""
LIVE_BACKLOG = 50
"""Events of the log the live view shows from before it opened."""
HISTORY_SECONDS = 600

# Content-Security-Policy: scripts and styles from this server only, no inline code.
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


def _json(value: Any, status: int = 200) -> Response:
    body = orjson.dumps(value, default=str, option=orjson.OPT_NON_STR_KEYS)
    return Response(body, status, media_type="application/json")


def event_json(event: evstore.RecordedEvent) -> dict[str, Any]:
    """An event as the API sends it (timestamps ISO 8601, UUIDs as text)."""
    return {
        "stream_id": event.stream_id,
        "version": event.version,
        "position": event.position,
        "partition": event.partition,
        "event_id": str(event.event_id),
        "type": event.type,
        "data": event.data,
        "metadata": event.metadata,
        "schema_version": event.schema_version,
        "occurred_at": event.occurred_at.isoformat(),
        "recorded_at": event.recorded_at.isoformat(),
    }


def _int(request: Request, name: str, default: int, low: int = 0, high: int | None = None) -> int:
    raw = request.query_params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be an integer, got {raw!r}") from None
    if value < low or (high is not None and value > high):
        raise InvalidInput(f"{name} must be between {low} and {high}, got {value}")
    return value


@dataclass
class Sample:
    """One point of the chart: when, the log's head, and each subscription's lag."""

    at: float
    head: int
    lags: dict[str, int]


@dataclass
class Viewer:
    """The state behind the app: the store and the chart's recent samples."""

    store: evstore.AsyncEventStore
    sample_interval: float = 5.0
    samples: deque[Sample] = field(default_factory=deque)
    closing: asyncio.Event = field(default_factory=asyncio.Event)

    async def sample(self) -> None:
        """Take one sample; keep the last ``HISTORY_SECONDS``."""
        head = await self.store.head_position()
        lags = {info.name: info.lag for info in await subscriptions(self.store)}
        now = time.time()
        self.samples.append(Sample(now, head, lags))
        while self.samples and self.samples[0].at < now - HISTORY_SECONDS:
            self.samples.popleft()

    async def sampler(self) -> None:
        """Sample every ``sample_interval`` seconds until the app closes."""
        while not self.closing.is_set():
            with contextlib.suppress(EvstoreError):
                await self.sample()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.closing.wait(), self.sample_interval)


class TokenGuard:
    """Requires the token (header ``Authorization: Bearer T``, ``X-Evstore-Token: T`` or
    query ``?token=T``) on every path but the static files."""

    def __init__(self, app: ASGIApp, token: str) -> None:
        self.app = app
        self.token = token.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith("/static/"):
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        given = request.headers.get("x-evstore-token") or request.query_params.get("token")
        auth = request.headers.get("authorization", "")
        if auth.lower().startswith("bearer "):
            given = auth[7:]
        if given is None or not secrets.compare_digest(given.encode(), self.token):
            response = JSONResponse(
                {"error": "this viewer needs its token: ?token=... or an X-Evstore-Token header"},
                401,
            )
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Any) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)


Endpoint = Callable[[Request], Awaitable[Response]]


def _errors(endpoint: Endpoint) -> Endpoint:
    async def guarded(request: Request) -> Response:
        try:
            return await endpoint(request)
        except InvalidInput as e:
            return _json({"error": str(e)}, 400)
        except EvstoreError as e:
            return _json({"error": f"{type(e).__name__}: {e}"}, 503)

    return guarded


def create_app(
    store: evstore.AsyncEventStore,
    *,
    token: str | None = None,
    allowed_hosts: list[str] | None = None,
    sample_interval: float = 5.0,
    close_store: bool = False,
) -> Starlette:
    """The viewer over ``store``. ``token``: required on every request (but static files);
    ``allowed_hosts``: the Host headers accepted (default: loopback names only, which
    stops DNS-rebinding pages from reading the API)."""
    viewer = Viewer(store, sample_interval)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(viewer.sampler())
        try:
            yield
        finally:
            viewer.closing.set()
            await task
            if close_store:
                await store.close()

    async def index(request: Request) -> Response:
        return FileResponse(STATIC / "index.html")

    @_errors
    async def stats(request: Request) -> Response:
        counts = dict(await store.stats())
        return _json(
            {
                "url": store.url,
                "backend": system_name(store.backend),
                "partitions": store.partitions,
                "stats": counts,
            }
        )

    @_errors
    async def streams(request: Request) -> Response:
        """Streams in id order after ``after``; ``q`` keeps ids containing it."""
        after = request.query_params.get("after") or None
        limit = _int(request, "limit", 50, 1, MAX_LIMIT)
        query = request.query_params.get("q", "")
        found: list[dict[str, Any]] = []
        scanned = 0
        following: str | None = after
        more = False
        while len(found) < limit and scanned < SEARCH_SCAN:
            page = await store.list_streams(after=following, limit=min(500, SEARCH_SCAN))
            if not page:
                break
            for summary in page:
                scanned += 1
                following = summary.stream_id
                if query in summary.stream_id:
                    found.append(
                        {
                            "stream_id": summary.stream_id,
                            "version": summary.version,
                            "state": summary.state,
                        }
                    )
                    if len(found) == limit:
                        break
            more = len(page) == min(500, SEARCH_SCAN) or len(found) == limit
        return _json({"streams": found, "next": following if more else None})

    @_errors
    async def stream(request: Request) -> Response:
        stream_id = request.query_params.get("id", "")
        start = _int(request, "from", 1, 1)
        limit = _int(request, "limit", 100, 1, MAX_LIMIT)
        events = await store.get_events(stream_id, start, limit=limit)
        version = await store.stream_version(stream_id)
        return _json(
            {
                "stream_id": stream_id,
                "version": version,
                "events": [event_json(e) for e in events],
                "next": events[-1].version + 1 if len(events) == limit else None,
            }
        )

    @_errors
    async def log(request: Request) -> Response:
        """The newest ``limit`` events of the log (a store of one partition)."""
        limit = _int(request, "limit", LIVE_BACKLOG, 1, MAX_LIMIT)
        head = await store.head_position()
        if store.partitions > 1:
            return _json({"events": [], "head": head})
        events = await store.read_all(max(0, head - limit), limit=limit)
        return _json({"events": [event_json(e) for e in events], "head": head})

    async def live(request: Request) -> Response:
        """Server-sent events: each new event of the log (``stream=ID``: of one stream),
        after ``after`` (a position in ``partition``), else after the last
        ``LIVE_BACKLOG`` events (a store of one partition) or the head."""
        try:
            stream_id = request.query_params.get("stream") or None
            filters: dict[str, Any] = {} if stream_id is None else {"stream_id": stream_id}
            cursor = await store.head()
            if "after" in request.query_params:  # from a position of one partition on
                partition = _int(request, "partition", 0, 0, store.partitions - 1)
                start = evstore.LogCursor.start(store.partitions)
                cursor = start.moved(partition, _int(request, "after", 0))
            elif store.partitions == 1:
                cursor = evstore.LogCursor((max(0, cursor[0] - LIVE_BACKLOG),))
            await store.read_all(cursor, limit=1, **filters)  # bad arguments fail here
        except InvalidInput as e:
            return _json({"error": str(e)}, 400)

        async def events() -> AsyncIterator[bytes]:
            nonlocal cursor
            yield b": evstore live log\n\n"
            while not viewer.closing.is_set():
                page = await store.read_all(cursor, limit=100, **filters)
                for event in page:
                    cursor = cursor.advanced(event)
                    body = orjson.dumps(event_json(event), default=str)
                    yield b"event: event\ndata: " + body + b"\n\n"
                if len(page) < 100:
                    await store.backend.wait_for_events(sum(cursor.positions), 1.0)
                    yield b": keep-alive\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    @_errors
    async def subscription_list(request: Request) -> Response:
        return _json(
            {
                "subscriptions": [
                    {
                        "name": info.name,
                        "position": info.position,
                        "lag": info.lag,
                        "lag_capped": info.lag_capped,
                        "parked": info.parked,
                    }
                    for info in await subscriptions(store)
                ]
            }
        )

    @_errors
    async def parked(request: Request) -> Response:
        name = request.query_params.get("name", "")
        after = _int(request, "after", 0)
        limit = _int(request, "limit", 100, 1, MAX_LIMIT)
        letters = await store.backend.dead_letters(name, after, limit)
        return _json({"parked": [letter._asdict() for letter in letters]})

    async def history(request: Request) -> Response:
        """The chart's samples: time, head, appends per second since the previous one,
        and the lag of each subscription."""
        points = []
        previous: Sample | None = None
        for sample in viewer.samples:
            rate = 0.0
            if previous is not None and sample.at > previous.at:
                rate = max(0, sample.head - previous.head) / (sample.at - previous.at)
            points.append({"at": sample.at, "head": sample.head, "rate": rate, "lags": sample.lags})
            previous = sample
        return _json({"interval": viewer.sample_interval, "points": points})

    routes = [
        Route("/", index),
        Route("/api/stats", stats),
        Route("/api/streams", streams),
        Route("/api/stream", stream),
        Route("/api/log", log),
        Route("/api/live", live),
        Route("/api/subscriptions", subscription_list),
        Route("/api/parked", parked),
        Route("/api/history", history),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [
        Middleware(SecurityHeaders),
        Middleware(
            TrustedHostMiddleware,
            allowed_hosts=allowed_hosts or ["127.0.0.1", "localhost"],
        ),
    ]
    if token:
        middleware.append(Middleware(TokenGuard, token=token))
    app = Starlette(routes=routes, middleware=middleware, lifespan=lifespan)
    app.state.viewer = viewer
    return app


def server(app: Starlette, **config: Any) -> Any:
    """A ``uvicorn.Server`` for the viewer that ends its live streams when it shuts down
    (else they would hold the shutdown until its grace period runs out)."""
    import uvicorn

    viewer: Viewer = app.state.viewer

    class ViewerServer(uvicorn.Server):
        async def shutdown(self, sockets: Any = None) -> None:
            viewer.closing.set()
            await super().shutdown(sockets)

    options = {"log_level": "warning", "timeout_graceful_shutdown": 3, **config}
    return ViewerServer(uvicorn.Config(app, **options))
