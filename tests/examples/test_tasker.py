"""The Tasker worker: requests as flows over three fake services on 127.0.0.1.

The app runs under `wrkr.testing.harness` (memory, a hand-moved clock: retry backoffs
pass in no time); its handlers make real HTTP calls to the fake services.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx2 as httpx
import pytest
import pytest_asyncio

import examples.tasker as tasker
from backend_conformance_tests import Recorder
from backend_conformance_tests._helpers import WAIT
from examples._http import call, port_of
from tests.conftest import PG_URL
from wrkr import Wrkr
from wrkr.testing import harness

ROOT = Path(__file__).resolve().parents[2]


@pytest_asyncio.fixture
async def services(monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[tasker.FakeServices]:
    """Start the three fake services on free ports and point the worker at them."""
    fakes = tasker.FakeServices(flaky_rate=0.0)
    servers = await fakes.start(0, 0, 0)
    for name, server in zip(("SERVICE1_URL", "SERVICE2_URL", "SERVICE3_URL"), servers,
                            strict=True):
        monkeypatch.setattr(tasker, name, f"http://127.0.0.1:{port_of(server)}")
    yield fakes
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_a_request_completes_with_each_steps_results_passed_on_and_steps_in_order(
        services: tasker.FakeServices) -> None:
    async with harness(tasker.app) as h:
        request = await tasker.submit("ada", "pro", request_id="req-17")
        assert tasker.request_status(await tasker.app.flow(request)) == "Queuing"
        await h.drain()
        flow = await tasker.app.flow(request)
    assert tasker.request_status(flow) == "Completed"
    assert flow.tid == "req-17"
    assert flow.results == {
        "tasker.profile.fetch": {"user": "ada", "name": "Ada"},
        "tasker.quota.fetch": {"quota": 100},
        "tasker.account.provision": {"account": "ada-acct", "quota": 100}}  # from step 1
    first = [c for c in services.calls if c.service in ("profile", "quota")]
    [second] = [c for c in services.calls if c.service == "provision"]
    assert len(first) == 2
    assert second.started >= max(c.ended for c in first)  # no step 2 job before step 1 ended
    assert tasker.FINISHED[request] == "Completed"  # told by tasker.request.completed


async def test_a_retryable_error_is_retried_with_its_history_kept(
        services: tasker.FakeServices) -> None:
    services.fail_first = 2  # service 2 answers 503 twice, then its quota
    async with harness(tasker.app) as h:
        request = await tasker.submit("bob", "free")
        await h.drain(until="1 hour")  # the backoffs (1 s, 5 s) pass on the harness's clock
        flow = await tasker.app.flow(request)
    quota = flow.steps[0][1]
    assert (tasker.request_status(flow), quota.state, quota.attempts) == ("Completed", "done", 3)
    assert [error.type for error in quota.errors] == ["RetryableError"] * 2
    assert all("answered 503" in error.message for error in quota.errors)
    assert flow.results["tasker.account.provision"] == {"account": "bob-acct", "quota": 10}


async def test_a_failure_error_stops_the_request_at_its_step_and_marks_it_failed(
        services: tasker.FakeServices) -> None:
    async with harness(tasker.app) as h:
        request = await tasker.submit("eve", "platinum")  # service 3 knows no such plan
        await h.drain(until="1 hour")
        flow = await tasker.app.flow(request)
    assert tasker.request_status(flow) == "Failed"
    assert flow.error is not None
    assert (flow.error.type, flow.error.attempt) == ("Fail", 1)  # not retried
    assert "answered 422" in flow.error.message
    assert "unknown plan 'platinum'" in flow.error.message
    assert [job.state for job in flow.steps[0]] == ["done", "done"]
    assert flow.steps[1][0].state == "failed"
    assert [c.service for c in services.calls].count("provision") == 1
    assert tasker.FINISHED[request] == "Failed"  # told by tasker.request.failed


async def test_heartbeat_and_metrics_answer_through_wrkr_web(
        services: tasker.FakeServices) -> None:
    async with harness(tasker.app) as h, tasker.http_server(0) as port, \
            httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        beat = await http.get("/heartbeat")
        request = await tasker.submit("ada", "pro")
        await h.drain()
        assert tasker.request_status(await tasker.app.flow(request)) == "Completed"
        metrics = await http.get("/metrics")
        ready = await http.get("/readyz")
        missing = await http.get("/nothing")
    assert (beat.status_code, beat.json()) == (200, {"status": "ok", "worker": True})
    assert (metrics.status_code, ready.status_code, missing.status_code) == (200, 200, 404)
    # The three jobs and the request's end event, each handled once; the backend's counts.
    for queue in ("tasker.service1", "tasker.service2", "tasker.service3", "tasker.requests"):
        assert f'wrkr_handled_total{{outcome="acked",queue="{queue}"}} 1.0' in metrics.text
    assert 'wrkr_items{queue="tasker.service1",state="ready"} 0.0' in metrics.text


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def _heartbeat_up(port: int, worker: asyncio.subprocess.Process) -> None:
    """Wait, bounded, until the worker process answers GET /heartbeat."""
    async with asyncio.timeout(WAIT * 3):
        while True:
            assert worker.returncode is None, "the worker exited"
            try:
                status, _ = await call(f"http://127.0.0.1:{port}/heartbeat", method="GET")
            except OSError:  # not listening yet: a port raises no signal to await
                await asyncio.sleep(0.05)
                continue
            assert status == 200
            return


@pytest.mark.postgres
async def test_the_worker_process_on_postgresql_serves_heartbeat_and_completes_requests(
        services: tasker.FakeServices, pg_schema: str) -> None:
    await _two_requests_through_a_worker_process(f"{PG_URL}?schema={pg_schema}")


async def test_the_worker_process_on_sqlite_serves_heartbeat_and_completes_requests(
        services: tasker.FakeServices, tmp_path: Path) -> None:
    await _two_requests_through_a_worker_process(f"sqlite:///{tmp_path / 'tasker.db'}")


async def _two_requests_through_a_worker_process(url: str) -> None:
    """Run the worker process on `url`; a client there starts one request that completes
    and one that fails, and is told of both ends."""
    port = _free_port()
    env = {**os.environ, "WRKR_URL": url, "PORT": str(port), "WRK_ENABLED": "true",
           "PYTHONPATH": str(ROOT), "SERVICE1_URL": tasker.SERVICE1_URL,
           "SERVICE2_URL": tasker.SERVICE2_URL, "SERVICE3_URL": tasker.SERVICE3_URL}
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "examples.tasker", cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ends = Recorder()
    try:
        await _heartbeat_up(port, worker)
        async with Wrkr.from_url(url) as client:
            await client.subscribe("test.ends", "tasker.request.*", ends.handle)
            await client.listen()
            ok = await client.start_flow(tasker.REQUEST, tid="r1", steps=tasker.STEPS,
                                         payload={"params": {"user": "ada", "plan": "pro"}})
            bad = await client.start_flow(tasker.REQUEST, tid="r2", steps=tasker.STEPS,
                                          payload={"params": {"user": "eve", "plan": "x"}})
            told = {event.tid: event.name for event in await ends.take(2, "both ends")}
            done = await client.flow(ok)
        async with httpx.AsyncClient() as http:  # what the worker process itself handled
            metrics = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    finally:
        worker.send_signal(signal.SIGTERM)
        async with asyncio.timeout(WAIT * 3):
            _, stderr = await worker.communicate()
    assert worker.returncode == 0, stderr.decode()[-2000:]
    assert told == {ok: "tasker.request.completed", bad: "tasker.request.failed"}
    assert done.results["tasker.account.provision"] == {"account": "ada-acct", "quota": 100}
    assert 'wrkr_handled_total{outcome="acked",queue="tasker.service3"} 1.0' in metrics
    assert 'wrkr_handled_total{outcome="failed",queue="tasker.service3"} 1.0' in metrics


@pytest.mark.postgres
async def test_with_wrk_enabled_false_the_process_serves_but_takes_no_request(
        services: tasker.FakeServices, pg_schema: str) -> None:
    url = f"{PG_URL}?schema={pg_schema}"
    port = _free_port()
    env = {**os.environ, "WRKR_URL": url, "PORT": str(port), "WRK_ENABLED": "false",
           "PYTHONPATH": str(ROOT)}
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "examples.tasker", cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        await _heartbeat_up(port, worker)
        _, beat = await call(f"http://127.0.0.1:{port}/heartbeat", method="GET")
        async with Wrkr.from_url(url) as client:
            request = await client.start_flow(tasker.REQUEST, steps=tasker.STEPS,
                                              payload={"params": {"user": "a", "plan": "pro"}})
            await asyncio.sleep(0.5)  # proving nothing happens: a worker would have begun
            flow = await client.flow(request)
    finally:
        worker.send_signal(signal.SIGTERM)
        async with asyncio.timeout(WAIT * 3):
            _, stderr = await worker.communicate()
    assert worker.returncode == 0, stderr.decode()[-2000:]
    assert beat == {"status": "ok", "worker": False}
    assert tasker.request_status(flow) == "Queuing"  # its jobs wait in their queues
    assert [job.state for job in flow.steps[0]] == ["ready", "ready"]
    assert services.calls == []
