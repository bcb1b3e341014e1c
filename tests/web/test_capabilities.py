"""What a backend cannot do is a 501 naming the capability; the assets ship in the package."""

from __future__ import annotations

import asyncio
import secrets
import tomllib
from importlib import resources
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest

from tests._services import require_service
from tests.conftest import RABBITMQ_URL
from tests.web._live import live_server
from tests.web.test_api import assert_problem
from wrkr import Wrkr
from wrkr.web._dashboard import ASSETS

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.rabbitmq
def test_a_capability_the_backend_lacks_is_a_501_naming_it() -> None:
    require_service("RabbitMQ", 5672)
    prefix = f"wt{secrets.token_hex(4)}"
    app = Wrkr.from_url(f"{RABBITMQ_URL}?prefix={prefix}")

    @app.on("user.added", queue="test.web.mq")
    @app.on("user.added", queue="test.web.mq2")
    async def handle(event: Any) -> None:
        pass

    try:
        with live_server(app) as live, httpx.Client(base_url=live.url, timeout=10.0) as client:
            published = client.post("/v1/events", json={"name": "user.added"})
            assert published.status_code == 201
            assert len(set(published.json()["ids"])) == 2  # one id per queue's copy
            assert_problem(client.get("/v1/items"), 501, "'query'")
            assert_problem(client.get("/v1/queues"), 501, "'query'")
            assert_problem(client.get("/v1/schedules"), 501, "'schedules'")
            assert_problem(client.delete("/v1/items", params={"tid": "1"}), 501, "'cancel'")
            assert_problem(client.get("/v1/items/i1"), 501, "'query'", "get()")
            assert_problem(client.get("/v1/flows/f1"), 501, "'flows'")
            assert_problem(client.get("/v1/items/i1/lineage"), 501, "'lineage'")
            assert client.get("/v1/subscriptions").json() == {"subscriptions": [
                {"queue": "test.web.mq", "pattern": "user.added"},
                {"queue": "test.web.mq2", "pattern": "user.added"}]}
            assert client.get("/readyz").json() == {"status": "ready"}
    finally:
        asyncio.run(_delete_namespace(prefix))


async def _delete_namespace(prefix: str) -> None:
    from wrkr_rabbitmq import RabbitMQBackend

    cleaner = RabbitMQBackend(RABBITMQ_URL, prefix=prefix)
    await cleaner.open()
    try:
        await cleaner.delete_namespace()
    finally:
        await cleaner.close()


def test_the_dashboard_assets_are_package_data() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert "static/*" in config["tool"]["setuptools"]["package-data"]["wrkr.web"]
    static = resources.files("wrkr.web") / "static"
    for name in [*ASSETS, "index.html"]:
        assert (static / name).is_file(), name
    assert "{{base}}" in (static / "index.html").read_text()
