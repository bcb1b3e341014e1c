"""The README's FastAPI mount: the user's lifespan starts and stops the wrkr app, uvicorn
runs the lifespan, and `wrkr.web` answers under the mount's prefix."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator

import httpx2 as httpx
import pytest
import uvicorn
from fastapi import FastAPI

import wrkr.web
from tests.web._live import demo_app
from tests.web._poll import wait_for_state
from wrkr import NotStarted
from wrkr.web._server import bind


def test_a_fastapi_app_mounts_wrkr_web_under_its_lifespan() -> None:
    events = demo_app(archive="keep")

    @contextlib.asynccontextmanager
    async def lifespan(api: FastAPI) -> AsyncIterator[None]:
        async with events:
            await events.listen()
            yield

    api = FastAPI(lifespan=lifespan)
    api.mount("/wrkr", wrkr.web.asgi(events))
    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(api, lifespan="on", log_level="warning"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    try:
        base = f"http://127.0.0.1:{sock.getsockname()[1]}/wrkr"
        with httpx.Client(base_url=base, timeout=10.0) as client:
            ready = client.get("/readyz")  # the socket listens already: this waits for startup
            assert ready.json() == {"status": "ready"}, ready.text
            response = client.post("/v1/events", json={"name": "user.added", "tid": "fa"})
            assert response.status_code == 201, response.text
            wait_for_state(client, response.json()["ids"][0], "done")
            assert '<base href="/wrkr/">' in client.get("/").text
    finally:
        server.should_exit = True
        thread.join(20)
    with pytest.raises(NotStarted):  # the lifespan stopped it at shutdown
        asyncio.run(events.publish({"name": "user.added"}))
