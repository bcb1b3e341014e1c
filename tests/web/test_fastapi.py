"""The README's FastAPI mount, as the README writes it: the user's lifespan starts and
stops the wrkr app, uvicorn runs the lifespan, and `wrkr.web` answers under the prefix."""

from __future__ import annotations

import asyncio
import importlib.util
import re
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import httpx2 as httpx
import pytest
import uvicorn

from tests.web._poll import WAIT
from wrkr import NotStarted, Wrkr
from wrkr.web._server import bind

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "t0ken-for-the-readme"


def readme_module(tmp_path: Path) -> ModuleType:
    """Import the README's `<!-- file: myapp.py -->` block as the user would save it."""
    text = (ROOT / "README.md").read_text()
    block = re.search(r"^<!-- file: myapp\.py -->\n```python\n(.*?)^```", text, re.S | re.M)
    assert block is not None, "README.md has no myapp.py block"
    path = tmp_path / "myapp.py"
    path.write_text(block.group(1))
    spec = importlib.util.spec_from_file_location("readme_myapp", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_readme_fastapi_app_mounts_wrkr_web_under_its_lifespan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WRKR_URL", f"sqlite:///{tmp_path / 'wrkr.db'}")
    monkeypatch.setenv("WRKR_TOKEN", TOKEN)
    myapp = readme_module(tmp_path)
    events: Wrkr = myapp.events
    handled = threading.Event()

    @events.on("user.added", queue="test.web.readme")
    async def mail(event: Any) -> None:
        handled.set()  # a done item is deleted: the README keeps no archive

    sock = bind("127.0.0.1", 0)
    server = uvicorn.Server(uvicorn.Config(myapp.api, lifespan="on", log_level="warning"))
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    try:
        base = f"http://127.0.0.1:{sock.getsockname()[1]}/wrkr"
        with httpx.Client(base_url=base, timeout=10.0,
                          headers={"authorization": f"Bearer {TOKEN}"}) as client:
            ready = client.get("/readyz")  # the socket listens already: this waits for startup
            assert ready.json() == {"status": "ready"}, ready.text
            response = client.post("/v1/events", json={"name": "user.added", "tid": "fa"})
            assert response.status_code == 201, response.text
            assert handled.wait(WAIT), "the lifespan's listen() handled nothing"
            assert '<base href="/wrkr/">' in client.get("/").text
            assert httpx.get(f"{base}/v1/queues").status_code == 401  # WRKR_TOKEN is on
    finally:
        server.should_exit = True
        thread.join(20)
    with pytest.raises(NotStarted):  # the lifespan stopped it at shutdown
        asyncio.run(events.publish({"name": "user.added"}))
