"""The dashboard end to end in a real headless browser: Debian's chromium driven by Playwright.

The story of an operator: events are published, one fails; the dashboard shows the counts;
the failed item shows its payload and traceback; the worker is stopped, the bug fixed, Retry
clicked: the item is ready again, and once the worker is back, done. Pending items are
cancelled from the item list. Screenshots go to the test's temporary folder.
"""

from __future__ import annotations

import http.server
import os
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests.web._live import Live, demo_app, live_server
from tests.web._poll import wait_for_state
from tests.web.test_api import publish
from wrkr import Wrkr
from wrkr_memory import MemoryBackend, MemoryStore

CHROMIUM = "/usr/bin/chromium"
WAIT_MS = 10_000



@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless (`playwright install` cannot download here)."""
    if not Path(CHROMIUM).exists():
        reason = f"{CHROMIUM} is missing (scripts/debian-packages.sh installs it)"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)
        pytest.skip(reason)
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, headless=True,
                                          args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.fixture
def fixed() -> set[str]:
    """The tids whose bug is fixed: the demo handler stops failing them."""
    return set()


@dataclass
class Deployment:
    """A live server whose app has no handlers, and the worker app beside it."""

    live: Live
    worker: Wrkr

    @property
    def url(self) -> str:
        return self.live.url


@pytest.fixture
def deployment(fixed: set[str]) -> Iterator[Deployment]:
    """`wrkr serve`'s app (no handlers) and a worker app, on one shared memory store."""
    store = MemoryStore()
    server_app = Wrkr(MemoryBackend(store=store))
    worker = demo_app(backend=MemoryBackend(store=store), fixed=fixed, archive="keep")
    with live_server(server_app, worker=worker) as live:
        yield Deployment(live, worker)


@pytest.fixture
def page(browser: Browser, deployment: Deployment) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    tab = context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.set_default_timeout(WAIT_MS)
    yield tab
    context.close()
    assert errors == [], errors  # no script error on any page


def test_an_operator_retries_a_failed_item(
    page: Page, deployment: Deployment, fixed: set[str], tmp_path: Path
) -> None:
    worker = deployment.worker
    with httpx.Client(base_url=deployment.url) as client:
        publish(client, [{"name": "user.added", "tid": str(n)} for n in range(3)]
                + [{"name": "user.added", "tid": "42", "payload": {"crash": "mailbox full"}}])

    page.goto(f"{deployment.url}/")
    mail = page.locator('#queues tr[data-queue="test.web.mail"]')
    expect(mail.locator('[data-state="done"]')).to_have_text("3")
    expect(mail.locator('[data-state="failed"]')).to_have_text("1")
    # The chart counts what this server process did: it published 4, its worker is another app.
    expect(page.locator("#chart-total")).to_have_text("0 handled, 4 published")
    page.screenshot(path=tmp_path / "overview.png", full_page=True)

    mail.locator('[data-state="failed"] a').click()
    rows = page.locator("#items tbody tr")
    expect(rows).to_have_count(1)
    rows.first.locator("a").click()
    expect(page.locator("#item-state")).to_have_text("failed")
    expect(page.locator("#payload")).to_contain_text('"crash": "mailbox full"')
    expect(page.locator("#errors")).to_contain_text("RuntimeError: mail server said mailbox full")
    expect(page.locator("#errors .traceback")).to_contain_text("Traceback")
    page.screenshot(path=tmp_path / "failed-item.png", full_page=True)

    deployment.live.call(worker.stop)  # deploying the fix: no worker runs meanwhile
    fixed.add("42")
    page.click("#retry")
    expect(page.locator("#item-state")).to_have_text("ready")
    expect(page.locator("#retry")).to_be_hidden()

    async def restart() -> None:
        await worker.start()
        await worker.listen()

    deployment.live.call(restart)
    expect(page.locator("#item-state")).to_have_text("done")  # live refresh, no reload
    expect(page.locator('[data-field="attempts"]')).to_have_text("1")


def test_an_operator_cancels_pending_items(page: Page, deployment: Deployment) -> None:
    with httpx.Client(base_url=deployment.url) as client:
        publish(client, [{"name": "report.due", "tid": "weekly", "when": "in 1 hour"},
                         {"name": "report.due", "tid": "weekly", "when": "in 2 hours"}])
    page.goto(f"{deployment.url}/#/items?queue=test.web.reports")
    expect(page.locator("#items tbody tr")).to_have_count(2)
    page.click("#cancel")
    expect(page.locator("#cancel-area")).to_contain_text(
        "Delete every pending item with queue = test.web.reports")
    page.click("#cancel-confirm")
    expect(page.locator("#notice")).to_have_text("Cancelled 2 pending item(s).")
    expect(page.locator("#items-empty")).to_be_visible()


def test_the_dashboard_works_under_a_prefix_and_asks_for_a_token(browser: Browser) -> None:
    with live_server(demo_app(), token="dashboard-token", prefix="/ops/wrkr") as live:
        context = browser.new_context()
        tab = context.new_page()
        tab.set_default_timeout(WAIT_MS)
        tab.goto(f"{live.url}/")
        expect(tab.locator("#login")).to_be_visible()
        tab.fill("#login-token", "dashboard-token")
        tab.click("#login button")
        expect(tab.locator('#queues tr[data-queue="test.web.reports"]')).to_be_visible()
        expect(tab.locator("#live-text")).to_have_text(re.compile("updated"))
        context.close()


def test_a_page_of_another_origin_cannot_retry_an_item(
    browser: Browser, deployment: Deployment
) -> None:
    with httpx.Client(base_url=deployment.url) as client:
        [item_id] = publish(client, {"name": "user.added", "tid": "x1",
                                     "payload": {"fail": "for good"}})
        wait_for_state(client, item_id, "failed")
        target = f"{deployment.url}/v1/items/{item_id}/retry"
        form = (f'<form id="f" method="post" action="{target}" enctype="text/plain">'
                '<input name="a" value="b"></form><script>f.submit()</script>')
        with _page_server(form) as elsewhere:
            tab = browser.new_page()
            with tab.expect_navigation(url=target):
                tab.goto(elsewhere)
            assert "cross-site request refused" in tab.content()
            tab.close()
        item = client.get(f"/v1/items/{item_id}").json()
        assert (item["state"], len(item["errors"])) == ("failed", 1)  # never retried


@contextmanager
def _page_server(body: str) -> Iterator[str]:
    """Serve `body` as an HTML page from another origin (another port of 127.0.0.1)."""
    page = body.encode()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("content-type", "text/html")
            self.send_header("content-length", str(len(page)))
            self.end_headers()
            self.wfile.write(page)

        def log_message(self, format: str, *args: object) -> None:
            pass

    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"http://127.0.0.1:{server.server_address[1]}/"
        finally:
            server.shutdown()
            thread.join(10)
