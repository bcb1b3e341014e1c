"""Leases: claims, renewal, fencing (`LeaseLost`), crash redelivery, release, nack, prefetch.

The renewal tests use leases of a second or two: long enough that a renewal every
`RENEW_PERIOD` seconds keeps a lease on a loaded machine, short enough to cost little.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest

from wrkr import LeaseLost
from wrkr.backend import Backend, Capability, Delivery, ErrorRecord, ItemFilter, State

from ._helpers import (
    WAIT,
    AppFactory,
    BackendFactory,
    Names,
    Recorder,
    SuiteBase,
    claim_one,
    message,
    needs,
    opened,
    utcnow,
    without,
)

SHORT_LEASE = timedelta(seconds=1.5)
"""The lease of the renewal tests' claims."""
RENEW_PERIOD = 0.4
"""Seconds between renewals of a `SHORT_LEASE`: a third of the lease or less, like the core."""
CLOCK_SLACK = 0.05
"""Seconds by which the backend's clock and the test's may disagree on when a lease ended."""


@contextlib.asynccontextmanager
async def claiming(backend: Backend, queue: str, *,
                   worker: str) -> AsyncIterator[asyncio.Task[Delivery[Any]]]:
    """Claim one item of `queue` for `worker` in a task, cancelled and closed on exit.

    A task, not a timed-out `anext`: cancelling `anext` ends an async generator, so a
    test proving that nothing comes *yet* could not go on to see it come later.
    """
    stream = backend.deliveries(queue, worker=worker, lease=timedelta(seconds=60), prefetch=1)
    task = asyncio.ensure_future(anext(stream))
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        await stream.aclose()


