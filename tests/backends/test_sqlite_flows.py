"""Workflows on SQLite: a flow's change is committed whole or not at all, and a file from
before flows is migrated. (A step's advance made once by processes sharing one file is in
test_flows_across_processes.py, beside PostgreSQL and MongoDB.)"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from backend_conformance_tests._helpers import WAIT, eventually
from wrkr import Event, Wrkr, WrkrError
from wrkr.backend import FlowTransaction, Message
from wrkr_sqlite import SQLiteBackend
from wrkr_sqlite._rows import SQLiteReceipt

ROOT = Path(__file__).resolve().parents[2]


def file_url(tmp_path: Path) -> str:
    """Return the URL of this test's file."""
    return f"sqlite:///{tmp_path / 'wrkr.db'}"


def rows_of(tmp_path: Path) -> tuple[int, int]:
    """Return how many items and flows the file holds."""
    with contextlib.closing(sqlite3.connect(tmp_path / "wrkr.db")) as conn:
        items = conn.execute("SELECT count(*) FROM wrkr_items").fetchone()[0]
        flows = conn.execute("SELECT count(*) FROM wrkr_flows").fetchone()[0]
    return items, flows


async def test_a_flow_change_that_raises_leaves_nothing_behind(tmp_path: Path) -> None:
    backend = SQLiteBackend(file_url(tmp_path))
    async with Wrkr(backend) as app:
        await app.subscribe("q", "job.a", lambda event: None)

        async def work(tx: FlowTransaction[SQLiteReceipt]) -> None:
            await tx.put([Message("job.a", None, b"{}", backend.now(), backend.now())],
                         tagged=True)
            await tx.save(b"{}", state="running")
            raise LookupError("the core gave up half-way")

        with pytest.raises(LookupError, match="half-way"):
            await backend.store.flow_transaction("f-1", work)
        assert await backend.store.flow_document("f-1") is None
    assert rows_of(tmp_path) == (0, 0)


async def test_a_flow_change_awaiting_anything_else_is_refused_and_rolled_back(
        tmp_path: Path) -> None:
    backend = SQLiteBackend(file_url(tmp_path))
    async with Wrkr(backend):

        async def work(tx: FlowTransaction[SQLiteReceipt]) -> None:
            await tx.save(b"{}", state="running")
            await asyncio.sleep(0)  # would let other statements into the transaction

        with pytest.raises(WrkrError, match="awaited something other than its SQLite"):
            await backend.store.flow_transaction("f-1", work)
    assert rows_of(tmp_path) == (0, 0)


async def test_a_file_from_before_flows_is_migrated_and_its_items_are_outside_any_flow(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import wrkr_sqlite._sql as sql

    shipped = sql.migrations()
    with contextlib.closing(sqlite3.connect(tmp_path / "wrkr.db", isolation_level=None)) as conn:
        monkeypatch.setattr(sql, "migrations", lambda: [m for m in shipped if m[0] < 5])
        sql.migrate(conn)
        conn.execute(  # an item as the version before flows stored it
            "INSERT INTO wrkr_items (id, queue, name, payload, due, created, updated, root) "
            "VALUES ('old1', 'q', 'job.old', '{}', 0, 0, 0, 'old1')")
    monkeypatch.setattr(sql, "migrations", lambda: shipped)
    seen: list[tuple[str, object]] = []
    async with Wrkr(SQLiteBackend(file_url(tmp_path))) as app:
        await app.subscribe("q", "job.*", lambda event: seen.append((event.name, event.flow)))
        await app.listen()
        flow_id = await app.start_flow("upgraded.flow", steps=[[{"name": "job.new"}]])

        async def completed() -> bool:
            return (await app.flow(flow_id)).state == "completed"

        await eventually(completed, "the flow completes on the migrated file")
    flows = dict(seen)
    assert sorted(flows) == ["job.new", "job.old"]
    assert flows["job.old"] is None
    assert getattr(flows["job.new"], "id", None) == flow_id


# A worker process that takes a job and dies holding it. argv: url.
HANGER = r"""
import asyncio, sys
from wrkr import Wrkr

async def main():
    async with Wrkr.from_url(sys.argv[1], lease="1 second") as app:
        async def hang(event):
            print("started", event.id, flush=True)
            await asyncio.Event().wait()
        await app.subscribe("slow", "job.slow", hang)
        await app.listen()
        print("ready", flush=True)
        await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_a_job_whose_worker_was_killed_runs_again_and_its_flow_goes_on(
        tmp_path: Path) -> None:
    url = file_url(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HANGER, url, cwd=ROOT, env=env, stdout=subprocess.PIPE)
    after: list[str] = []

    async def slow(event: Event) -> str:
        return "second try"

    async def record(event: Event) -> None:
        assert event.flow is not None
        after.append(event.flow.results["job.slow"])

    try:
        assert worker.stdout is not None
        async with asyncio.timeout(WAIT * 3):
            assert (await worker.stdout.readline()).strip() == b"ready"
        async with Wrkr.from_url(url, lease="1 second") as app:
            flow_id = await app.start_flow(
                "killed.flow", steps=[[{"name": "job.slow"}], [{"name": "job.after"}]])
            async with asyncio.timeout(WAIT):
                assert (await worker.stdout.readline()).startswith(b"started")
            worker.kill()  # mid-job: its item stays leased until the lease ends
            await worker.wait()
            await app.subscribe("slow", "job.slow", slow)
            await app.subscribe("after", "job.after", record)
            await app.listen()

            async def completed() -> bool:
                return (await app.flow(flow_id)).state == "completed"

            await eventually(completed, "the flow completes after the kill")
            flow = await app.flow(flow_id)
    finally:
        if worker.returncode is None:
            worker.kill()
            await worker.wait()
    [job] = flow.steps[0]
    assert (job.attempts, job.result) == (2, "second try")
    assert after == ["second try"]
