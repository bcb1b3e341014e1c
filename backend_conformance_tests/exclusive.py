"""`exclusive=True`: one item per tid processing at a time, in due order, across processes.

Each pitfall of the job systems users compare wrkr with has a test by name: a future
item blocking its tid (procrastinate#1599), a dead worker's tid staying locked
(procrastinate#1446, #1543), a failed item blocking its tid for good (pg-boss
`key_strict_fifo`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from datetime import timedelta

import pytest

from wrkr import Event, Fail, InvalidConfig, Retry
from wrkr.backend import Backend, Capability, QueueOptions

from ._helpers import (
    WAIT,
    AppFactory,
    BackendFactory,
    Names,
    Recorder,
    SuiteBase,
    eventually,
    needs,
    utcnow,
)


class TidTracker:
    """A handler that records, per tid, how many of its items run at once."""

    def __init__(self, pause: float = 0.02) -> None:
        self.pause = pause
        self.running: Counter[str | None] = Counter()
        self.most: Counter[str | None] = Counter()
        self.overall = 0
        self.most_overall = 0
        self.order: list[tuple[str | None, int]] = []
        self.done = asyncio.Event()
        self.expected = 0

    async def handle(self, event: Event) -> None:
        """Count the item as running for a moment, then done."""
        self.running[event.tid] += 1
        self.overall += 1
        self.most[event.tid] = max(self.most[event.tid], self.running[event.tid])
        self.most_overall = max(self.most_overall, self.overall)
        self.order.append((event.tid, event.payload["n"]))
        await asyncio.sleep(self.pause)
        self.running[event.tid] -= 1
        self.overall -= 1
        if len(self.order) >= self.expected:
            self.done.set()

    async def wait(self, count: int) -> None:
        """Wait until `count` items were handled, failing after `WAIT` seconds."""
        self.expected = count
        if len(self.order) >= count:
            return
        try:
            async with asyncio.timeout(WAIT):
                await self.done.wait()
        except TimeoutError:
            raise AssertionError(f"timed out: {len(self.order)} of {count} handled") from None


def _batch(name: str, tids: int, per_tid: int) -> list[dict[str, object]]:
    return [{"name": name, "tid": f"t{n % tids}", "payload": {"n": n}}
            for n in range(tids * per_tid)]


class ExclusiveSuite(SuiteBase):
    """`subscribe(..., exclusive=True)`: at most one item per tid processing, FIFO per tid."""

    @needs(Capability.EXCLUSIVE)
    async def test_exclusive_queue_processes_one_item_per_tid_at_a_time(
            self, app: AppFactory, names: Names) -> None:
        wrkr, tracker = await app(), TidTracker()
        await wrkr.subscribe(names.queue("a"), names.event("x"), tracker.handle,
                             concurrency=8, exclusive=True)
        await wrkr.publish(_batch(names.event("x"), tids=4, per_tid=5))
        await wrkr.listen()
        await tracker.wait(20)
        assert max(tracker.most.values()) == 1, tracker.most
        assert tracker.most_overall > 1, "items of different tids should run side by side"

    @needs(Capability.EXCLUSIVE, Capability.DELAY, Capability.QUERY)
    async def test_exclusive_items_of_one_tid_start_in_due_order(
            self, app: AppFactory, names: Names) -> None:
        wrkr, recorder, go_on = await app(), Recorder(), asyncio.Event()
        queue, name = names.queue("a"), names.event("x")

        async def handle(event: Event) -> None:
            recorder.record(event)
            if event.payload["n"] == "first":
                await go_on.wait()  # the tid stays busy while the others fall due

        await wrkr.subscribe(queue, name, handle, concurrency=4, exclusive=True)
        await wrkr.publish({"name": name, "tid": "t", "payload": {"n": "first"}})
        await wrkr.listen()
        await recorder.next("the first item")
        now = utcnow()
        tenths = [3, 1, 4, 2, 5]  # publishing order is not due order
        await wrkr.publish([{"name": name, "tid": "t", "payload": {"n": tenth},
                             "when": now + timedelta(seconds=tenth / 10)} for tenth in tenths])

        async def all_due() -> bool:
            return len(await wrkr.items(queue=queue, state="ready")) == len(tenths)

        await eventually(all_due, "the five items are due")
        go_on.set()
        got = await recorder.take(len(tenths), "the rest, in due order")
        assert [event.payload["n"] for event in got] == sorted(tenths)

    @needs(Capability.EXCLUSIVE, Capability.DELAY, Capability.QUERY)
    async def test_future_item_does_not_block_earlier_due_items_of_its_tid(
            self, app: AppFactory, names: Names) -> None:
        """procrastinate#1599: a job scheduled for later held its lock's queue meanwhile."""
        wrkr, recorder = await app(), Recorder()
        await wrkr.subscribe(names.queue("a"), names.event("x"), recorder.handle,
                             exclusive=True)
        await wrkr.publish({"name": names.event("x"), "tid": "t", "when": "in 1 hour",
                            "payload": {"n": "later"}})
        await wrkr.publish({"name": names.event("x"), "tid": "t", "payload": {"n": "now"}})
        await wrkr.listen()
        assert (await recorder.next("the item due now")).payload == {"n": "now"}
        [later] = await wrkr.items(queue=names.queue("a"), tid="t", state="scheduled")
        assert later.payload == {"n": "later"}

    @needs(Capability.EXCLUSIVE)
    async def test_crashed_workers_tid_is_free_when_its_lease_expires(
            self, app: AppFactory, names: Names, backend: Backend) -> None:
        """procrastinate#1446, #1543: a dead worker's lock outlived it."""
        queue, name = names.queue("a"), names.event("x")
        wrkr, recorder = await app(), Recorder()
        await wrkr.subscribe(queue, name, recorder.handle, exclusive=True)
        await wrkr.publish([{"name": name, "tid": "t", "payload": {"n": n}} for n in (1, 2)])
        await backend.configure(queue, QueueOptions(exclusive=True))
        stream = backend.deliveries(queue, worker="crashed", lease=timedelta(seconds=1),
                                    prefetch=1)
        try:
            async with asyncio.timeout(WAIT):
                assert (await anext(stream)).item.tid == "t"
            await self.simulate_crash(backend)
            await wrkr.listen()
            got = await recorder.take(2, "the crashed item again, then the next")
            assert [(event.payload["n"], event.attempts) for event in got] == [(1, 2), (2, 1)]
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()

    @needs(Capability.EXCLUSIVE)
    async def test_failed_item_does_not_block_its_tid(
            self, app: AppFactory, names: Names) -> None:
        """pg-boss `key_strict_fifo` blocks the key until the failed job is dealt with."""
        wrkr, recorder = await app(), Recorder()

        async def handle(event: Event) -> None:
            recorder.record(event)
            if event.payload["n"] == 1:
                raise Fail("cannot be done")

        await wrkr.subscribe(names.queue("a"), names.event("x"), handle, exclusive=True)
        await wrkr.publish([{"name": names.event("x"), "tid": "t", "payload": {"n": n}}
                            for n in (1, 2)])
        await wrkr.listen()
        got = await recorder.take(2, "the failing item, then the next of its tid")
        assert [event.payload["n"] for event in got] == [1, 2]

    @needs(Capability.EXCLUSIVE)
    async def test_item_retried_later_lets_the_next_item_of_its_tid_start_meanwhile(
            self, app: AppFactory, names: Names) -> None:
        wrkr, recorder = await app(), Recorder()

        async def handle(event: Event) -> None:
            recorder.record(event)
            if event.payload["n"] == 1 and event.attempts == 1:
                raise RuntimeError("try again in a while")

        await wrkr.subscribe(names.queue("a"), names.event("x"), handle, exclusive=True,
                             retry=Retry(attempts=2, backoff=("0.5 seconds",)))
        await wrkr.publish([{"name": names.event("x"), "tid": "t", "payload": {"n": n}}
                            for n in (1, 2)])
        await wrkr.listen()
        got = await recorder.take(3, "the first try, the next item, the retry")
        assert [(event.payload["n"], event.attempts) for event in got] == [
            (1, 1), (2, 1), (1, 2)]

    @needs(Capability.EXCLUSIVE)
    async def test_items_without_a_tid_are_not_restricted(
            self, app: AppFactory, names: Names) -> None:
        wrkr, recorder = await app(), Recorder()
        await wrkr.subscribe(names.queue("a"), names.event("x"), recorder.hold,
                             concurrency=4, exclusive=True)
        await wrkr.publish([{"name": names.event("x")} for _ in range(4)])
        await wrkr.listen()
        try:
            assert len(await recorder.take(4, "four items in flight at once")) == 4
        finally:
            recorder.release()

    @needs(Capability.EXCLUSIVE)
    async def test_two_processes_never_process_one_tid_at_once(
            self, app: AppFactory, names: Names, backend_factory: BackendFactory) -> None:
        tracker = TidTracker(pause=0.01)
        apps = [await app(backend=backend_factory()) for _ in range(2)]
        for each in apps:
            await each.subscribe(names.queue("a"), names.event("x"), tracker.handle,
                                 concurrency=4, exclusive=True)
        await apps[0].publish(_batch(names.event("x"), tids=3, per_tid=8))
        for each in apps:
            await each.listen()
        await tracker.wait(24)
        assert max(tracker.most.values()) == 1, tracker.most
        for tid in ("t0", "t1", "t2"):
            numbers = [n for each, n in tracker.order if each == tid]
            assert numbers == sorted(numbers), f"{tid} started out of order: {numbers}"

    @needs(Capability.EXCLUSIVE)
    async def test_queue_keeps_its_exclusive_setting_and_refuses_another(
            self, app: AppFactory, names: Names, backend_factory: BackendFactory) -> None:
        queue, recorder = names.queue("a"), Recorder()
        first = await app(backend=backend_factory())
        await first.subscribe(queue, names.event("x"), recorder.handle, exclusive=True)
        other = await app(backend=backend_factory())
        with pytest.raises(InvalidConfig, match="exclusive=True"):
            await other.subscribe(queue, names.event("y"), recorder.handle)
        await other.subscribe(queue, names.event("y"), recorder.handle, exclusive=True)
