"""Lifecycle: start / stop, durability across restarts, graceful stop, shared backends."""

from __future__ import annotations

import asyncio

from wrkr import Event
from wrkr.backend import Backend, Capability

from ._helpers import (
    AppFactory,
    BackendFactory,
    Names,
    Recorder,
    SuiteBase,
    is_gone,
    needs,
)


class LifecycleSuite(SuiteBase):
    """What survives a restart, and what `stop()` does with work in flight."""

    async def test_subscriptions_survive_a_restart_of_wrkr(
            self, app: AppFactory, names: Names) -> None:
        first = await app()
        await first.subscribe(names.queue("a"), names.event("x"), Recorder().handle)
        await first.stop()
        second = await app()
        assert await second.subscriptions(names.event("x")) == [names.queue("a")]
        assert len(await second.publish({"name": names.event("x")})) == 1

    async def test_event_published_while_no_consumer_runs_reaches_the_queue(
            self, app: AppFactory, names: Names) -> None:
        subscriber = await app()
        await subscriber.subscribe(names.queue("a"), names.event("x"), Recorder().handle)
        await subscriber.stop()
        publisher = await app()
        await publisher.publish({"name": names.event("x"), "tid": "waiting"})
        await publisher.stop()
        consumer = await app()
        recorder = Recorder()
        await consumer.subscribe(names.queue("a"), names.event("x"), recorder.handle)
        await consumer.listen()
        assert (await recorder.next("the event published while nobody listened")).tid == (
            "waiting")

    async def test_stop_waits_for_a_handler_in_flight(self, app: AppFactory,
                                                      names: Names) -> None:
        wrkr = await app()
        recorder, finished = Recorder(), asyncio.Event()

        async def handler(event: Event) -> None:
            recorder.record(event)
            await asyncio.sleep(0.3)  # a short piece of work stop() must wait for
            finished.set()

        await wrkr.subscribe(names.queue("a"), names.event("x"), handler)
        await wrkr.publish({"name": names.event("x")})
        await wrkr.listen()
        await recorder.next()
        await wrkr.stop(timeout=5.0)
        assert finished.is_set()

    async def test_item_finished_during_stop_is_not_delivered_again(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        recorder = Recorder()

        async def handler(event: Event) -> None:
            recorder.record(event)
            await asyncio.sleep(0.2)  # still running when stop() is called

        await wrkr.subscribe(names.queue("a"), names.event("x"), handler)
        await wrkr.publish([{"name": names.event("x"), "tid": tid} for tid in ("first", "next")])
        await wrkr.listen()
        await recorder.next()
        await wrkr.stop(timeout=5.0)
        successor = await app()
        await successor.subscribe(names.queue("a"), names.event("x"), recorder.handle)
        await successor.listen()
        assert (await recorder.next("the item nobody started")).tid == "next"
        await recorder.nothing_more(0.3)  # proving "first" was acked, not given back

    async def test_stop_past_its_timeout_gives_the_unfinished_item_back(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        recorder, cancelled = Recorder(), asyncio.Event()

        async def stuck(event: Event) -> None:
            recorder.record(event)
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        await wrkr.subscribe(names.queue("a"), names.event("x"), stuck)
        [item_id] = await wrkr.publish({"name": names.event("x")})
        await wrkr.listen()
        await recorder.next()
        await wrkr.stop(timeout=0.2)
        assert cancelled.is_set()
        successor = await app()
        await successor.subscribe(names.queue("a"), names.event("x"), recorder.handle)
        await successor.listen()
        again = await recorder.next("the item given back by stop()")
        assert (again.id, again.attempts) == (item_id, 1)

    @needs(Capability.QUERY)
    async def test_stop_leaves_nothing_it_claimed_processing(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        running = 0
        all_running = asyncio.Event()

        async def stuck(event: Event) -> None:
            nonlocal running
            running += 1
            if running == 8:
                all_running.set()
            await asyncio.sleep(30)

        queue = names.queue("a")
        await wrkr.subscribe(queue, names.event("x"), stuck, concurrency=8)
        ids = await wrkr.publish([{"name": names.event("x"), "tid": str(n)} for n in range(40)])
        await wrkr.listen()
        async with asyncio.timeout(10):
            await all_running.wait()  # 8 handlers running, more claimed ahead of them
        await wrkr.stop(timeout=0.1)
        successor = await app()
        items = await successor.items(queue=queue)
        assert sorted(str(item.id) for item in items) == sorted(ids)  # nothing lost
        assert [item.id for item in items if item.state == "processing"] == []

    async def test_an_app_starts_again_after_it_stopped(
            self, app: AppFactory, names: Names) -> None:
        wrkr, recorder = await app(), Recorder()
        for _ in range(2):
            await wrkr.stop()
            await wrkr.start()
        await wrkr.subscribe(names.queue("a"), names.event("x"), recorder.handle)
        [item_id] = await wrkr.publish({"name": names.event("x")})
        await wrkr.listen()
        assert (await recorder.next("the item published after a restart")).id == item_id

    async def test_one_backend_instance_serves_two_apps(
            self, app: AppFactory, names: Names, backend_factory: BackendFactory) -> None:
        shared = backend_factory()
        leaving, staying = await app(backend=shared), await app(backend=shared)
        recorder = Recorder()
        await staying.subscribe(names.queue("a"), names.event("x"), recorder.handle)
        await leaving.stop()
        await staying.publish({"name": names.event("x")})
        await staying.listen()
        await recorder.next()

    @needs(Capability.QUERY)
    async def test_items_published_before_a_restart_are_still_there(
            self, app: AppFactory, names: Names) -> None:
        first = await app()
        await first.subscribe(names.queue("a"), names.event("x"), Recorder().handle)
        [item_id] = await first.publish({"name": names.event("x")})
        await first.stop()
        second = await app()
        assert (await second.get(item_id)).id == item_id
        assert not await is_gone(second, item_id)

    async def test_backend_close_is_idempotent(self, backend_factory: BackendFactory) -> None:
        backend: Backend = backend_factory()
        await backend.open()
        assert backend.is_open
        await backend.close()
        await backend.close()
        assert not backend.is_open

    async def test_backend_connects_again_to_existing_storage(
            self, backend_factory: BackendFactory, names: Names) -> None:
        first = backend_factory()
        await first.open()
        await first.subscribe(names.queue("a"), names.event("x"))
        await first.close()
        second = backend_factory()
        await second.open()
        try:
            assert await second.queues_for(names.event("x")) == [names.queue("a")]
        finally:
            await second.close()

