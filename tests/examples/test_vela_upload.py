"""The Vela upload worker: every listing uploaded, one task per shop at a time, 30/s."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from datetime import timedelta

import psycopg
import pytest

from examples.vela_upload import (
    ARRIVAL_MARGIN,
    FakeEtsy,
    Uploader,
    build_app,
    in_process,
    most_per_window,
    over_http,
    run_here,
    tasks,
)
from wrkr import Event
from wrkr._when import parse_duration
from wrkr.testing import harness

SHOPS, LISTINGS = 3, 250
DSN = "postgresql://postgres@127.0.0.1:5432/test"


async def test_uploads_every_shop_on_memory_in_virtual_time_with_retries() -> None:
    api = await run_here("memory://", SHOPS, LISTINGS, failure_rate=0.1, down_for=5)
    assert [api.uploaded(f"shop-{n}") for n in range(SHOPS)] == [LISTINGS] * SHOPS
    assert api.overlapping_tasks() == []
    assert api.most_per_window(1.0) <= 30
    began = api.requests[0].at
    retries = [request.at - began for request in api.requests
               if request.task.endswith(":2")]
    assert retries, "every task's first attempt met the outage: each is retried"
    assert min(retries) >= 10.0, "the first retry comes 10 s after the failure"


def _attempts_began(api: FakeEtsy) -> list[float]:
    """Return when each attempt of the one task made its first call, in seconds from the first."""
    first: dict[str, float] = {}
    for request in api.requests:
        first.setdefault(request.task, request.at)
    ordered = sorted(first.values())
    return [at - ordered[0] for at in ordered]


async def _upload_one_shop_while_down(down_for: timedelta) -> tuple[FakeEtsy, list[Event]]:
    """Run one shop's task under the harness, the API down for `down_for` (virtual time)."""
    app, api = build_app("memory://"), FakeEtsy()
    Uploader(app, in_process(api))  # routes declared first, as the module does
    async with harness(app) as h:
        api.clock, api.down_until = h.clock, (h.clock.now() + down_for).timestamp()
        await app.publish(tasks(1, 2, per_shop=1))
        await h.drain(until="1 day")
        return api, h.failed


async def test_a_failing_upload_is_retried_after_10_s_30_min_and_2_h_in_virtual_time() -> None:
    api, failed = await _upload_one_shop_while_down(timedelta(hours=2, minutes=30, seconds=5))
    assert _attempts_began(api) == [0.0, 10.0, 10.0 + 1800, 10.0 + 1800 + 7200]
    assert failed == []
    assert api.uploaded("shop-0") == 2, "the fourth attempt, after the outage, uploads"


async def test_an_upload_failing_four_times_is_parked_as_failed() -> None:
    api, failed = await _upload_one_shop_while_down(timedelta(hours=3))
    assert _attempts_began(api) == [0.0, 10.0, 10.0 + 1800, 10.0 + 1800 + 7200]
    assert [(event.tid, event.attempts) for event in failed] == [("shop-0", 4)]
    assert "EtsyDown" in failed[0].errors[-1].type
    assert api.uploaded("shop-0") == 0


async def _log_grants(schema: str) -> None:
    """Copy every start the backend records for the "etsy" limiter into a log table
    (the window itself deletes its rows once they are a period old)."""
    async with await psycopg.AsyncConnection.connect(DSN, autocommit=True) as conn:
        await conn.execute(f"""
            CREATE TABLE "{schema}".granted (at timestamptz NOT NULL, n integer NOT NULL);
            CREATE FUNCTION "{schema}".log_grant() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF NEW.window_key = 'limiter:etsy' THEN
                    INSERT INTO "{schema}".granted VALUES (NEW.at, NEW.n);
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER log_grant AFTER INSERT ON "{schema}".starts
                FOR EACH ROW EXECUTE FUNCTION "{schema}".log_grant();""")


async def _grants(schema: str) -> list[float]:
    """Return the time stamp of each start granted, one per start, in order."""
    async with await psycopg.AsyncConnection.connect(DSN, autocommit=True) as conn:
        rows = await (await conn.execute(
            f'SELECT extract(epoch FROM at)::float8, n FROM "{schema}".granted ORDER BY at'
        )).fetchall()
    return [at for at, n in rows for _ in range(n)]


async def _wait_for_uploads(api: FakeEtsy, seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while any(api.uploaded(f"shop-{n}") < LISTINGS for n in range(SHOPS)):
            api.changed.clear()
            await api.changed.wait()


@pytest.mark.postgres
@pytest.mark.timeout(240)
async def test_two_worker_processes_on_postgres_upload_everything_one_shop_at_a_time(
        pg_schema: str) -> None:
    url = f"{DSN}?schema={pg_schema}"
    api = FakeEtsy(failure_rate=0.03)
    server = await api.serve()
    etsy = f"http://127.0.0.1:{server.port}"
    publisher = build_app(url)
    Uploader(publisher, over_http(etsy))  # declares the queue, exclusive, as workers do
    async with publisher:
        await _log_grants(pg_schema)
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
    # The backend stamps at most 30 grants in any 1 s + margin, both processes together;
    # the fake API, timing arrivals by the kernel's receive stamps, sees at most 30 in
    # any second: the margin covers the spread of the lag from grant to arrival.
    stamps = await _grants(pg_schema)
    print(f"most per second: {most_per_window(stamps, 1.0)} granted by the backend, "
          f"{api.most_per_window(1.0, granted=True)} seen granted by the workers, "
          f"{api.most_per_window(1.0)} arrived")
    assert len(stamps) == len(api.requests)
    assert most_per_window(stamps, 1.0 + parse_duration(ARRIVAL_MARGIN).total_seconds()) <= 30
    assert api.most_per_window(1.0) <= 30
    assert len({request.task for request in api.requests}) >= SHOPS * 2
