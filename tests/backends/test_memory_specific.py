"""What only the memory backend promises: its clock, its store, its heap and its URLs.

The behaviour every backend shares is checked by the conformance suite
(`test_memory.py`); these tests drive `MemoryBackend` directly.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from wrkr.backend import (
    Delivery,
    ErrorRecord,
    InvalidConfig,
    ItemFilter,
    LeaseLost,
    Message,
    NotStarted,
    State,
    UnknownBackend,
)
from wrkr_memory import ManualClock, MemoryBackend, MemoryStore

START = datetime(2030, 1, 1, tzinfo=UTC)
LEASE = timedelta(seconds=30)


def message(at: datetime, *, name: str = "app.thing", tid: str | None = None,
            dedupe: bool = False) -> Message:
    """Return a message due at `at` (published at START)."""
    return Message(name=name, tid=tid, payload=b'{"k":"\xc3\xa9"}', due=at, created=START,
                   dedupe=dedupe)


@pytest.fixture
def clock() -> ManualClock:
    """Return a clock standing at START."""
    return ManualClock(START)


@pytest.fixture
async def backend(clock: ManualClock) -> AsyncIterator[MemoryBackend]:
    """Return an open backend on `clock`, its queue "q" subscribed to "app.#"."""
    opened = MemoryBackend(clock=clock)
    await opened.open()
    await opened.subscribe("q", "app.#")
    yield opened
    await opened.close()


async def next_delivery(stream: AsyncIterator[Delivery]) -> Delivery:
    """Return the stream's next delivery, failing the test after one second."""
    async with asyncio.timeout(1):
        return await anext(stream)


async def nothing_delivered(backend: MemoryBackend) -> bool:
    """Tell whether queue "q" stays silent for a moment (it must not deliver early)."""
    stream = backend.deliveries("q", worker="w", lease=LEASE, prefetch=1)
    task = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0.05)  # bounded: we are checking that nothing happens
    task.cancel()  # a cancelled anext() ends the stream; callers take a new one
    await asyncio.gather(task, return_exceptions=True)
    return task.cancelled()


# -- the manual clock ------------------------------------------------------------------


async def test_advancing_the_clock_delivers_a_seven_day_item_at_once(
    backend: MemoryBackend, clock: ManualClock
) -> None:
    [item_id] = await backend.enqueue([message(START + timedelta(days=7))])
    stream = backend.deliveries("q", worker="w", lease=LEASE, prefetch=1)
    waiting = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    assert (await backend.get(item_id)).state is State.SCHEDULED
    clock.advance(timedelta(days=7))
    async with asyncio.timeout(1):
        delivery = await waiting
    assert delivery.item.id == item_id
    await stream.aclose()


async def test_an_item_is_not_delivered_a_microsecond_early(
    backend: MemoryBackend, clock: ManualClock
) -> None:
    await backend.enqueue([message(START + timedelta(days=7))])
    clock.advance(timedelta(days=7, microseconds=-1))
    assert await nothing_delivered(backend)
    clock.advance(timedelta(microseconds=1))
    stream = backend.deliveries("q", worker="w", lease=LEASE, prefetch=1)
    assert (await next_delivery(stream)).item.state is State.PROCESSING
    await stream.aclose()


async def test_an_expired_lease_is_seen_after_advancing_past_it(
    backend: MemoryBackend, clock: ManualClock
) -> None:
    await backend.enqueue([message(START)])
    first = backend.deliveries("q", worker="dead", lease=LEASE, prefetch=1)
    lost = await next_delivery(first)
    second = backend.deliveries("q", worker="alive", lease=LEASE, prefetch=1)
    waiting = asyncio.ensure_future(anext(second))
    await asyncio.sleep(0)
    clock.advance(LEASE)
    async with asyncio.timeout(1):
        again = await waiting
    assert (again.item.id, again.item.attempts, again.item.worker) == (lost.item.id, 2, "alive")
    with pytest.raises(LeaseLost):
        await backend.ack(lost)
    await backend.ack(again)
    await first.aclose()
    await second.aclose()


async def test_an_expired_lease_reports_ready_before_anyone_claims_it(
    backend: MemoryBackend, clock: ManualClock
) -> None:
    [item_id] = await backend.enqueue([message(START)])
    stream = backend.deliveries("q", worker="w", lease=LEASE, prefetch=1)
    await next_delivery(stream)
    assert (await backend.get(item_id)).state is State.PROCESSING
    clock.advance(LEASE)
    assert (await backend.get(item_id)).state is State.READY
    await stream.aclose()


