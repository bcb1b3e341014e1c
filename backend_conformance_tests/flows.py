"""Workflows: steps in order, jobs in parallel, results passed on, failures and cancels
stopping the flow, end events, and a step's advance made exactly once (FLOWS).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

import pytest

from wrkr import Event, Fail, Flow, ItemNotFound, Retry, Wrkr
from wrkr.backend import Capability

from ._helpers import (
    AppFactory,
    BackendFactory,
    Names,
    Recorder,
    SuiteBase,
    eventually,
    fast_retry,
    needs,
    opened,
)

__all__ = ["FlowSuite"]

ENDED = ("completed", "failed", "cancelled")


async def ended(app: Wrkr, flow_id: str) -> Flow:
    """Wait until the flow has ended; return it."""
    found: list[Flow] = []

    async def check() -> bool:
        found.append(await app.flow(flow_id))
        return found[-1].state in ENDED

    await eventually(check, f"flow {flow_id} ends")
    return found[-1]


def returning(recorder: Recorder, value: Any) -> Any:
    """Return a handler that records its event and returns `value` (the job's result)."""

    async def handle(event: Event) -> Any:
        recorder.record(event)
        return value

    return handle


class FlowSuite(SuiteBase):
    """`app.start_flow`, `app.flow`, `app.cancel_flow` and `event.flow`, by FLOWS."""

    # -- order and results ---------------------------------------------------------------

    @needs(Capability.FLOWS)
    async def test_next_step_starts_only_after_every_job_of_the_step_finished(
            self, app: AppFactory, names: Names) -> None:
        first, second = Recorder(), Recorder()
        wrkr = await app()
        await wrkr.subscribe(names.queue("a"), names.event("a"), first.hold, concurrency=2)
        await wrkr.subscribe(names.queue("b"), names.event("b"), first.hold)
        await wrkr.subscribe(names.queue("c"), names.event("c"), second.handle)
        await wrkr.listen()
        flow_id = await wrkr.start_flow(names.event("flow"), steps=[
            [{"name": names.event("a")}, {"name": names.event("b")}],
            [{"name": names.event("c")}]])
        await first.take(2, "both jobs of step 1")
        await second.nothing_more(0.3)  # step 1 still running: step 2 has not started
        first.release()
        started = await second.next("the job of step 2")
        assert started.flow is not None
        assert started.flow.step == 1
        assert (await ended(wrkr, flow_id)).state == "completed"

    @needs(Capability.FLOWS)
    async def test_each_job_sees_its_flow_and_the_results_of_earlier_steps_by_job_name(
            self, app: AppFactory, names: Names) -> None:
        seen = Recorder()
        wrkr = await app()
        await wrkr.subscribe(names.queue("a"), names.event("a"), returning(seen, {"n": 1}))
        await wrkr.subscribe(names.queue("b"), names.event("b"), returning(seen, [2]))
        await wrkr.subscribe(names.queue("c"), names.event("c"), returning(seen, "three"))
        await wrkr.listen()
        flow_id = await wrkr.start_flow(names.event("flow"), tid="req-1", payload={"p": 1},
                                        steps=[[{"name": names.event("a")}],
                                               [{"name": names.event("b"),
                                                 "payload": {"job": "b"}}],
                                               [{"name": names.event("c")}]])
        a, b, c = await seen.take(3, "the three jobs")
        assert a.flow is not None
        assert b.flow is not None
        assert c.flow is not None
        assert (a.flow.id, a.flow.name, a.flow.payload, a.flow.step) == (
            flow_id, names.event("flow"), {"p": 1}, 0)
        assert (a.flow.results, b.flow.results) == ({}, {names.event("a"): {"n": 1}})
        assert c.flow.results == {names.event("a"): {"n": 1}, names.event("b"): [2]}
        assert b.payload == {"job": "b"}
        assert b.tid == "req-1"
        done = await ended(wrkr, flow_id)
        assert done.results == {names.event("a"): {"n": 1}, names.event("b"): [2],
                                names.event("c"): "three"}
        assert [job.result for step in done.steps for job in step] == [{"n": 1}, [2], "three"]

    @needs(Capability.FLOWS)
    async def test_a_job_reaching_several_queues_has_its_result_by_queue(
            self, app: AppFactory, names: Names) -> None:
        seen = Recorder()
        wrkr = await app()
        await wrkr.subscribe(names.queue("x"), names.event("fan"), returning(seen, "x"))
        await wrkr.subscribe(names.queue("y"), names.event("fan"), returning(seen, "y"))
        await wrkr.subscribe(names.queue("next"), names.event("next"), seen.handle)
        await wrkr.listen()
        flow_id = await wrkr.start_flow(names.event("flow"), steps=[
            [{"name": names.event("fan")}], [{"name": names.event("next")}]])
        *_, after = await seen.take(3, "both copies, then step 2")
        by_queue = {names.queue("x"): "x", names.queue("y"): "y"}
        assert after.flow is not None
        assert after.flow.results == {names.event("fan"): by_queue}
        done = await ended(wrkr, flow_id)
        assert len(done.steps[0][0].item_ids) == 2
        assert done.steps[0][0].result == by_queue

    @needs(Capability.FLOWS)
    async def test_a_job_reaching_no_queue_completes_at_once_with_result_none(
            self, app: AppFactory, names: Names, caplog: pytest.LogCaptureFixture) -> None:
        seen = Recorder()
        wrkr = await app()
        await wrkr.subscribe(names.queue("b"), names.event("b"), seen.handle)
        await wrkr.listen()
        flow_id = await wrkr.start_flow(names.event("flow"), steps=[
            [{"name": names.event("nobody")}], [{"name": names.event("b")}]])
        started = await seen.next("step 2, at once")
        assert started.flow is not None
        assert started.flow.results == {names.event("nobody"): None}
        done = await ended(wrkr, flow_id)
        assert done.state == "completed"
        assert done.steps[0][0].item_ids == ()
        assert "reached no queue" in caplog.text

    @needs(Capability.FLOWS)
    async def test_an_event_outside_a_flow_has_no_flow(
            self, app: AppFactory, names: Names) -> None:
        seen = Recorder()
        wrkr = await app()
        await wrkr.subscribe(names.queue("a"), names.event("a"), seen.handle)
        await wrkr.listen()
        await wrkr.publish({"name": names.event("a")})
        assert (await seen.next()).flow is None

    # -- states ----------------------------------------------------------------------

    @needs(Capability.FLOWS)
    async def test_a_flow_is_queued_then_running_then_completed(
            self, app: AppFactory, names: Names) -> None:
        seen = Recorder()
        wrkr = await app()
        await wrkr.subscribe(names.queue("a"), names.event("a"), seen.hold)
        flow_id = await wrkr.start_flow(names.event("flow"), tid="t",
                                        steps=[[{"name": names.event("a")}]])
        queued = await wrkr.flow(flow_id)
        assert (queued.state, queued.tid, queued.steps[0][0].state) == ("queued", "t", "ready")
        assert queued.created is not None
        assert queued.finished is None
        await wrkr.listen()
        await seen.next()
        running = await wrkr.flow(flow_id)
        assert (running.state, running.steps[0][0].state) == ("running", "processing")
        seen.release()
        done = await ended(wrkr, flow_id)
        assert (done.state, done.steps[0][0].state, done.error) == ("completed", "done", None)
        assert done.finished is not None

    @needs(Capability.FLOWS)
    async def test_a_flow_is_read_by_another_process(
            self, app: AppFactory, backend_factory: BackendFactory, names: Names) -> None:
        wrkr = await app()
        await wrkr.subscribe(names.queue("a"), names.event("a"), Recorder().handle)
        flow_id = await wrkr.start_flow(names.event("flow"), steps=[[{"name": names.event("a")}]])
        async with opened(backend_factory) as other:
            reader = await app(backend=other)
            found = await reader.flow(flow_id)
        assert (found.id, found.name, found.state) == (flow_id, names.event("flow"), "queued")

    @needs(Capability.FLOWS)
    async def test_an_unknown_flow_raises_item_not_found(self, app: AppFactory) -> None:
        wrkr = await app()
        with pytest.raises(ItemNotFound, match="no flow"):
            await wrkr.flow("0" * 32)

    # -- failures, retries, cancels ---------------------------------------------------------

    @needs(Capability.FLOWS)
    async def test_fail_fails_the_flow_and_cancels_the_pending_jobs_of_its_step(
            self, app: AppFactory, names: Names) -> None:
        seen = Recorder()

        async def refuse(event: Event) -> None:
            raise Fail("service said no")

        wrkr = await app()
        await wrkr.subscribe(names.queue("bad"), names.event("bad"), refuse)
        await wrkr.subscribe(names.queue("late"), names.event("late"), seen.handle)
        await wrkr.subscribe(names.queue("next"), names.event("next"), seen.handle)
        await wrkr.listen()
        flow_id = await wrkr.start_flow(names.event("flow"), steps=[
            [{"name": names.event("bad")}, {"name": names.event("late"), "when": "1 hour"}],
            [{"name": names.event("next")}]])
        done = await ended(wrkr, flow_id)
        assert done.state == "failed"
        assert done.error is not None
        assert done.error.message == "service said no"
        bad, late = done.steps[0]
        assert (bad.state, late.state, done.steps[1][0].state) == ("failed", "cancelled",
                                                                   "cancelled")
        assert await wrkr.items(queue=names.queue("late")) == []  # its item was removed
        await seen.nothing_more(0.3)  # no further step started

    @needs(Capability.FLOWS)
    async def test_a_running_job_of_a_failed_flow_finishes_and_records_its_result(
            self, app: AppFactory, names: Names) -> None:
        slow = Recorder()

        async def refuse(event: Event) -> None:
            await slow.next("the slow job to start")
            raise Fail("no")

        async def finish(event: Event) -> str:
            await slow.hold(event)
            return "finished anyway"

        wrkr = await app()
        await wrkr.subscribe(names.queue("bad"), names.event("bad"), refuse)
        await wrkr.subscribe(names.queue("slow"), names.event("slow"), finish)
        await wrkr.listen()
        flow_id = await wrkr.start_flow(names.event("flow"), steps=[
            [{"name": names.event("bad")}, {"name": names.event("slow")}]])
        await eventually(lambda: _is(wrkr, flow_id, "failed"), "the flow fails")
        assert (await wrkr.flow(flow_id)).steps[0][1].state == "processing"
        slow.release()

        async def recorded() -> bool:
            return (await wrkr.flow(flow_id)).steps[0][1].state == "done"

        await eventually(recorded, "the running job's result is recorded")
        failed = await wrkr.flow(flow_id)
        assert failed.state == "failed"
        assert failed.steps[0][1].result == "finished anyway"

    @needs(Capability.FLOWS)
    async def test_a_job_failing_after_its_flow_failed_is_not_tried_again(
            self, app: AppFactory, names: Names) -> None:
        slow = Recorder()

        async def refuse(event: Event) -> None:
            await slow.next("the slow job to start")
            raise Fail("no")

        async def flaky(event: Event) -> None:
            await slow.hold(event)
            raise ConnectionError("timed out")

        wrkr = await app()
        await wrkr.subscribe(names.queue("bad"), names.event("bad"), refuse)
        await wrkr.subscribe(names.queue("slow"), names.event("slow"), flaky,
                             retry=fast_retry(3))
        await wrkr.listen()
        flow_id = await wrkr.start_flow(names.event("flow"), steps=[
            [{"name": names.event("bad")}, {"name": names.event("slow")}]])
        await eventually(lambda: _is(wrkr, flow_id, "failed"), "the flow fails")
        slow.release()

        async def removed() -> bool:
            return (await wrkr.flow(flow_id)).steps[0][1].state == "cancelled"

        await eventually(removed, "the failed job's retry is removed")
        job = (await wrkr.flow(flow_id)).steps[0][1]
        assert (job.attempts, [error.message for error in job.errors]) == (1, ["timed out"])
        await slow.nothing_more(0.3)  # not delivered again
        assert await wrkr.items(queue=names.queue("slow")) == []

    @needs(Capability.FLOWS)
    async def test_a_retried_job_keeps_every_attempt_in_its_error_history(
            self, app: AppFactory, names: Names) -> None:
        tries = Recorder()

        async def flaky(event: Event) -> str:
            tries.record(event)
            if event.attempts < 3:
                raise ConnectionError(f"attempt {event.attempts} timed out")
            return "ok"

        wrkr = await app()
        await wrkr.subscribe(names.queue("a"), names.event("a"), flaky, retry=fast_retry(3))
        await wrkr.listen()
        flow_id = await wrkr.start_flow(names.event("flow"), steps=[[{"name": names.event("a")}]])
        done = await ended(wrkr, flow_id)
        job = done.steps[0][0]
        assert (done.state, job.state, job.attempts, job.result) == ("completed", "done", 3, "ok")
        assert [error.message for error in job.errors] == ["attempt 1 timed out",
                                                          "attempt 2 timed out"]

    @needs(Capability.FLOWS)
    async def test_the_last_attempt_failing_fails_the_flow(
            self, app: AppFactory, names: Names) -> None:
        async def broken(event: Event) -> None:
            raise ConnectionError("down")

        wrkr = await app()
        await wrkr.subscribe(names.queue("a"), names.event("a"), broken, retry=fast_retry(2))
        await wrkr.listen()
        flow_id = await wrkr.start_flow(names.event("flow"), steps=[[{"name": names.event("a")}]])
        done = await ended(wrkr, flow_id)
        assert done.state == "failed"
        assert done.error is not None
        assert (done.error.type, done.error.attempt, len(done.steps[0][0].errors)) == (
            "ConnectionError", 2, 2)

    @needs(Capability.FLOWS)
    async def test_cancel_flow_removes_pending_jobs_and_ends_it_cancelled(
            self, app: AppFactory, names: Names) -> None:
        seen = Recorder()
        wrkr = await app()
        await wrkr.subscribe(names.queue("a"), names.event("a"), seen.handle)
        await wrkr.subscribe(names.queue("b"), names.event("b"), seen.handle)
        flow_id = await wrkr.start_flow(names.event("flow"), steps=[
            [{"name": names.event("a")}], [{"name": names.event("b")}]])
        cancelled = await wrkr.cancel_flow(flow_id)
        assert cancelled.state == "cancelled"
        assert cancelled.finished is not None
        assert [job.state for step in cancelled.steps for job in step] == ["cancelled"] * 2
        await wrkr.listen()
        await seen.nothing_more(0.3)
        assert (await wrkr.cancel_flow(flow_id)).state == "cancelled"  # again: nothing

    # -- end events ------------------------------------------------------------------------

    @needs(Capability.FLOWS)
    async def test_a_completed_flow_publishes_name_completed_with_its_id_as_tid(
            self, app: AppFactory, names: Names) -> None:
        ends = Recorder()
        wrkr = await app()
        flow = names.event("flow")
        await wrkr.subscribe(names.queue("a"), names.event("a"), returning(Recorder(), 5))
        await wrkr.subscribe(names.queue("ends"), f"{flow}.completed", ends.handle)
        await wrkr.listen()
        flow_id = await wrkr.start_flow(flow, steps=[[{"name": names.event("a")}]])
        end = await ends.next(f"{flow}.completed")
        assert end.tid == flow_id
        assert end.payload == {"flow": flow_id, "name": flow, "state": "completed",
                               "results": {names.event("a"): 5}, "error": None}

    @needs(Capability.FLOWS)
    async def test_a_failed_flow_publishes_name_failed_with_its_id_as_tid(
            self, app: AppFactory, names: Names) -> None:
        ends = Recorder()

        async def refuse(event: Event) -> None:
            raise Fail("bad input")

        wrkr = await app()
        flow = names.event("flow")
        await wrkr.subscribe(names.queue("a"), names.event("a"), refuse)
        await wrkr.subscribe(names.queue("ends"), f"{flow}.failed", ends.handle)
        await wrkr.listen()
        flow_id = await wrkr.start_flow(flow, steps=[[{"name": names.event("a")}]])
        end = await ends.next(f"{flow}.failed")
        assert (end.tid, end.payload["state"], end.payload["error"]["message"]) == (
            flow_id, "failed", "bad input")
        await ends.nothing_more(0.3)  # published once

    # -- the advance, exactly once ---------------------------------------------------------------

    @needs(Capability.FLOWS, Capability.WILDCARDS)
    async def test_the_next_step_starts_exactly_once_when_many_workers_ack_together(
            self, app: AppFactory, backend_factory: BackendFactory, names: Names) -> None:
        """Several apps (each its own backend, as processes are) ack the last items of
        wide steps at the same moment; each flow's next step is published once."""
        started: Counter[str] = Counter()
        width, flows = 8, 6

        async def wide(event: Event) -> int:
            await asyncio.sleep(0)
            return 1

        async def after(event: Event) -> None:
            assert event.flow is not None
            started[event.flow.id] += 1

        workers = [await app(backend=backend_factory()) for _ in range(3)]
        for wrkr in workers:
            await wrkr.subscribe(names.queue("wide"), names.event("wide.*"), wide,
                                 concurrency=width, retry=Retry(attempts=1))
            await wrkr.subscribe(names.queue("after"), names.event("after"), after)
        steps = [[{"name": names.event(f"wide.{n}")} for n in range(width)],
                 [{"name": names.event("after")}]]
        ids = [await workers[0].start_flow(names.event("flow"), steps=steps)
               for _ in range(flows)]
        await asyncio.gather(*(wrkr.listen() for wrkr in workers))
        for flow_id in ids:
            assert (await ended(workers[0], flow_id)).state == "completed"
        await asyncio.sleep(0.3)  # a second start would have run by now
        assert started == dict.fromkeys(ids, 1)


async def _is(wrkr: Wrkr, flow_id: str, state: str) -> bool:
    return (await wrkr.flow(flow_id)).state == state
