"""`wrkr worker MODULE:APP --http HOST:PORT`: the worker's own /healthz, /readyz, /metrics."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import httpx2 as httpx

from tests.core._cli_helpers import WAIT, env, lines_of, script, wait_for, wrkr_script
from tests.web.test_metrics import samples

MODULE = """\
import os

from wrkr import Wrkr

app = Wrkr.from_url(os.environ["WRKR_URL"], name="httptest")


@app.on("job.run", queue="test.web.jobs")
async def run(event):
    print("ran", event.tid, flush=True)
"""


def test_a_worker_serves_its_probes_and_what_it_handled(tmp_path: Path) -> None:
    (tmp_path / "http_worker.py").write_text(MODULE)
    url = f"sqlite:///{tmp_path / 'wrkr.db'}"
    process = subprocess.Popen(
        [wrkr_script(), "worker", "http_worker:app", "--url", url, "--http", "127.0.0.1:0"],
        cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdout is not None
    assert process.stderr is not None
    try:
        logs, _ = lines_of(process.stderr)
        serving = wait_for(logs, "serving /healthz")[-1]
        port = re.search(r"127\.0\.0\.1:(\d+)", serving)
        assert port is not None, serving
        wait_for(logs, "started")
        with httpx.Client(base_url=f"http://127.0.0.1:{port.group(1)}", timeout=WAIT) as http:
            assert http.get("/healthz").json() == {"status": "ok"}
            assert http.get("/readyz").json() == {"status": "ready"}
            published = script("publish", "job.run", "--tid", "j1", "--url", url, cwd=tmp_path)
            assert published.returncode == 0, published.stderr
            outputs, _ = lines_of(process.stdout)
            wait_for(outputs, "ran j1")
            got = _metrics_once_handled(http)
            assert got[("wrkr_items", (("queue", "test.web.jobs"), ("state", "ready")))] == 0
            assert http.get("/v1/items").status_code == 404  # probes only: no API here
            rebound = http.get("/metrics", headers={"host": "evil.example"})  # DNS rebinding
            assert rebound.status_code == 403
        process.send_signal(signal.SIGTERM)
        assert process.wait(WAIT) == 0
    finally:
        process.kill()
        process.wait(WAIT)
        process.stdout.close()
        process.stderr.close()


def _metrics_once_handled(http: httpx.Client) -> dict[tuple[str, tuple[tuple[str, str], ...]],
                                                      float]:
    """The worker's metrics once it counts the handled item (settled after the print)."""
    key = ("wrkr_handled_total", (("outcome", "acked"), ("queue", "test.web.jobs")))
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        got = samples(http.get("/metrics").text)
        if got.get(key) == 1:
            return got
        time.sleep(0.05)
    raise AssertionError(f"{key} never reached 1: {got}")