def test_the_clock_refuses_naive_times_and_going_backwards_by_advance() -> None:
    clock = ManualClock(START)
    with pytest.raises(ValueError, match="naive"):
        clock.set(datetime(2030, 1, 2))  # naive on purpose
    with pytest.raises(ValueError, match=">= 0"):
        clock.advance(-1)
    clock.advance(1.5)
    assert clock.now() == START + timedelta(seconds=1.5)


# -- the heap --------------------------------------------------------------------------


async def test_many_items_come_out_by_due_time_then_publishing_order(
    backend: MemoryBackend, clock: ManualClock
) -> None:
    rng = random.Random(7)
    dues = [START + timedelta(seconds=rng.randrange(50)) for _ in range(2000)]
    ids = await backend.enqueue([message(due) for due in dues])
    clock.advance(timedelta(minutes=1))
    stream = backend.deliveries("q", worker="w", lease=LEASE, prefetch=64)
    delivered = [(await next_delivery(stream)).item.id for _ in ids]
    expected = [item_id for _, _, item_id in sorted(zip(dues, range(len(ids)), ids, strict=True))]
    assert delivered == expected
    await stream.aclose()


async def test_a_nacked_item_goes_back_in_line_at_its_new_due_time(
    backend: MemoryBackend, clock: ManualClock
) -> None:
    first, second = await backend.enqueue([message(START), message(START)])
    stream = backend.deliveries("q", worker="w", lease=LEASE, prefetch=1)
    delivery = await next_delivery(stream)
    error = ErrorRecord(START, 1, "ValueError", "boom")
    await backend.nack(delivery, due=START + timedelta(seconds=5), error=error)
    assert (await next_delivery(stream)).item.id == second
    clock.advance(5)
    again = await next_delivery(stream)
    assert (again.item.id, again.item.attempts, again.item.errors) == (first, 2, (error,))
    await stream.aclose()


# -- the store -------------------------------------------------------------------------


async def test_two_backends_on_one_store_share_subscriptions_and_items() -> None:
    store = MemoryStore()
    publisher, consumer = MemoryBackend(store=store), MemoryBackend(store=store)
    await publisher.open()
    await publisher.subscribe("shared", "app.thing")
    await consumer.open()
    assert await consumer.queues_for("app.thing") == ["shared"]
    [item_id] = await publisher.enqueue([message(datetime.now(UTC))])
    stream = consumer.deliveries("shared", worker="w", lease=LEASE, prefetch=1)
    delivery = await next_delivery(stream)
    assert delivery.item.id == item_id
    await publisher.ack(delivery)  # a receipt is good on any backend of the store
    with pytest.raises(LookupError):
        await consumer.get(item_id)
    await stream.aclose()
    await publisher.close()
    await consumer.close()


async def test_a_new_backend_on_the_store_finds_what_a_closed_one_left() -> None:
    store = MemoryStore()
    first = MemoryBackend(store=store)
    await first.open()
    await first.subscribe("kept", "app.#")
    [item_id] = await first.enqueue([message(datetime.now(UTC) + timedelta(days=1))])
    await first.close()
    second = MemoryBackend(store=store)
    await second.open()
    assert (await second.get(item_id)).state is State.SCHEDULED
    assert await second.queues_for("app.other") == ["kept"]
    await second.close()


async def test_closing_a_backend_gives_back_what_it_delivered(backend: MemoryBackend) -> None:
    [item_id] = await backend.enqueue([message(START)])
    stream = backend.deliveries("q", worker="w", lease=LEASE, prefetch=1)
    delivery = await next_delivery(stream)
    await stream.aclose()
    await backend.close()
    await backend.open()
    assert (await backend.get(item_id)).state is State.READY
    with pytest.raises(LeaseLost):
        await backend.ack(delivery)


async def test_memory_urls_share_a_named_store_and_nothing_else() -> None:
    named = [MemoryBackend.from_url("memory://test-specific-shared") for _ in range(2)]
    assert named[0].store is named[1].store
    assert MemoryBackend.from_url("memory://").store is not MemoryBackend.from_url("memory://").store
    clock = ManualClock(START)
    assert MemoryBackend.from_url("memory://", clock=clock).now() == START
    with pytest.raises(UnknownBackend, match="amqp://x"):
        MemoryBackend.from_url("amqp://x")
    with pytest.raises(InvalidConfig, match="colour"):
        MemoryBackend.from_url("memory://", colour="blue")


# -- fencing ---------------------------------------------------------------------------


async def test_a_receipt_settles_its_item_only_once(backend: MemoryBackend) -> None:
    await backend.enqueue([message(START), message(START)])
    stream = backend.deliveries("q", worker="w", lease=LEASE, prefetch=1)
    acked, failed = await next_delivery(stream), await next_delivery(stream)
    await backend.ack(acked)
    error = ErrorRecord(START, 1, "Fail", "no")
    await backend.fail(failed, error=error)
    for settle in (backend.ack(acked), backend.release(acked), backend.fail(failed, error=error),
                   backend.nack(failed, due=START, error=error)):
        with pytest.raises(LeaseLost):
            await settle
    await stream.aclose()


