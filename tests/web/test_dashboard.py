"""The dashboard end to end in a real headless browser: Debian's chromium driven by Playwright.

The story of an operator: events are published, one fails; the dashboard shows the counts;
the failed item shows its payload and traceback; the worker is stopped, the bug fixed, Retry
clicked: the item is ready again, and once the worker is back, done. Pending items are
cancelled from the item list. Screenshots go to the test's temporary folder.
"""

from __future__ import annotations

import http.server
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx2 as httpx
import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tests._services import require_program
from tests.web._live import FLOW_STEPS, Live, demo_app, family_app, live_server
from tests.web._poll import wait_for_json, wait_for_state
from tests.web.test_api import publish
from wrkr import Wrkr
from wrkr_memory import MemoryBackend, MemoryStore

CHROMIUM = "/usr/bin/chromium"
WAIT_MS = 10_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's chromium, headless (`playwright install` cannot download here)."""
    require_program(CHROMIUM, "scripts/debian-packages.sh")
    with sync_playwright() as driver:
        chromium = driver.chromium.launch(executable_path=CHROMIUM, headless=True,
                                          args=["--no-sandbox"])
        yield chromium
        chromium.close()


@pytest.mark.parametrize(("ci", "outcome"), [("1", pytest.fail.Exception),
                                               ("", pytest.skip.Exception)])
def test_a_missing_chromium_fails_under_ci_and_is_skipped_elsewhere(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, ci: str, outcome: type[BaseException]
) -> None:
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match=r"chromium is missing \(scripts/debian-packages"):
        require_program(str(tmp_path / "chromium"), "scripts/debian-packages.sh")


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


@pytest.fixture
def family(browser: Browser) -> Iterator[tuple[Live, Page]]:
    """A server app without handlers and, beside it, the family app as its worker (one
    named memory store), and a tab."""
    url = f"memory://dashboard-{secrets.token_hex(4)}"
    with live_server(Wrkr.from_url(url), worker=family_app(url, archive="keep")) as live:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        tab = context.new_page()
        errors: list[str] = []
        tab.on("pageerror", lambda error: errors.append(str(error)))
        tab.set_default_timeout(WAIT_MS)
        yield live, tab
        context.close()
        assert errors == [], errors


def test_the_item_page_shows_the_lineage_tree(
    family: tuple[Live, Page], tmp_path: Path
) -> None:
    live, page = family
    with httpx.Client(base_url=live.url) as client:
        [root] = publish(client, {"name": "order.placed", "tid": "o7"})
        tree = wait_for_json(client, f"/v1/items/{root}/lineage",
                             lambda body: len(body["items"]) == 4)["items"]
    ids = {node["name"]: node["id"] for node in tree}
    page.goto(f"{live.url}/#/item/{ids['receipt.sent']}")
    lineage = page.locator("#lineage")
    top = lineage.locator(":scope > ul.tree > li")
    expect(top).to_have_count(1)  # one root
    expect(top.locator(":scope > .node")).to_contain_text("order.placed")
    nested = top.locator(":scope > ul.tree > li")
    expect(nested).to_have_count(2)  # paid and packed, oldest first
    paid = nested.filter(has=page.locator(f':scope > .node[data-id="{ids["order.paid"]}"]'))
    leaf = paid.locator(f':scope > ul.tree > li > .node[data-id="{ids["receipt.sent"]}"]')
    expect(leaf).to_have_attribute("aria-current", "true")
    expect(leaf).to_contain_text("this item")
    expect(lineage.locator('[aria-current="true"]')).to_have_count(1)
    expect(page.locator("#lineage-hint")).to_contain_text("4 items share the root")
    page.screenshot(path=tmp_path / "lineage.png", full_page=True)

    top.locator(":scope > .node a").click()  # the root's own page
    expect(page.locator("#item-id")).to_have_text(root)
    expect(page.locator(f'#lineage .node[data-id="{root}"]')).to_have_attribute(
        "aria-current", "true")
    expect(page.locator("#lineage .node")).to_have_count(4)


def test_a_flow_page_shows_its_steps_of_jobs_reached_from_an_item(
    family: tuple[Live, Page], tmp_path: Path
) -> None:
    live, page = family
    done = live.call(lambda: live.app.start_flow("test.web.flow", tid="ok", steps=FLOW_STEPS))
    with httpx.Client(base_url=live.url) as client:
        flow = wait_for_json(client, f"/v1/flows/{done}", lambda f: f["state"] == "completed")
    [combine] = flow["steps"][1][0]["item_ids"]
    page.goto(f"{live.url}/#/item/{combine}")
    page.locator('[data-field="flow"] a').click()
    expect(page.locator("#flow-id")).to_have_text(done)
    expect(page.locator("#flow-state")).to_have_text("completed")
    steps = page.locator("#steps .step")
    expect(steps).to_have_count(2)
    first = steps.nth(0)
    expect(first.locator(".job")).to_have_count(2)
    expect(first.locator('[data-job="job.fetch"] .job-state')).to_have_text("done")
    expect(first.locator('[data-job="job.fetch"] .result')).to_contain_text('"fetched": "ok"')
    first.locator('[data-job="job.fetch"] a').click()  # its item
    expect(page.locator('[data-field="name"]')).to_have_text("job.fetch")
    page.go_back()
    expect(steps.nth(1).locator('[data-job="job.combine"] .result')).to_contain_text("job.check")
    expect(page.locator("#flow-error")).to_be_hidden()
    page.screenshot(path=tmp_path / "flow-completed.png", full_page=True)

    failed = live.call(lambda: live.app.start_flow("test.web.flow", tid="bad",
                                                   payload={"fail": "no credit"},
                                                   steps=FLOW_STEPS))
    page.goto(f"{live.url}/#/flow/{failed}")  # by URL
    expect(page.locator("#flow-state")).to_have_text("failed")  # live refresh until it ends
    expect(page.locator("#flow-error")).to_contain_text("Fail: check refused: no credit")
    check = steps.nth(0).locator('[data-job="job.check"]')
    expect(check.locator(".job-state")).to_have_text("failed")
    expect(check.locator(".job-errors")).to_contain_text("attempt 1: Fail: check refused")
    expect(steps.nth(1).locator('[data-job="job.combine"] .job-state')).to_have_text(
        "cancelled")
    expect(steps.nth(0).locator("h3 .badge")).to_have_text("failed")
    page.screenshot(path=tmp_path / "flow-failed.png", full_page=True)


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