class LeaseSuite(SuiteBase):
    """`deliveries`, `ack`, `nack`, `fail`, `release`: claims, leases and fencing."""

    async def test_crashed_workers_item_comes_back_with_the_next_attempt(
            self, app: AppFactory, names: Names, backend: Backend) -> None:
        wrkr = await app()
        recorder = Recorder()
        queue = names.queue("a")
        await wrkr.subscribe(queue, names.event("x"), recorder.handle)
        [item_id] = await wrkr.publish({"name": names.event("x")})
        stream = backend.deliveries(queue, worker="crashed", lease=timedelta(seconds=1),
                                    prefetch=1)
        try:
            async with asyncio.timeout(WAIT):
                assert (await anext(stream)).item.attempts == 1
            await self.simulate_crash(backend)
            await wrkr.listen()
            got = await recorder.next("the redelivery after the lease expired")
            assert (got.id, got.attempts) == (item_id, 2)
        finally:
            with contextlib.suppress(Exception):
                await stream.aclose()

    async def test_claimed_item_is_processing_for_the_worker(
            self, backend: Backend, names: Names) -> None:
        queue, name = names.queue("a"), names.event("x")
        await backend.subscribe(queue, name)
        await backend.enqueue([message(name)])
        item = (await claim_one(backend, queue, worker="w-1")).item
        assert (item.state, item.worker, item.attempts) == (State.PROCESSING, "w-1", 1)

    async def test_item_held_by_one_worker_is_not_given_to_another(
            self, backend: Backend, backend_factory: BackendFactory, names: Names) -> None:
        queue, name = names.queue("a"), names.event("x")
        await backend.subscribe(queue, name)
        await backend.enqueue([message(name)])
        await claim_one(backend, queue, worker="holder")
        async with opened(backend_factory) as other:
            stream = other.deliveries(queue, worker="other", lease=timedelta(seconds=60),
                                      prefetch=1)
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):  # proving nothing is handed out meanwhile
                    await anext(stream)
            await stream.aclose()

    @pytest.mark.parametrize("operation", ["ack", "nack", "fail", "release"])
    async def test_stale_delivery_raises_lease_lost(
            self, backend: Backend, backend_factory: BackendFactory, names: Names,
            operation: str) -> None:
        queue, name = names.queue("a"), names.event("x")
        await backend.subscribe(queue, name)
        await backend.enqueue([message(name)])
        stale = await claim_one(backend, queue, worker="slow", lease=timedelta(seconds=0.5))
        await self.simulate_crash(backend)
        async with opened(backend_factory) as other:
            fresh = await claim_one(other, queue, worker="fresh")
            assert fresh.item.id == stale.item.id
            error = ErrorRecord(utcnow(), 1, "RuntimeError", "late")
            calls: dict[str, Callable[[], Awaitable[None]]] = {
                "ack": lambda: backend.ack(stale),
                "nack": lambda: backend.nack(stale, due=utcnow(), error=error),
                "fail": lambda: backend.fail(stale, error=error),
                "release": lambda: backend.release(stale),
            }
            with pytest.raises(LeaseLost):
                await calls[operation]()
            await other.ack(fresh)

    async def test_renewed_lease_keeps_the_item_from_another_worker_past_its_first_end(
            self, backend: Backend, backend_factory: BackendFactory, names: Names) -> None:
        queue, name = names.queue("a"), names.event("x")
        await backend.subscribe(queue, name)
        await backend.enqueue([message(name)])
        held = await claim_one(backend, queue, worker="holder", lease=SHORT_LEASE)
        async with (opened(backend_factory) as other,
                    claiming(other, queue, worker="other") as taken):
            until = time.monotonic() + 2 * SHORT_LEASE.total_seconds()
            while time.monotonic() < until:  # proving the other never gets it meanwhile
                await asyncio.sleep(RENEW_PERIOD)
                assert await backend.renew([held], SHORT_LEASE) == [True]
                assert not taken.done(), f"another worker got {taken.result()}"
            await backend.release(held)  # still held, so no LeaseLost: the renewals kept it
            async with asyncio.timeout(WAIT):  # the other's claim was waiting all along
                assert (await taken).item.id == held.item.id

    @needs(Capability.TIMED_LEASES)
    async def test_unrenewed_lease_lets_another_worker_take_the_item_when_it_ends(
            self, backend: Backend, backend_factory: BackendFactory, names: Names) -> None:
        queue, name = names.queue("a"), names.event("x")
        await backend.subscribe(queue, name)
        await backend.enqueue([message(name)])
        before_claim = time.monotonic()
        held = await claim_one(backend, queue, worker="paused", lease=SHORT_LEASE)
        async with opened(backend_factory) as other:  # `backend` stays connected throughout
            taken = await claim_one(other, queue, worker="other")
        waited = time.monotonic() - before_claim
        assert (taken.item.id, taken.item.worker, taken.item.attempts) == (
            held.item.id, "other", 2)
        assert waited >= SHORT_LEASE.total_seconds() - CLOCK_SLACK, (
            f"taken {waited:.2f}s after the claim, before its lease of {SHORT_LEASE} ended")

    @without(Capability.TIMED_LEASES)
    async def test_channel_lease_keeps_the_item_past_its_time_until_the_channel_closes(
            self, backend: Backend, backend_factory: BackendFactory, names: Names) -> None:
        queue, name = names.queue("a"), names.event("x")
        await backend.subscribe(queue, name)
        await backend.enqueue([message(name)])
        held = await claim_one(backend, queue, worker="holder", lease=SHORT_LEASE)
        async with opened(backend_factory) as other:
            async with claiming(other, queue, worker="other") as taken:
                await asyncio.sleep(2 * SHORT_LEASE.total_seconds())  # proving it stays held
                assert not taken.done(), f"another worker got {taken.result()}"
                assert await backend.renew([held], SHORT_LEASE) == [True]
                await self.simulate_crash(backend)
                async with asyncio.timeout(WAIT):  # the channel closed: the broker gives it back
                    got = await taken
            assert (got.item.id, got.item.attempts) == (held.item.id, 2)

    async def test_renewal_after_the_lease_was_lost_says_so_and_settling_raises_lease_lost(
            self, backend: Backend, backend_factory: BackendFactory, names: Names) -> None:
        queue, name = names.queue("a"), names.event("x")
        await backend.subscribe(queue, name)
        await backend.enqueue([message(name)])
        stale = await claim_one(backend, queue, worker="slow", lease=timedelta(seconds=0.5))
        await self.simulate_crash(backend)
        async with opened(backend_factory) as other:
            fresh = await claim_one(other, queue, worker="fresh")
            assert fresh.item.id == stale.item.id
            assert await backend.renew([stale], SHORT_LEASE) == [False]
            assert await other.renew([fresh], SHORT_LEASE) == [True]
            with pytest.raises(LeaseLost):
                await backend.ack(stale)
            await other.ack(fresh)

    @needs(Capability.TIMED_LEASES)
    async def test_renewal_after_the_lease_ended_says_so_though_nobody_took_the_item(
            self, backend: Backend, names: Names) -> None:
        queue, name = names.queue("a"), names.event("x")
        await backend.subscribe(queue, name)
        await backend.enqueue([message(name)])
        lease = timedelta(seconds=0.5)
        held = await claim_one(backend, queue, worker="paused", lease=lease)
        ended = time.monotonic() + lease.total_seconds()  # or sooner: the claim came first
        # Waiting out a known deadline (the lease's end), not hoping for an event.
        await asyncio.sleep(ended - time.monotonic() + 0.2)
        assert await backend.renew([held], SHORT_LEASE) == [False]

    async def test_release_gives_the_item_back_without_counting_the_attempt(
            self, backend: Backend, names: Names) -> None:
        queue, name = names.queue("a"), names.event("x")
        await backend.subscribe(queue, name)
        await backend.enqueue([message(name)])
        await backend.release(await claim_one(backend, queue, worker="w"))
        again = await claim_one(backend, queue, worker="w")
        assert (again.item.attempts, again.item.errors) == (1, ())

    async def test_nacked_item_comes_back_with_the_next_attempt_and_its_error(
            self, backend: Backend, names: Names) -> None:
        queue, name = names.queue("a"), names.event("x")
        await backend.subscribe(queue, name)
        await backend.enqueue([message(name)])
        error = ErrorRecord(utcnow(), 1, "RuntimeError", "boom")
        await backend.nack(await claim_one(backend, queue, worker="w"), due=utcnow(), error=error)
        again = (await claim_one(backend, queue, worker="w")).item
        assert again.attempts == 2
        assert [(e.attempt, e.type, e.message) for e in again.errors] == [
            (1, "RuntimeError", "boom")]

    @needs(Capability.DELAY)
    async def test_nacked_item_is_not_yielded_before_its_new_due_time(
            self, backend: Backend, names: Names) -> None:
        queue, name = names.queue("a"), names.event("x")
        await backend.subscribe(queue, name)
        await backend.enqueue([message(name)])
        due = utcnow() + timedelta(seconds=0.5)
        error = ErrorRecord(utcnow(), 1, "RuntimeError", "later")
        await backend.nack(await claim_one(backend, queue, worker="w"), due=due, error=error)
        await claim_one(backend, queue, worker="w")
        assert utcnow() >= due

    async def test_nacked_item_returns_to_its_own_queue_only(
            self, backend: Backend, names: Names) -> None:
        name = names.event("x")
        mine, theirs = names.queue("mine"), names.queue("theirs")
        for queue in (mine, theirs):
            await backend.subscribe(queue, name)
        await backend.enqueue([message(name)])
        await backend.ack(await claim_one(backend, theirs, worker="w"))
        error = ErrorRecord(utcnow(), 1, "RuntimeError", "boom")
        await backend.nack(await claim_one(backend, mine, worker="w"), due=utcnow(), error=error)
        assert (await claim_one(backend, mine, worker="w")).item.attempts == 2
        stream = backend.deliveries(theirs, worker="w", lease=timedelta(seconds=60), prefetch=1)
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.3):  # proving no copy reached the other queue
                await anext(stream)
        await stream.aclose()

    async def test_closing_deliveries_releases_what_it_had_not_yielded(
            self, backend: Backend, backend_factory: BackendFactory, names: Names) -> None:
        queue, name = names.queue("a"), names.event("x")
        await backend.subscribe(queue, name)
        await backend.enqueue([message(name, tid=str(n)) for n in range(4)])
        stream = backend.deliveries(queue, worker="w", lease=timedelta(seconds=60), prefetch=4)
        async with asyncio.timeout(WAIT):
            first = await anext(stream)
        await stream.aclose()
        assert first.item.tid == "0"
        async with opened(backend_factory) as other:
            rest = [await claim_one(other, queue, worker="other") for _ in range(3)]
        assert [(d.item.tid, d.item.attempts) for d in rest] == [("1", 1), ("2", 1), ("3", 1)]

    async def test_disconnect_makes_unacked_deliveries_claimable_again(
            self, backend_factory: BackendFactory, names: Names) -> None:
        queue, name = names.queue("a"), names.event("x")
        async with opened(backend_factory) as first:
            await first.subscribe(queue, name)
            await first.enqueue([message(name)])
            claimed = await claim_one(first, queue, worker="leaving")
        async with opened(backend_factory) as second:
            # The 60 s lease is far longer than the wait: only the disconnect frees it.
            assert (await claim_one(second, queue, worker="next")).item.id == claimed.item.id

    async def test_waiting_deliveries_yield_an_item_enqueued_later(
            self, backend: Backend, backend_factory: BackendFactory, names: Names) -> None:
        queue, name = names.queue("a"), names.event("x")
        await backend.subscribe(queue, name)
        waiting = asyncio.ensure_future(claim_one(backend, queue, worker="w"))
        async with opened(backend_factory) as publisher:
            await asyncio.sleep(0.1)  # let the consumer start waiting first
            await publisher.enqueue([message(name, tid="late")])
            assert (await waiting).item.tid == "late"

    @needs(Capability.QUERY)
    async def test_prefetch_bounds_the_items_claimed_and_not_yet_yielded(
            self, backend: Backend, names: Names) -> None:
        queue, name = names.queue("a"), names.event("x")
        await backend.subscribe(queue, name)
        await backend.enqueue([message(name) for _ in range(6)])
        stream = backend.deliveries(queue, worker="w", lease=timedelta(seconds=60), prefetch=2)
        async with asyncio.timeout(WAIT):
            await anext(stream)
        await asyncio.sleep(0.2)  # proving no more than prefetch get claimed meanwhile
        processing = await backend.items(ItemFilter(queue=queue, state=State.PROCESSING))
        await stream.aclose()
        assert 1 <= len(processing) <= 3

