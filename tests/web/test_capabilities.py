"""What a backend cannot do is a 501 naming the capability; the assets ship in the package."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests.conftest import MQTT_URL, RABBITMQ_URL
from tests.web._live import live_server
from tests.web.test_api import assert_problem
from wrkr import Capability, Wrkr
from wrkr.web._dashboard import ASSETS

ROOT = Path(__file__).resolve().parents[2]


BROKERS = [pytest.param("rabbitmq", marks=pytest.mark.rabbitmq),
           pytest.param("mqtt", marks=pytest.mark.mqtt)]
BROKER_URLS = {"rabbitmq": RABBITMQ_URL, "mqtt": MQTT_URL}


@pytest.fixture(params=BROKERS)
def broker_url(request: pytest.FixtureRequest) -> str:
    """A broker without a store, in a namespace of the test's own (deleted afterwards)."""
    prefix = request.getfixturevalue(f"{request.param}_prefix")
    return f"{BROKER_URLS[request.param]}?prefix={prefix}"


def test_a_capability_the_backend_lacks_is_a_501_naming_it(broker_url: str) -> None:
    app = Wrkr.from_url(broker_url)

    @app.on("user.added", queue="test.web.mq")
    @app.on("user.added", queue="test.web.mq2")
    async def handle(event: Any) -> None:
        pass

    with live_server(app) as live, httpx.Client(base_url=live.url, timeout=10.0) as client:
        published = client.post("/v1/events", json={"name": "user.added"})
        assert published.status_code == 201
        assert len(set(published.json()["ids"])) == 2  # one id per queue's copy
        later = client.post("/v1/events", json={"name": "user.added", "when": "in 1 hour"})
        if Capability.DELAY not in app.backend.capabilities:
            assert_problem(later, 501, "'delay'", type(app.backend).__name__)
        else:
            assert later.status_code == 201, later.text
        assert_problem(client.get("/v1/items"), 501, "'query'")
        assert_problem(client.get("/v1/queues"), 501, "'query'")
        assert_problem(client.get("/v1/schedules"), 501, "'schedules'")
        assert_problem(client.delete("/v1/items", params={"tid": "1"}), 501, "'cancel'")
        assert_problem(client.get("/v1/items/i1"), 501, "'query'", "get()")
        assert_problem(client.post("/v1/items/i1/retry"), 501, "'query'")
        assert_problem(client.get("/v1/flows/f1"), 501, "'flows'")
        assert_problem(client.get("/v1/items/i1/lineage"), 501, "'lineage'")
        assert client.get("/v1/subscriptions").json() == {"subscriptions": [
            {"queue": "test.web.mq", "pattern": "user.added"},
            {"queue": "test.web.mq2", "pattern": "user.added"}]}
        assert client.get("/readyz").json() == {"status": "ready"}
        scrape = client.get("/metrics")
        assert scrape.status_code == 200
        assert 'wrkr_published_total{event="user.added"}' in scrape.text
        assert "wrkr_items{" not in scrape.text  # nothing to read them from
        assert client.get("/").status_code == 200


def test_the_dashboard_assets_are_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "static/*" in config["tool"]["setuptools"]["package-data"]["wrkr.web"]
    static = resources.files("wrkr.web") / "static"
    for name in [*ASSETS, "index.html"]:
        assert (static / name).is_file(), name
    assert "{{base}}" in (static / "index.html").read_text()
