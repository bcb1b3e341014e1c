"""/metrics: counters fed by the hooks, wrkr_items read from the backend, one registry per app."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx2 as httpx
from prometheus_client.parser import text_string_to_metric_families

from tests.web._live import Live, demo_app, live_server
from tests.web._poll import wait_for_state
from tests.web.test_api import publish
from wrkr import Wrkr
from wrkr.web import Metrics, metrics_for
from wrkr.web._throughput import Throughput

WAIT = 10.0

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples(text: str) -> Samples:
    """Every sample of a scrape, by name and sorted labels."""
    return {(sample.name, tuple(sorted(sample.labels.items()))): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def test_metrics_count_what_this_process_published_and_handled(
    client: httpx.Client, live: Live
) -> None:
    ids = publish(client, [{"name": "user.added", "tid": "m1"}, {"name": "user.added", "tid": "m2"},
                           {"name": "user.removed", "tid": "m3", "payload": {"fail": "x"}}])
    for item_id, state in zip(ids, ["done", "done", "failed"], strict=True):
        wait_for_state(client, item_id, state)
    response = client.get("/metrics")
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    got = samples(response.text)
    mail = (("queue", "test.web.mail"),)
    assert got[("wrkr_published_total", (("event", "user.added"),))] == 2
    assert got[("wrkr_published_total", (("event", "user.removed"),))] == 1
    assert got[("wrkr_handled_total", (("outcome", "acked"), *mail))] == 2
    assert got[("wrkr_handled_total", (("outcome", "failed"), *mail))] == 1
    assert got[("wrkr_handler_duration_seconds_count", mail)] == 3
    assert got[("wrkr_lateness_seconds_count", mail)] == 3
    assert got[("wrkr_in_flight", mail)] == 0
    assert got[("wrkr_items", (("queue", "test.web.mail"), ("state", "done")))] == 2
    assert got[("wrkr_items", (("queue", "test.web.mail"), ("state", "failed")))] == 1
    assert not any("m1" in str(labels) for _, labels in got)  # no tid or id as a label


async def test_two_apps_in_one_process_count_apart() -> None:
    first, second = demo_app(), demo_app()
    async with first, second:
        assert metrics_for(first) is metrics_for(first)
        assert metrics_for(first).registry is not metrics_for(second).registry
        await first.publish({"name": "user.added"})
        one = samples((await metrics_for(first).scrape()).decode())
        other = samples((await metrics_for(second).scrape()).decode())
    assert one[("wrkr_published_total", (("event", "user.added"),))] == 1
    assert ("wrkr_published_total", (("event", "user.added"),)) not in other


async def test_item_counts_are_read_again_only_when_stale() -> None:
    app = Wrkr()
    cached, fresh = Metrics(app, items_ttl=3600), Metrics(app, items_ttl=0)
    key = ("wrkr_items", (("queue", "q"), ("state", "scheduled")))
    async with app:
        await app.backend.subscribe("q", "e")
        for metrics in (cached, fresh):
            assert samples((await metrics.scrape()).decode())[key] == 0
        await app.publish({"name": "e", "when": "in 1 hour"})
        await asyncio.sleep(0)
        assert samples((await cached.scrape()).decode())[key] == 0
        assert samples((await fresh.scrape()).decode())[key] == 1


def test_a_running_handler_is_in_flight_until_it_ends() -> None:
    app, release = Wrkr(), threading.Event()

    @app.on("job.slow", queue="test.web.slow")
    async def slow(event: Any) -> None:
        await asyncio.to_thread(release.wait, WAIT)

    key = ("wrkr_in_flight", (("queue", "test.web.slow"),))
    with live_server(app) as live, httpx.Client(base_url=live.url, timeout=WAIT) as client:
        publish(client, {"name": "job.slow"})
        _until(client, key, 1)
        release.set()
        _until(client, key, 0)
        handled = samples(client.get("/metrics").text)
    assert handled[("wrkr_handled_total", (("outcome", "acked"), ("queue", "test.web.slow")))] == 1


def _until(client: httpx.Client, key: tuple[str, tuple[tuple[str, str], ...]],
           value: float) -> None:
    deadline, got = time.monotonic() + WAIT, None
    while time.monotonic() < deadline:
        got = samples(client.get("/metrics").text).get(key)
        if got == value:
            return
        time.sleep(0.02)
    raise AssertionError(f"{key} is {got}, not {value}, after {WAIT}s")


def test_throughput_keeps_the_last_hour_per_minute() -> None:
    now = [3600 * 100.0]
    throughput = Throughput(clock=lambda: now[0])
    throughput.add("published", 3)
    throughput.add("acked", 2)
    now[0] += 59 * 60
    throughput.add("failed", 1)
    minutes = throughput.last_hour()
    assert len(minutes) == 60
    assert minutes[0]["minute"] == 3600 * 100
    assert (minutes[0]["published"], minutes[0]["acked"]) == (3, 2)
    assert minutes[-1]["failed"] == 1
    assert sum(m["published"] for m in minutes[1:]) == 0
    now[0] += 60
    assert sum(m["published"] for m in throughput.last_hour()) == 0  # an hour old: gone
