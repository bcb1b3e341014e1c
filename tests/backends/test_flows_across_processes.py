"""Workflows across processes: a step's advance is made exactly once, on every store that
several processes share (PostgreSQL, a SQLite file, MongoDB).

Three worker processes handle a wide step's eight jobs, every job ending on the same 50 ms
boundary, so the acks of a step's last jobs arrive together from different processes:
the next step must be published once however they race.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from backend_conformance_tests._helpers import WAIT, eventually
from tests.backends._mongo_servers import (  # noqa: F401 - the fixture
    new_database_name,
    wire_server_url,
    with_database,
)
from tests.conftest import PG_URL, new_schema
from wrkr import Event, Wrkr

ROOT = Path(__file__).resolve().parents[2]
WIDTH, FLOWS, PROCESSES, CONCURRENCY = 8, 10, 3, 3  # a step needs every process at once

# A worker process handling the wide step's jobs. argv: url, concurrency.
WORKER = r"""
import asyncio, os, sys, time
from wrkr import Wrkr

async def wide(event):
    await asyncio.sleep(0.05 - time.time() % 0.05)  # every job ends on one 50 ms boundary
    return os.getpid()

async def main():
    app = Wrkr.from_url(sys.argv[1])
    async with app:
        await app.subscribe("wide", "job.wide.*", wide, concurrency=int(sys.argv[2]))
        await app.listen()
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

asyncio.run(main())
"""


@pytest.fixture(params=["postgresql", "sqlite", "mongodb"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a store the test's processes share, fresh for the test."""
    if request.param == "postgresql":
        for schema in new_schema(request):
            yield f"{PG_URL}?schema={schema}"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'wrkr.db'}"
    else:
        yield with_database(request.getfixturevalue("wire_server_url"), new_database_name())


@pytest_asyncio.fixture
async def workers(url: str) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """Start the worker processes on the store; each says "ready" once it listens."""
    async with Wrkr.from_url(url):  # create and migrate it once, before the children race to
        pass
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = [await asyncio.create_subprocess_exec(
        sys.executable, "-c", WORKER, url, str(CONCURRENCY), cwd=ROOT, env=env,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE) for _ in range(PROCESSES)]
    try:
        for process in started:
            assert process.stdout is not None
            async with asyncio.timeout(WAIT * 3):
                assert (await process.stdout.readline()).strip() == b"ready"
        yield started
    finally:
        for process in started:
            if process.returncode is None:
                assert process.stdin is not None
                process.stdin.write(b"stop\n")
        for process in started:
            try:
                async with asyncio.timeout(WAIT):
                    await process.wait()
            except TimeoutError:
                process.kill()
                await process.wait()


async def test_the_next_step_is_published_once_when_processes_ack_the_last_jobs_together(
        url: str, workers: list[asyncio.subprocess.Process]) -> None:
    started: Counter[str] = Counter()

    async def after(event: Event) -> None:
        assert event.flow is not None
        started[event.flow.id] += 1

    async with Wrkr.from_url(url) as app:
        await app.subscribe("after", "job.after", after)
        await app.listen()
        steps = [[{"name": f"job.wide.{n}"} for n in range(WIDTH)], [{"name": "job.after"}]]
        ids = [await app.start_flow("wide.flow", steps=steps) for _ in range(FLOWS)]

        async def all_completed() -> bool:
            states = [(await app.flow(flow_id)).state for flow_id in ids]
            return states == ["completed"] * FLOWS

        await eventually(all_completed, "every flow completes")
        flows = [await app.flow(flow_id) for flow_id in ids]
        await asyncio.sleep(0.5)  # a second start of step 2 would have been handled by now
    assert started == dict.fromkeys(ids, 1)
    assert all(len(flow.steps[1][0].item_ids) == 1 for flow in flows)
    pids = {job.result for flow in flows for job in flow.steps[0]}
    assert len(pids) > 1, "the wide steps should have been shared by several processes"
