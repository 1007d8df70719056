"""The web viewer in a real browser: headless Chromium (Debian's /usr/bin/chromium) driven
by Playwright, against a real uvicorn on a loopback port and an SQLite file the test fills.

Without the browser the test is skipped, except where ``EVSTORE_REQUIRE_BROWSER=1`` (CI
sets it): there it fails. Screenshots go to ``$EVSTORE_SCREENSHOTS`` when set (``docs/img``
regenerates the pictures of docs/ui.md), else to the test's temporary directory.
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

import evstore
from evstore.ui import create_app
from tests._ui_server import serving
from tests.test_ui import HOSTILE

CHROMIUM = Path("/usr/bin/chromium")
TOKEN = "browser-t0k"


def missing(reason: str) -> None:
    if os.environ.get("EVSTORE_REQUIRE_BROWSER") == "1":
        pytest.fail(f"{reason} (EVSTORE_REQUIRE_BROWSER=1: the browser test must run)")
    pytest.skip(reason)


@pytest.fixture
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing("playwright is not installed (pip install -e '.[dev]')")
    if not CHROMIUM.exists():
        missing(f"no Chromium at {CHROMIUM} (apt-get install -y chromium chromium-driver)")
    with sync_playwright() as p:
        launched = p.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"]
        )
        yield launched
        launched.close()


@pytest.fixture
def shots(tmp_path: Path) -> Path:
    where = Path(os.environ.get("EVSTORE_SCREENSHOTS") or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    return where


def fill(store: evstore.EventStore) -> None:
    """Streams, a projection with a parked event, a subscription behind, hostile ids."""
    store.append(
        "order-1",
        [
            evstore.NewEvent("OrderPlaced", {"total": 42.5, "lines": [{"sku": "A-1", "qty": 2}]}),
            evstore.NewEvent("OrderPaid", {"method": "card"}, {"correlation_id": "c-77"}),
            evstore.NewEvent("OrderPacked", {"boxes": 1}),
        ],
    )
    for i in range(1, 13):
        store.append(f"user-{i}", [evstore.NewEvent("UserRegistered", {"n": i})])

    def mailer(event: evstore.RecordedEvent, tx: Any) -> None:
        if event.stream_id == "user-3":
            raise ValueError("mail server refused user-3")

    evstore.Projection(store, "mailer", mailer, retry_delay=0).catch_up()
    with store.subscribe(lambda e: None, name="reporting", from_position=0) as sub:
        sub.wait_until(5, timeout=30)
    for text in HOSTILE:
        store.append(text, [evstore.NewEvent(text, {text: text, "note": text}, {"m": text})])


def test_the_viewer_in_chromium(browser: Any, shots: Path, tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'browser.db'}"
    with evstore.connect(url) as store:
        fill(store)
        app = create_app(evstore.connect_async(url), token=TOKEN, sample_interval=0.25)
        with serving(app) as base:
            page = browser.new_page(viewport={"width": 1200, "height": 900})
            problems: list[str] = []
            page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            page.on(
                "console",
                lambda m: (
                    problems.append(f"console {m.type}: {m.text}") if m.type == "error" else None
                ),
            )
            page.on(
                "response",
                lambda r: problems.append(f"{r.status} {r.url}") if r.status != 200 else None,
            )
            home = f"{base}/?token={TOKEN}"

            # Overview: stats, then the chart fills while a writer appends.
            page.goto(home)
            page.wait_for_selector("#stats td:text-is('events')")
            writer_done = threading.Event()

            def write() -> None:
                for burst in (5, 20, 10, 30, 15, 5):
                    for i in range(burst):
                        store.append(f"load-{burst}", [evstore.NewEvent("Load", {"i": i})])
                    time.sleep(0.3)
                writer_done.set()

            writer = threading.Thread(target=write)
            writer.start()
            writer.join(60)
            assert writer_done.is_set()
            page.wait_for_function(  # redrawn every 5 s: until it shows the bursts
                "() => /peak ([0-9.]+) appends/.exec(document.getElementById('chart-legend')"
                ".textContent)?.[1] > 5",
                timeout=30_000,
            )
            page.screenshot(path=str(shots / "ui-overview.png"), full_page=True)

            # Streams: search and paging.
            page.click("#nav-streams")
            page.wait_for_selector("#streams tbody a")
            page.fill("#search-q", "user-1")
            page.click("#search button")
            page.wait_for_function(
                "() => [...document.querySelectorAll('#streams tbody a')]"
                ".map(a => a.textContent).join() === 'user-1,user-10,user-11,user-12'"
            )
            page.fill("#search-q", "")
            page.click("#search button")
            page.wait_for_selector("#streams tbody a:text-is('order-1')")
            page.screenshot(path=str(shots / "ui-streams.png"), full_page=True)

            # One stream: its events, then one appended now appears live.
            page.click("#streams tbody a:text-is('order-1')")
            page.wait_for_function("() => document.querySelectorAll('.event').length === 3")
            assert page.text_content("#stream-id") == "order-1"
            assert '"correlation_id": "c-77"' in page.text_content(".event:nth-child(2)")
            store.append("order-1", [evstore.NewEvent("OrderShipped", {"carrier": "DHL"})])
            page.wait_for_selector(".event.fresh h3:text-is('#4 OrderShipped')", timeout=15_000)
            assert page.text_content("#stream-version") == "4"
            page.screenshot(path=str(shots / "ui-stream.png"), full_page=True)

            # Hostile ids, types and data are text, in every view.
            for text in HOSTILE:
                page.goto(f"{home}#/stream/{quote(text, safe='')}")
                page.wait_for_function(
                    "t => document.getElementById('stream-id').textContent === t", arg=text
                )
                assert page.text_content(".event h3") == f"#1 {text}"
                data = json.loads(page.text_content(".event pre.data"))
                assert data == {text: text, "note": text}
                assert json.loads(page.text_content(".event pre.metadata")) == {"m": text}
            page.goto(f"{home}#/streams")
            page.wait_for_selector("#streams tbody a")
            listed = page.eval_on_selector_all(
                "#streams tbody a", "links => links.map(a => a.textContent)"
            )
            assert set(HOSTILE) <= set(listed)

            # The global log, live.
            page.click("#nav-live")
            page.wait_for_selector("#live-state:text-is('following')")
            for text in HOSTILE:  # the same again, arriving live
                store.append(text, [evstore.NewEvent(text, {text: text})])
                page.wait_for_selector(f"#live tbody td:text-is({quote_css(text)})")
            store.append("order-2", [evstore.NewEvent("OrderPlaced", {"total": 7})])
            page.wait_for_selector("#live tbody tr:first-child a:text-is('order-2')")
            page.screenshot(path=str(shots / "ui-live.png"), full_page=False)

            # Subscriptions and projections: lag and parked events.
            page.click("#nav-subscriptions")
            page.wait_for_selector("#subscriptions tbody td:text-is('mailer')")
            page.click("#subscriptions tbody tr:has(td:text-is('mailer')) a")
            page.wait_for_selector("#parked tbody a:text-is('user-3')")
            error = page.text_content("#parked tbody td:nth-child(6)")
            assert error == "ValueError: mail server refused user-3"
            page.screenshot(path=str(shots / "ui-subscriptions.png"), full_page=True)

            # Nothing stored ran as code or became markup.
            assert page.evaluate("window.__pwned") is None
            assert page.evaluate("document.querySelectorAll('img, svg, textarea').length") == 0
            scripts = page.eval_on_selector_all("script", "s => s.map(x => x.src)")
            assert scripts == [f"{base}/static/app.js"]
            assert problems == [], "\n".join(problems)
            page.close()
    for name in ("overview", "streams", "stream", "live", "subscriptions"):
        assert (shots / f"ui-{name}.png").stat().st_size > 10_000


def quote_css(text: str) -> str:
    """``text`` as a quoted string for Playwright's ``:text-is()``."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def test_a_missing_browser_fails_where_it_is_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVSTORE_REQUIRE_BROWSER", "1")
    with pytest.raises(pytest.fail.Exception, match="must run"):
        missing("no Chromium")
    monkeypatch.delenv("EVSTORE_REQUIRE_BROWSER")
    with pytest.raises(pytest.skip.Exception):
        missing("no Chromium")
