"""Scheduling: `when` (never early, on time within `delay_tolerance`) and atomic `once_every`."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from wrkr import Event, State
from wrkr.backend import Backend, Capability

from ._helpers import (
    WAIT,
    AppFactory,
    Names,
    Recorder,
    SuiteBase,
    claim_one,
    due_of,
    eventually,
    message,
    needs,
    state_of,
    utcnow,
)

DELAY = 1.0
"""Seconds a delayed test event waits: short, yet long against scheduling noise."""


class TimedRecorder(Recorder):
    """A recorder that also notes the wall-clock time of each arrival."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived: list[tuple[Event, float]] = []

    async def handle(self, event: Event) -> None:
        """Record the event with the time it arrived."""
        self.arrived.append((event, utcnow().timestamp()))
        self.record(event)


class SchedulingSuite(SuiteBase):
    """Delayed delivery through the app and through `deliveries`."""

    async def _delayed_arrival(self, app: AppFactory, names: Names,
                               when: object) -> tuple[Event, float, float]:
        wrkr = await app()
        recorder = TimedRecorder()
        await wrkr.subscribe(names.queue("a"), names.event("x"), recorder.handle)
        await wrkr.listen()
        sent = utcnow().timestamp()
        await wrkr.publish({"name": names.event("x"), "when": when})
        await recorder.next("the delayed event")
        event, arrived = recorder.arrived[0]
        return event, sent, arrived

    @needs(Capability.DELAY)
    async def test_delayed_event_is_never_delivered_early(
            self, app: AppFactory, names: Names) -> None:
        event, sent, arrived = await self._delayed_arrival(app, names, f"{DELAY} seconds")
        assert arrived >= sent + DELAY - 0.01
        assert arrived >= due_of(event).timestamp()

    @needs(Capability.DELAY)
    async def test_delayed_event_is_delivered_on_time_within_the_tolerance(
            self, app: AppFactory, names: Names) -> None:
        _, sent, arrived = await self._delayed_arrival(app, names, f"{DELAY} seconds")
        late = arrived - (sent + DELAY)
        assert late <= self.delay_tolerance, f"{late:.3f}s late"

    @needs(Capability.DELAY)
    async def test_absolute_aware_datetime_is_honoured(
            self, app: AppFactory, names: Names) -> None:
        due = utcnow() + timedelta(seconds=DELAY)
        _, _, arrived = await self._delayed_arrival(app, names, due)
        assert due.timestamp() - 0.01 <= arrived <= due.timestamp() + self.delay_tolerance

    async def test_when_in_the_past_means_now(self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        recorder = Recorder()
        await wrkr.subscribe(names.queue("a"), names.event("x"), recorder.handle)
        await wrkr.listen()
        await wrkr.publish({"name": names.event("x"), "when": utcnow() - timedelta(days=3)})
        async with asyncio.timeout(self.delay_tolerance + 1):
            await recorder.next("an event due in the past")

    @needs(Capability.DELAY)
    async def test_event_due_now_overtakes_one_due_later(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        recorder = Recorder()
        await wrkr.subscribe(names.queue("a"), names.event("x"), recorder.handle)
        await wrkr.publish([{"name": names.event("x"), "tid": "later", "when": f"{DELAY} s"},
                            {"name": names.event("x"), "tid": "now"}])
        await wrkr.listen()
        assert (await recorder.next()).tid == "now"

    @needs(Capability.DELAY, Capability.QUERY)
    async def test_delayed_item_is_scheduled_until_due_then_ready(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        await wrkr.subscribe(names.queue("a"), names.event("x"), Recorder().handle)
        [item_id] = await wrkr.publish({"name": names.event("x"), "when": "0.5 seconds"})
        assert await state_of(wrkr, item_id) == State.SCHEDULED

        async def ready() -> bool:
            return await state_of(wrkr, item_id) == State.READY

        await eventually(ready, "the item is ready once due")

    @needs(Capability.DELAY)
    async def test_deliveries_never_yield_an_item_before_it_is_due(
            self, backend: Backend, names: Names) -> None:
        queue, name = names.queue("a"), names.event("x")
        await backend.subscribe(queue, name)
        due = utcnow() + timedelta(seconds=DELAY)
        await backend.enqueue([message(name, due=due)])
        stream = backend.deliveries(queue, worker="w", lease=timedelta(seconds=60), prefetch=1)
        async with asyncio.timeout(WAIT):
            await anext(stream)
        arrived = utcnow()
        await stream.aclose()
        assert arrived >= due
        assert (arrived - due).total_seconds() <= self.delay_tolerance


class OnceEverySuite(SuiteBase):
    """`once_every`: at most one pending item per (queue, name, tid), atomically."""

    def _tick(self, names: Names, tid: str = "1") -> dict[str, str]:
        return {"name": names.event("tick"), "tid": tid, "once_every": "1 hour"}

    @needs(Capability.ONCE_EVERY)
    async def test_once_every_publishes_nothing_while_one_is_pending(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        await wrkr.subscribe(names.queue("a"), names.event("tick"), Recorder().handle)
        assert len(await wrkr.publish(self._tick(names))) == 1
        assert await wrkr.publish(self._tick(names)) == []

    @needs(Capability.ONCE_EVERY)
    async def test_once_every_is_kept_per_tid(self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        await wrkr.subscribe(names.queue("a"), names.event("tick"), Recorder().handle)
        assert len(await wrkr.publish(self._tick(names, "1"))) == 1
        assert len(await wrkr.publish(self._tick(names, "2"))) == 1

    @needs(Capability.ONCE_EVERY)
    async def test_once_every_is_kept_per_queue(self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        await wrkr.subscribe(names.queue("a"), names.event("tick"), Recorder().handle)
        await wrkr.publish(self._tick(names))
        await wrkr.subscribe(names.queue("b"), names.event("tick"), Recorder().handle)
        assert len(await wrkr.publish(self._tick(names))) == 1

    @needs(Capability.ONCE_EVERY)
    async def test_once_every_ignores_an_item_being_processed(
            self, app: AppFactory, names: Names, backend: Backend) -> None:
        wrkr = await app()
        queue = names.queue("a")
        await wrkr.subscribe(queue, names.event("tick"), Recorder().handle)
        due_now = {**self._tick(names), "when": utcnow()}
        await wrkr.publish(due_now)
        await claim_one(backend, queue, worker="busy")
        assert len(await wrkr.publish(due_now)) == 1

    @needs(Capability.ONCE_EVERY, Capability.DELAY, Capability.QUERY)
    async def test_once_every_schedules_the_event_one_interval_ahead(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        await wrkr.subscribe(names.queue("a"), names.event("tick"), Recorder().handle)
        before = utcnow()
        [item_id] = await wrkr.publish(self._tick(names))
        item = await wrkr.get(item_id)
        assert item.state == State.SCHEDULED
        offset = due_of(item) - before
        assert timedelta(minutes=59) < offset < timedelta(minutes=61)

    @needs(Capability.ONCE_EVERY)
    async def test_once_every_is_atomic_under_concurrent_publishers(
            self, app: AppFactory, names: Names) -> None:
        apps = [await app(name=f"publisher{n}") for n in range(4)]
        await apps[0].subscribe(names.queue("a"), names.event("tick"), Recorder().handle)
        results = await asyncio.gather(
            *(wrkr.publish(self._tick(names)) for wrkr in apps for _ in range(5)))
        assert sum(len(ids) for ids in results) == 1

    @needs(Capability.ONCE_EVERY, Capability.CANCEL)
    async def test_once_every_publishes_again_once_the_pending_item_is_gone(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        await wrkr.subscribe(names.queue("a"), names.event("tick"), Recorder().handle)
        await wrkr.publish(self._tick(names))
        assert await wrkr.cancel(name=names.event("tick"), tid="1") == 1
        assert len(await wrkr.publish(self._tick(names))) == 1

