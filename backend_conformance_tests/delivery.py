"""Delivery: routing (fan-out, wildcards, unsubscribe), consuming, acking, order."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from wrkr import Event, InvalidEvent
from wrkr.backend import Backend, Capability, State

from ._helpers import (
    AppFactory,
    Names,
    Recorder,
    SuiteBase,
    claim_one,
    eventually,
    fast_retry,
    is_gone,
    message,
    needs,
    utcnow,
)

Ack = Callable[[], Awaitable[None]]


class RoutingSuite(SuiteBase):
    """Which queues an event reaches: subscriptions, fan-out, wildcards, unsubscribe."""

    async def test_event_reaches_every_subscribed_queue(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        recorder = Recorder()
        queues = [names.queue(suffix) for suffix in ("a", "b", "c")]
        for queue in queues:
            await wrkr.subscribe(queue, names.event("x"), recorder.handle)
        await wrkr.publish({"name": names.event("x"), "tid": "1"})
        await wrkr.listen()
        got = await recorder.take(3, "one copy per queue")
        assert sorted(str(event.queue) for event in got) == queues
        assert {event.tid for event in got} == {"1"}

    async def test_subscriptions_lists_the_sorted_distinct_queues(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        for suffix in ("b", "a", "c"):
            await wrkr.subscribe(names.queue(suffix), names.event("x"), Recorder().handle)
        expected = [names.queue("a"), names.queue("b"), names.queue("c")]
        assert await wrkr.subscriptions(names.event("x")) == expected

    async def test_subscribing_twice_is_one_subscription(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        queue = names.queue("a")
        await wrkr.subscribe(queue, names.event("x"), Recorder().handle)
        await wrkr.subscribe(queue, names.event("x"), Recorder().handle)
        assert await wrkr.subscriptions(names.event("x")) == [queue]
        assert len(await wrkr.publish({"name": names.event("x")})) == 1

    @needs(Capability.WILDCARDS)
    async def test_star_matches_exactly_one_segment(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        queue = names.queue("a")
        await wrkr.subscribe(queue, names.event("user.*"), Recorder().handle)
        assert await wrkr.subscriptions(names.event("user.added")) == [queue]
        assert await wrkr.subscriptions(names.event("user")) == []
        assert await wrkr.subscriptions(names.event("user.added.twice")) == []
        assert await wrkr.subscriptions(names.event("customer.added")) == []

    @needs(Capability.WILDCARDS)
    async def test_hash_matches_zero_or_more_segments(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        queue = names.queue("a")
        await wrkr.subscribe(queue, names.event("user.#"), Recorder().handle)
        for suffix in ("user", "user.added", "user.added.by.admin"):
            assert await wrkr.subscriptions(names.event(suffix)) == [queue], suffix
        assert await wrkr.subscriptions(names.event("users.added")) == []

    @needs(Capability.WILDCARDS)
    async def test_hash_in_the_middle_matches_zero_or_more_segments(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        queue = names.queue("a")
        await wrkr.subscribe(queue, names.event("#.done"), Recorder().handle)
        for suffix in ("done", "job.done", "job.step.done"):
            assert await wrkr.subscriptions(names.event(suffix)) == [queue], suffix
        assert await wrkr.subscriptions(names.event("job.done.not")) == []

    @needs(Capability.WILDCARDS)
    async def test_wildcard_subscription_delivers_matching_events_only(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        recorder = Recorder()
        await wrkr.subscribe(names.queue("a"), names.event("user.*"), recorder.handle)
        await wrkr.publish([{"name": names.event(suffix)}
                            for suffix in ("user.added", "user.a.b", "user", "user.removed")])
        await wrkr.listen()
        got = await recorder.take(2)
        assert [event.name for event in got] == [names.event("user.added"),
                                                 names.event("user.removed")]

    @needs(Capability.WILDCARDS)
    async def test_queue_matched_by_two_patterns_gets_one_copy(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        queue = names.queue("a")
        for pattern in ("user.added", "user.*", "#"):
            await wrkr.subscribe(queue, names.event(pattern), Recorder().handle)
        assert await wrkr.subscriptions(names.event("user.added")) == [queue]
        assert len(await wrkr.publish({"name": names.event("user.added")})) == 1

    async def test_unsubscribed_queue_gets_no_new_events(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        queue = names.queue("a")
        await wrkr.subscribe(queue, names.event("x"), Recorder().handle)
        await wrkr.unsubscribe(queue, names.event("x"))
        assert await wrkr.subscriptions(names.event("x")) == []
        assert await wrkr.publish({"name": names.event("x")}) == []

    async def test_unsubscribe_keeps_the_other_queues(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        await wrkr.subscribe(names.queue("a"), names.event("x"), Recorder().handle)
        await wrkr.subscribe(names.queue("b"), names.event("x"), Recorder().handle)
        await wrkr.unsubscribe(names.queue("a"), names.event("x"))
        assert await wrkr.subscriptions(names.event("x")) == [names.queue("b")]

    async def test_unsubscribing_twice_is_harmless(self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        await wrkr.subscribe(names.queue("a"), names.event("x"), Recorder().handle)
        await wrkr.unsubscribe(names.queue("a"), names.event("x"))
        await wrkr.unsubscribe(names.queue("a"), names.event("x"))
        await wrkr.unsubscribe(names.queue("never"), names.event("x"))
        assert await wrkr.subscriptions(names.event("x")) == []

    async def test_unsubscribe_keeps_items_already_queued(
            self, backend: Backend, names: Names) -> None:
        queue, name = names.queue("a"), names.event("x")
        await backend.subscribe(queue, name)
        await backend.enqueue([message(name, tid="kept")])
        await backend.unsubscribe(queue, name)
        assert (await claim_one(backend, queue, worker="w")).item.tid == "kept"

    @pytest.mark.parametrize("queue", ["", "a b", "a..b", "a.*", "q/1", 7])
    async def test_bad_queue_name_is_rejected_and_subscribes_nothing(
            self, app: AppFactory, names: Names, queue: Any) -> None:
        wrkr = await app()
        with pytest.raises(InvalidEvent):
            await wrkr.subscribe(queue, names.event("x"), Recorder().handle)
        assert await wrkr.subscriptions(names.event("x")) == []

    @pytest.mark.parametrize("pattern", ["", "a b", "a..b", "a.b*", "a.#x", "a.", None])
    async def test_bad_pattern_is_rejected_and_subscribes_nothing(
            self, app: AppFactory, names: Names, pattern: Any) -> None:
        wrkr = await app()
        with pytest.raises(InvalidEvent):
            await wrkr.subscribe(names.queue("a"), pattern, Recorder().handle)
        assert await wrkr.subscriptions(names.event("a")) == []


class ConsumingSuite(SuiteBase):
    """What handlers receive, how they ack, and in which order."""

    async def test_handler_receives_the_published_event(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        recorder = Recorder()
        queue = names.queue("a")
        await wrkr.subscribe(queue, names.event("x"), recorder.handle)
        [item_id] = await wrkr.publish({"name": names.event("x"), "tid": "42",
                                        "payload": {"plan": "pro"}})
        await wrkr.listen()
        got = await recorder.next()
        assert (got.id, got.queue, got.name, got.tid, got.payload, got.attempts) == (
            item_id, queue, names.event("x"), "42", {"plan": "pro"}, 1)
        assert got.created is not None
        assert got.created.utcoffset() == timedelta(0)

    async def test_sync_handler_is_supported(self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        recorder = Recorder()

        def handler(event: Event) -> None:
            recorder.record(event)

        await wrkr.subscribe(names.queue("a"), names.event("x"), handler)
        await wrkr.publish({"name": names.event("x"), "tid": "sync"})
        await wrkr.listen()
        assert (await recorder.next()).tid == "sync"

    @needs(Capability.QUERY)
    async def test_handler_returning_normally_acks_the_item(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        recorder = Recorder()
        await wrkr.subscribe(names.queue("a"), names.event("x"), recorder.handle)
        [item_id] = await wrkr.publish({"name": names.event("x")})
        await wrkr.listen()
        await recorder.next()
        await eventually(lambda: is_gone(wrkr, item_id), "the acked item is deleted")

    async def test_handler_that_acks_early_is_not_retried_when_it_raises(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app(retry=fast_retry(attempts=3, backoff="0.1 seconds"))
        recorder = Recorder()

        async def handler(event: Event, ack: Ack) -> None:
            recorder.record(event)
            if event.tid == "early":
                await ack()
                raise RuntimeError("broke after acking")

        await wrkr.subscribe(names.queue("a"), names.event("x"), handler)
        await wrkr.publish([{"name": names.event("x"), "tid": tid} for tid in ("early", "next")])
        await wrkr.listen()
        assert [event.tid for event in await recorder.take(2)] == ["early", "next"]
        await recorder.nothing_more(0.3)  # proving no retry comes after the 0.1 s backoff

    async def test_handler_with_ack_argument_acks_after_returning(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app(retry=fast_retry(attempts=3, backoff="0.1 seconds"))
        recorder = Recorder()

        async def handler(event: Event, ack: Ack) -> None:
            recorder.record(event)

        await wrkr.subscribe(names.queue("a"), names.event("x"), handler)
        await wrkr.publish({"name": names.event("x")})
        await wrkr.listen()
        assert (await recorder.next()).attempts == 1
        await recorder.nothing_more(0.3)  # proving the item is not redelivered

    async def test_sync_handler_can_ack_early(self, app: AppFactory, names: Names) -> None:
        wrkr = await app(retry=fast_retry(attempts=3, backoff="0.1 seconds"))
        recorder = Recorder()

        def handler(event: Event, ack: Callable[[], Any]) -> None:
            ack()
            recorder.record(event)
            raise RuntimeError("broke after acking")

        await wrkr.subscribe(names.queue("a"), names.event("x"), handler)
        await wrkr.publish({"name": names.event("x")})
        await wrkr.listen()
        await recorder.next()
        await recorder.nothing_more(0.3)  # proving no retry comes after the 0.1 s backoff

    async def test_one_consumer_at_concurrency_one_gets_items_in_publishing_order(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        recorder = Recorder()
        await wrkr.subscribe(names.queue("a"), names.event("x"), recorder.handle)
        for n in range(8):
            await wrkr.publish({"name": names.event("x"), "tid": str(n)})
        await wrkr.listen()
        assert [event.tid for event in await recorder.take(8)] == [str(n) for n in range(8)]

    async def test_items_due_at_the_same_time_keep_publishing_order(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        recorder = Recorder()
        await wrkr.subscribe(names.queue("a"), names.event("x"), recorder.handle)
        due = utcnow() - timedelta(seconds=1)
        await wrkr.publish([{"name": names.event("x"), "tid": str(n), "when": due}
                            for n in range(8)])
        await wrkr.listen()
        assert [event.tid for event in await recorder.take(8)] == [str(n) for n in range(8)]

    async def test_concurrency_runs_that_many_handlers_at_once(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        recorder = Recorder()
        await wrkr.subscribe(names.queue("a"), names.event("x"), recorder.hold, concurrency=3)
        await wrkr.publish([{"name": names.event("x")} for _ in range(3)])
        await wrkr.listen()
        await recorder.take(3, "three handlers running side by side")
        recorder.release()

    async def test_competing_consumers_handle_each_item_exactly_once(
            self, app: AppFactory, names: Names) -> None:
        first, second = await app(name="first"), await app(name="second")
        recorder = Recorder()
        queue = names.queue("shared")
        for wrkr in (first, second):
            await wrkr.subscribe(queue, names.event("x"), recorder.handle, concurrency=2)
        ids = await first.publish([{"name": names.event("x"), "tid": str(n)} for n in range(20)])
        await first.listen()
        await second.listen()
        got = await recorder.take(20)
        assert sorted(str(event.id) for event in got) == sorted(ids)
        await recorder.nothing_more(0.2)  # proving no item is handled a second time

    async def test_decorated_handler_is_subscribed_at_start(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app(start=False)
        recorder = Recorder()
        wrkr.on(names.event("x"), queue=names.queue("a"))(recorder.handle)
        await wrkr.start()
        assert await wrkr.subscriptions(names.event("x")) == [names.queue("a")]
        await wrkr.publish({"name": names.event("x")})
        await wrkr.listen()
        assert (await recorder.next()).queue == names.queue("a")

    @needs(Capability.QUERY)
    async def test_item_being_processed_records_the_worker_id(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app(name="crm")
        recorder = Recorder()
        await wrkr.subscribe(names.queue("a"), names.event("x"), recorder.hold)
        [item_id] = await wrkr.publish({"name": names.event("x")})
        await wrkr.listen()
        await recorder.next()
        item = await wrkr.get(item_id)
        recorder.release()
        assert (item.state, item.worker) == (State.PROCESSING, wrkr.worker_id)
        assert wrkr.worker_id.startswith("crm:")
