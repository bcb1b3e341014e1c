"""Workflows in the core: argument checks, results that are not JSON, the capability,
and `BlockingWrkr`. The promises every backend keeps are in backend_conformance_tests."""

from __future__ import annotations

import asyncio
import re
from typing import Any

import pytest

from wrkr import Event, InvalidEvent, ItemNotFound, NotSupported, Wrkr
from wrkr._blocking import BlockingWrkr
from wrkr.backend import Capability
from wrkr_memory import MemoryBackend, MemoryStore

A = [{"name": "job.a"}]


class FlowlessMemoryBackend(MemoryBackend):
    """A backend without FLOWS, as the brokers (RabbitMQ, MQTT) are today."""

    capabilities = MemoryBackend.capabilities - {Capability.FLOWS}


@pytest.mark.parametrize(("steps", "message"), [
    ([], "expected a non-empty list of steps"),
    ("job.a", "expected a non-empty list of steps"),
    ([[]], "invalid step 0"),
    ([{"name": "job.a"}], "invalid step 0"),
    ([["job.a"]], "expected a dict with a 'name'"),
    ([[{"name": "job.a", "queue": "q"}]], "unknown job field"),
    ([[{"name": "bad name"}]], "invalid event name 'bad name'"),
    ([[{"name": "job.a", "tid": 7}]], "invalid tid 7 of job 'job.a'"),
    ([[{"name": "job.a", "payload": {"x": {1, 2}}}]], "not JSON-serializable"),
    ([[{"name": "job.a", "when": "soonish"}]], "soonish"),
    ([[{"name": "job.a"}], [{"name": "job.a"}]], "job name(s) ['job.a'] appear twice"),
])
async def test_start_flow_refuses_bad_steps_naming_the_bad_value(steps: Any,
                                                                  message: str) -> None:
    async with Wrkr() as app:
        with pytest.raises(ValueError, match=re.escape(message)):
            await app.start_flow("flow", steps=steps)


async def test_start_flow_refuses_a_bad_flow_name_or_tid() -> None:
    async with Wrkr() as app:
        with pytest.raises(InvalidEvent, match="invalid event name"):
            await app.start_flow("bad name", steps=[A])
        with pytest.raises(InvalidEvent, match="invalid tid 5 of flow"):
            await app.start_flow("flow", tid=5, steps=[A])  # type: ignore[arg-type]


async def test_a_result_that_is_not_json_fails_the_job_saying_why() -> None:
    app = Wrkr()
    ran = asyncio.Event()

    async def handle(event: Event) -> object:
        ran.set()
        return {1, 2}  # a set: not JSON

    async with app:
        await app.subscribe("q", "job.a", handle)
        await app.listen()
        flow_id = await app.start_flow("flow", steps=[A])
        await ran.wait()
        async with asyncio.timeout(5):
            while (flow := await app.flow(flow_id)).state != "failed":  # noqa: ASYNC110
                await asyncio.sleep(0.01)
    assert flow.error is not None
    assert flow.error.type == "Fail"
    assert "not JSON" in flow.error.message
    assert flow.steps[0][0].attempts == 1  # retrying cannot fix it


async def test_flows_without_the_capability_raise_not_supported_naming_it() -> None:
    async with Wrkr(FlowlessMemoryBackend()) as app:
        with pytest.raises(NotSupported, match="'flows'"):
            await app.start_flow("flow", steps=[A])
        with pytest.raises(NotSupported, match="'flows'"):
            await app.flow("0" * 32)
        with pytest.raises(NotSupported, match="'flows'"):
            await app.cancel_flow("0" * 32)


async def test_an_unknown_flow_cannot_be_cancelled() -> None:
    async with Wrkr() as app:
        with pytest.raises(ItemNotFound, match="no flow has id"):
            await app.cancel_flow("f" * 32)
        with pytest.raises(InvalidEvent, match="invalid item id"):
            await app.flow("")


def test_blocking_wrkr_starts_reads_and_cancels_flows() -> None:
    app = Wrkr()
    app.on("job.a", queue="q")(lambda event: None)
    with BlockingWrkr(app) as facade:
        flow_id = facade.start_flow("flow", tid="r1", steps=[A])
        assert (facade.flow(flow_id).state, facade.flow(flow_id).tid) == ("queued", "r1")
        assert facade.cancel_flow(flow_id).state == "cancelled"


async def test_a_job_whose_flow_was_removed_runs_as_a_plain_event(
        caplog: pytest.LogCaptureFixture) -> None:
    store = MemoryStore()
    app = Wrkr(MemoryBackend(store))
    seen: asyncio.Queue[Event] = asyncio.Queue()

    async def handle(event: Event) -> None:
        seen.put_nowait(event)

    async with app:
        await app.subscribe("q", "job.a", handle)
        flow_id = await app.start_flow("flow", steps=[A])
        del store.flows.documents[flow_id]  # as a purge would
        await app.listen()
        async with asyncio.timeout(5):
            event = await seen.get()
    assert event.flow is None
    assert "is gone" in caplog.text
