"""Retries: backoff, the last attempt, `Fail`, handler timeouts, `retry()` of failed items."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from wrkr import Event, Fail, ItemNotFound, Retry, State, Wrkr
from wrkr.backend import Backend, Capability, ErrorRecord, ItemFilter

from ._helpers import (
    AppFactory,
    Names,
    Recorder,
    SuiteBase,
    claim_one,
    eventually,
    fast_retry,
    message,
    needs,
    state_of,
    utcnow,
)


async def until_failed(wrkr: Wrkr, item_id: str) -> Event:
    """Wait until item `item_id` is `failed`, then return it."""

    async def failed() -> bool:
        return await state_of(wrkr, item_id) == State.FAILED

    await eventually(failed, f"item {item_id} is failed")
    return await wrkr.get(item_id)


def always_raises(recorder: Recorder) -> Callable[[Event], Awaitable[None]]:
    """Return a handler that records each event, then raises a RuntimeError."""

    async def handler(event: Event) -> None:
        recorder.record(event)
        raise RuntimeError(f"boom on attempt {event.attempts}")

    return handler


class RetriesSuite(SuiteBase):
    """What happens to an item whose handler raises, fails or hangs."""

    async def _consume(self, app: AppFactory, names: Names, handler: Callable[..., Any], *,
                       retry: Retry | None = None, timeout: str = "5 minutes",
                       ) -> tuple[Wrkr, str]:
        """Subscribe `handler` (app retry: 3 attempts, 0.1 s apart), publish one, listen."""
        wrkr = await app(retry=fast_retry())
        await wrkr.subscribe(names.queue("a"), names.event("x"), handler,
                             retry=retry, timeout=timeout)
        [item_id] = await wrkr.publish({"name": names.event("x")})
        await wrkr.listen()
        return wrkr, item_id

    async def test_failing_handler_is_retried_with_the_next_attempt(
            self, app: AppFactory, names: Names) -> None:
        recorder = Recorder()

        async def handler(event: Event) -> None:
            recorder.record(event)
            if event.attempts == 1:
                raise RuntimeError("first attempt fails")

        await self._consume(app, names, handler)
        got = await recorder.take(2)
        assert [event.attempts for event in got] == [1, 2]
        assert got[0].id == got[1].id
        await recorder.nothing_more(0.3)  # proving the successful attempt was acked

    async def test_retry_waits_for_the_backoff(self, app: AppFactory, names: Names) -> None:
        recorder, times = Recorder(), list[float]()

        async def handler(event: Event) -> None:
            times.append(utcnow().timestamp())
            await always_raises(recorder)(event)

        await self._consume(app, names, handler, retry=Retry(attempts=2, backoff=("0.5 s",)))
        await recorder.take(2)
        assert times[1] - times[0] >= 0.5 - 0.01

    async def test_handler_is_not_run_after_the_last_attempt(
            self, app: AppFactory, names: Names) -> None:
        recorder = Recorder()
        await self._consume(app, names, always_raises(recorder))
        assert [event.attempts for event in await recorder.take(3)] == [1, 2, 3]
        await recorder.nothing_more(0.3)  # proving no fourth attempt after the 0.1 s backoff

    @needs(Capability.QUERY, Capability.FAILED)
    async def test_item_is_failed_after_the_last_attempt_with_one_error_per_attempt(
            self, app: AppFactory, names: Names) -> None:
        recorder = Recorder()
        wrkr, item_id = await self._consume(
            app, names, always_raises(recorder))
        item = await until_failed(wrkr, item_id)
        assert item.attempts == 3
        assert [error.attempt for error in item.errors] == [1, 2, 3]
        assert all("RuntimeError" in error.type for error in item.errors)
        assert [error.message for error in item.errors] == [
            f"boom on attempt {n}" for n in (1, 2, 3)]
        assert all(error.at.utcoffset() == timedelta(0) for error in item.errors)

    async def test_fail_is_not_retried(self, app: AppFactory, names: Names) -> None:
        recorder = Recorder()

        async def handler(event: Event) -> None:
            recorder.record(event)
            raise Fail("bad data")

        await self._consume(app, names, handler)
        await recorder.next()
        await recorder.nothing_more(0.3)  # proving no retry after the 0.1 s backoff

    @needs(Capability.QUERY, Capability.FAILED)
    async def test_fail_parks_the_item_as_failed_at_once_with_its_reason(
            self, app: AppFactory, names: Names) -> None:
        async def handler(event: Event) -> None:
            raise Fail("bad data")

        wrkr, item_id = await self._consume(app, names, handler)
        item = await until_failed(wrkr, item_id)
        assert item.attempts == 1
        assert [(error.attempt, error.message) for error in item.errors] == [(1, "bad data")]

    async def test_handler_past_its_timeout_is_cancelled(
            self, app: AppFactory, names: Names) -> None:
        cancelled = asyncio.Event()

        async def handler(event: Event) -> None:
            try:
                await asyncio.sleep(30)
            except asyncio.CancelledError:
                cancelled.set()
                raise

        await self._consume(app, names, handler, timeout="0.2 seconds")
        async with asyncio.timeout(5):
            await cancelled.wait()

    async def test_timed_out_handler_is_retried(self, app: AppFactory, names: Names) -> None:
        recorder = Recorder()

        async def handler(event: Event) -> None:
            recorder.record(event)
            if event.attempts == 1:
                await asyncio.sleep(30)

        await self._consume(app, names, handler, timeout="0.2 seconds")
        assert [event.attempts for event in await recorder.take(2)] == [1, 2]

    @needs(Capability.QUERY, Capability.FAILED)
    async def test_timeout_counts_as_a_failed_attempt(
            self, app: AppFactory, names: Names) -> None:
        async def handler(event: Event) -> None:
            await asyncio.sleep(30)

        wrkr, item_id = await self._consume(
            app, names, handler, timeout="0.2 seconds", retry=Retry(attempts=1))
        item = await until_failed(wrkr, item_id)
        assert [error.attempt for error in item.errors] == [1]
        assert "timeout" in (item.errors[0].type + item.errors[0].message).lower()

    @needs(Capability.QUERY)
    async def test_item_whose_workers_keep_dying_is_failed_without_running_the_handler(
            self, app: AppFactory, names: Names, backend: Backend) -> None:
        wrkr = await app(retry=Retry(attempts=1))
        recorder = Recorder()
        queue = names.queue("a")
        await wrkr.subscribe(queue, names.event("x"), recorder.handle)
        [item_id] = await wrkr.publish({"name": names.event("x")})
        await claim_one(backend, queue, worker="crashed", lease=timedelta(seconds=0.5))
        await self.simulate_crash(backend)
        await wrkr.listen()
        assert (await until_failed(wrkr, item_id)).attempts == 2
        assert recorder.events == []


class FailedItemsSuite(SuiteBase):
    """`retry()` of failed items, and the backend's `fail` / `retry` promises."""

    @needs(Capability.QUERY, Capability.FAILED)
    async def test_retry_sends_a_failed_item_back_with_attempts_reset(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        recorder = Recorder()

        async def handler(event: Event) -> None:
            recorder.record(event)
            if not event.errors:
                raise Fail("not yet")

        await wrkr.subscribe(names.queue("a"), names.event("x"), handler)
        [item_id] = await wrkr.publish({"name": names.event("x")})
        await wrkr.listen()
        await until_failed(wrkr, item_id)
        await wrkr.retry(item_id)
        again = (await recorder.take(2))[1]
        assert (again.id, again.attempts) == (item_id, 1)
        assert [error.message for error in again.errors] == ["not yet"]

    @needs(Capability.FAILED)
    async def test_retry_of_an_unknown_item_raises_item_not_found(
            self, app: AppFactory) -> None:
        wrkr = await app()
        with pytest.raises(ItemNotFound):
            await wrkr.retry("0" * 32)

    @needs(Capability.FAILED)
    async def test_retry_of_an_item_that_has_not_failed_raises_item_not_found(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        await wrkr.subscribe(names.queue("a"), names.event("x"), Recorder().handle)
        [item_id] = await wrkr.publish({"name": names.event("x")})
        with pytest.raises(ItemNotFound):
            await wrkr.retry(item_id)

    @needs(Capability.QUERY, Capability.FAILED)
    async def test_failed_items_are_listed_by_state(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()

        async def handler(event: Event) -> None:
            if event.tid == "bad":
                raise Fail("bad")

        queue = names.queue("a")
        await wrkr.subscribe(queue, names.event("x"), handler)
        [bad, _] = await wrkr.publish([{"name": names.event("x"), "tid": tid}
                                       for tid in ("bad", "good")])
        await wrkr.listen()
        await until_failed(wrkr, bad)
        failed = await wrkr.items(queue=queue, state=State.FAILED)
        assert [(event.id, event.state) for event in failed] == [(bad, State.FAILED)]

    @needs(Capability.QUERY)
    async def test_backend_fail_parks_the_item_with_its_error(
            self, backend: Backend, names: Names) -> None:
        queue, name = names.queue("a"), names.event("x")
        await backend.subscribe(queue, name)
        await backend.enqueue([message(name)])
        delivery = await claim_one(backend, queue, worker="w")
        await backend.fail(delivery, error=ErrorRecord(utcnow(), 1, "Fail", "parked"))
        item = await backend.get(delivery.item.id)
        assert (item.state, [e.message for e in item.errors]) == (State.FAILED, ["parked"])

    @needs(Capability.FAILED)
    async def test_backend_retry_moves_back_only_the_copy_with_that_id(
            self, backend: Backend, names: Names) -> None:
        name, queues = names.event("x"), [names.queue("a"), names.queue("b")]
        for queue in queues:
            await backend.subscribe(queue, name)
        ids = await backend.enqueue([message(name)])
        failed = {}
        for queue in queues:
            delivery = await claim_one(backend, queue, worker="w")
            await backend.fail(delivery, error=ErrorRecord(utcnow(), 1, "Fail", "parked"))
            failed[queue] = delivery.item.id
        assert sorted(failed.values()) == sorted(ids)
        await backend.retry(failed[queues[0]])
        assert (await claim_one(backend, queues[0], worker="w")).item.id == failed[queues[0]]
        still = await backend.items(ItemFilter(queue=queues[1], state=State.FAILED))
        assert [item.id for item in still] == [failed[queues[1]]]

    @needs(Capability.FAILED)
    async def test_backend_retry_resets_attempts_and_keeps_errors(
            self, backend: Backend, names: Names) -> None:
        queue, name = names.queue("a"), names.event("x")
        await backend.subscribe(queue, name)
        await backend.enqueue([message(name)])
        delivery = await claim_one(backend, queue, worker="w")
        await backend.fail(delivery, error=ErrorRecord(utcnow(), 1, "Fail", "parked"))
        await backend.retry(delivery.item.id)
        again = (await claim_one(backend, queue, worker="w")).item
        assert (again.id, again.attempts) == (delivery.item.id, 1)
        assert [error.message for error in again.errors] == ["parked"]
