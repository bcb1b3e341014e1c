"""The Vela upload worker on SQLite: two worker processes on one file, no server."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sqlite3
import sys
from datetime import timedelta
from pathlib import Path

import pytest

from examples.vela_upload import (
    ARRIVAL_MARGIN,
    FakeEtsy,
    Uploader,
    build_app,
    most_per_window,
    over_http,
    tasks,
)
from wrkr._when import parse_duration

# Fewer listings than the PostgreSQL run (3 x 250, in test_vela_upload.py): enough
# to keep the shared 30/s limit saturated for seconds, in a quarter of the time.
SHOPS, LISTINGS = 3, 60
SECOND = 1_000_000  # µs: the stamps compared as the backend compares them, exactly


def _log_grants(path: Path) -> None:
    """Copy every start the file records for the "etsy" limiter into a log table (the
    window deletes its rows once they are a period old)."""
    with contextlib.closing(sqlite3.connect(path)) as conn, conn:
        conn.executescript("""
            CREATE TABLE granted (at INTEGER NOT NULL, n INTEGER NOT NULL);
            CREATE TRIGGER log_grant AFTER INSERT ON wrkr_starts
            WHEN NEW.window_key = 'limiter:etsy'
            BEGIN INSERT INTO granted VALUES (NEW.at, NEW.n); END;""")


def _grants(path: Path) -> list[float]:
    """Return the time stamp (whole µs, exact) of each start granted, one per start."""
    with contextlib.closing(sqlite3.connect(path)) as conn:
        rows = conn.execute("SELECT at, n FROM granted ORDER BY at").fetchall()
    return [at for at, n in rows for _ in range(n)]


async def _wait_for_uploads(api: FakeEtsy, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while any(api.uploaded(f"shop-{n}") < LISTINGS for n in range(SHOPS)):
            api.changed.clear()
            await api.changed.wait()


@pytest.mark.timeout(240)
async def test_two_worker_processes_on_sqlite_upload_everything_one_shop_at_a_time(
        tmp_path: Path) -> None:
    path = tmp_path / "vela.db"
    url = f"sqlite:///{path}"
    api = FakeEtsy(failure_rate=0.03)
    server = await api.serve()
    etsy = f"http://127.0.0.1:{server.port}"
    publisher = build_app(url)
    Uploader(publisher, over_http(etsy))  # declares the queue, exclusive, as workers do
    async with publisher:
        _log_grants(path)
        workers = [await asyncio.create_subprocess_exec(
            sys.executable, "-m", "examples.vela_upload", "worker", "--etsy", etsy,
            env={**os.environ, "WRKR_URL": url}) for _ in range(2)]
        try:
            await publisher.publish(tasks(SHOPS, LISTINGS))
            await _wait_for_uploads(api, 200)
        finally:
            for worker in workers:
                worker.send_signal(signal.SIGTERM)
            for worker in workers:
                await worker.wait()
            server.close()
    assert [api.uploaded(f"shop-{n}") for n in range(SHOPS)] == [LISTINGS] * SHOPS
    assert api.overlapping_tasks() == []
    stamps = _grants(path)  # as the backend stamped them, shared by both processes
    print(f"most per second: {most_per_window(stamps, SECOND)} granted by the backend, "
          f"{api.most_per_window(1.0)} arrived")
    assert len(stamps) == len(api.requests)
    margin = parse_duration(ARRIVAL_MARGIN) // timedelta(microseconds=1)
    assert most_per_window(stamps, SECOND + margin) <= 30  # the grants, with the margin
    assert api.most_per_window(1.0) <= 30  # their arrivals, by the kernel's receive stamps
    assert len({request.task for request in api.requests}) >= SHOPS * 2
