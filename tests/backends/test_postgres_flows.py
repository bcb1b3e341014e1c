"""Workflows on PostgreSQL across processes: a step's advance is made exactly once."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from backend_conformance_tests._helpers import WAIT, eventually
from tests.conftest import PG_URL
from wrkr import Event, Wrkr
from wrkr_postgres import PostgresBackend

pytestmark = pytest.mark.postgres
ROOT = Path(__file__).resolve().parents[2]
WIDTH, FLOWS, PROCESSES = 8, 10, 3

# A worker process handling the wide step's jobs. argv: schema.
WORKER = r"""
import asyncio, os, sys, time
from wrkr import Wrkr
from wrkr_postgres import PostgresBackend

async def wide(event):
    # every job of every process ends on the same 50 ms boundary: the acks of a step's
    # last items arrive together
    await asyncio.sleep(0.05 - time.time() % 0.05)
    return os.getpid()

async def main():
    app = Wrkr(PostgresBackend("postgresql://postgres@127.0.0.1:5432/test", schema=sys.argv[1]))
    async with app:
        await app.subscribe("wide", "job.wide.*", wide, concurrency=8)
        await app.listen()
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)

asyncio.run(main())
"""


@pytest_asyncio.fixture
async def workers(pg_schema: str) -> AsyncIterator[list[asyncio.subprocess.Process]]:
    """Start the worker processes on the schema; each says "ready" once it listens."""
    schema_ready = Wrkr(PostgresBackend(PG_URL, schema=pg_schema))
    async with schema_ready:  # migrate once, before the children race to
        pass
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    started = [await asyncio.create_subprocess_exec(
        sys.executable, "-c", WORKER, pg_schema, cwd=ROOT, env=env,
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
        pg_schema: str, workers: list[asyncio.subprocess.Process]) -> None:
    started: Counter[str] = Counter()

    async def after(event: Event) -> None:
        assert event.flow is not None
        started[event.flow.id] += 1

    app = Wrkr(PostgresBackend(PG_URL, schema=pg_schema, poll_interval=1.0))
    async with app:
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