async def test_a_receipt_from_before_a_retry_is_stale(
    backend: MemoryBackend, clock: ManualClock
) -> None:
    [item_id] = await backend.enqueue([message(START)])
    stream = backend.deliveries("q", worker="w", lease=LEASE, prefetch=1)
    old = await next_delivery(stream)
    await backend.fail(old, error=ErrorRecord(START, 1, "Fail", "no"))
    await backend.retry(item_id)
    new = await next_delivery(stream)
    assert new.item.attempts == 1
    with pytest.raises(LeaseLost):
        await backend.ack(old)
    await backend.ack(new)
    await stream.aclose()


# -- the deliveries iterator -----------------------------------------------------------


async def test_closing_the_stream_gives_back_prefetched_items_uncounted(
    backend: MemoryBackend,
) -> None:
    ids = await backend.enqueue([message(START) for _ in range(5)])
    stream = backend.deliveries("q", worker="w", lease=LEASE, prefetch=5)
    taken = await next_delivery(stream)
    await stream.aclose()
    items = {item.id: item for item in await backend.items(ItemFilter(queue="q"))}
    assert items[taken.item.id].state is State.PROCESSING
    for item_id in ids[1:]:
        assert (items[item_id].state, items[item_id].attempts) == (State.READY, 0)


async def test_cancelling_the_consumer_gives_back_prefetched_items(
    backend: MemoryBackend,
) -> None:
    await backend.enqueue([message(START) for _ in range(3)])
    handling = asyncio.Event()
    task = asyncio.ensure_future(_consume_forever(backend, handling))
    async with asyncio.timeout(1):
        await handling.wait()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert (await backend.counts())["q"] == {State.PROCESSING: 1, State.READY: 2}


async def _consume_forever(backend: MemoryBackend, handling: asyncio.Event) -> None:
    """Consume queue "q" as the core does, with a handler that never ends."""
    stream = backend.deliveries("q", worker="w", lease=LEASE, prefetch=3)
    async with contextlib.aclosing(stream):
        async for _ in stream:
            handling.set()
            await asyncio.sleep(3600)


async def test_a_waiting_stream_on_the_system_clock_wakes_on_enqueue() -> None:
    backend = MemoryBackend()
    await backend.open()
    await backend.subscribe("live", "app.thing")
    stream = backend.deliveries("live", worker="w", lease=LEASE, prefetch=1)
    waiting = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    [item_id] = await backend.enqueue([message(datetime.now(UTC))])
    async with asyncio.timeout(1):
        assert (await waiting).item.id == item_id
    await stream.aclose()
    await backend.close()


# -- lifecycle, dedupe, archive --------------------------------------------------------


async def test_a_closed_backend_refuses_work_and_ends_its_streams() -> None:
    backend = MemoryBackend(clock=ManualClock(START))
    with pytest.raises(NotStarted, match="before it was opened"):
        await backend.enqueue([message(START)])
    await backend.open()
    stream = backend.deliveries("q", worker="w", lease=LEASE, prefetch=1)
    waiting = asyncio.ensure_future(anext(stream))
    await asyncio.sleep(0)
    await backend.close()
    with pytest.raises(StopAsyncIteration):
        async with asyncio.timeout(1):
            await waiting
    with pytest.raises(NotStarted, match="after it was closed"):
        await backend.items(ItemFilter())
    with pytest.raises(NotStarted):
        await anext(backend.deliveries("q", worker="w", lease=LEASE, prefetch=1))


async def test_once_every_skips_a_duplicate_within_one_batch(backend: MemoryBackend) -> None:
    later = START + timedelta(hours=1)
    ids = await backend.enqueue([message(later, tid="7", dedupe=True),
                                 message(later, tid="7", dedupe=True),
                                 message(later, tid="8", dedupe=True)])
    assert len(ids) == 2
    assert [item.tid for item in await backend.items(ItemFilter(queue="q"))] == ["7", "8"]


async def test_kept_items_vanish_once_their_retention_passed(
    backend: MemoryBackend, clock: ManualClock
) -> None:
    [item_id] = await backend.enqueue([message(START)])
    stream = backend.deliveries("q", worker="w", lease=LEASE, prefetch=1)
    await backend.ack(await next_delivery(stream), keep=True, expires=START + timedelta(days=1))
    done = await backend.get(item_id)
    assert (done.state, done.worker, done.finished) == (State.DONE, "w", START)
    clock.advance(timedelta(days=1))
    assert await backend.items(ItemFilter(state=State.DONE)) == []
    await stream.aclose()
