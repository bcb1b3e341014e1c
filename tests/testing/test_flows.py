"""`wrkr.testing.harness` runs a whole flow, retries and delayed jobs included, in one drain."""

from __future__ import annotations

from datetime import timedelta

from wrkr import Event, Retry, Wrkr
from wrkr.testing import harness


def _app() -> Wrkr:
    app = Wrkr()
    calls = {"fetch": 0}

    @app.on("svc.fetch", queue="fetch", retry=Retry(attempts=4, backoff=("10 minutes",)))
    async def fetch(event: Event) -> dict[str, int]:
        calls["fetch"] += 1
        if calls["fetch"] < 3:
            raise ConnectionError("service unavailable")
        return {"rows": 3}

    @app.on("svc.combine", queue="combine")
    async def combine(event: Event) -> str:
        assert event.flow is not None
        return f"combined {event.flow.results['svc.fetch']['rows']} rows"

    return app


async def test_a_flow_with_retries_and_a_delayed_job_runs_in_one_drain_until() -> None:
    app = _app()
    async with harness(app) as h:
        start = h.clock.now()
        flow_id = await app.start_flow("req", steps=[
            [{"name": "svc.fetch"}], [{"name": "svc.combine", "when": "1 hour"}]])
        await h.drain(until="1 day")
        flow = await app.flow(flow_id)
        assert flow.state == "completed"
        assert flow.results == {"svc.fetch": {"rows": 3}, "svc.combine": "combined 3 rows"}
        fetch = flow.steps[0][0]
        assert (fetch.attempts, len(fetch.errors)) == (3, 2)
        minutes = [(report.event.name, (report.started - start) // timedelta(minutes=1))
                   for report in h.reports]
        # two backoffs of 10 minutes, then the job due an hour after its step started
        assert minutes == [("svc.fetch", 0), ("svc.fetch", 10), ("svc.fetch", 20),
                           ("svc.combine", 80)]
