"""Publishing: ids, fan-out, payload round trip, and every bad input rejected up front."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from wrkr import Wrkr
from wrkr.backend import Backend, Capability

from ._helpers import (
    AppFactory,
    BackendFactory,
    Names,
    Recorder,
    SuiteBase,
    claim_one,
    message,
    opened,
)


async def assert_nothing_queued(app: Wrkr, queue: str, sentinel: str, backend: Backend) -> None:
    """Assert `queue` holds nothing: by items() with QUERY, else by what comes out first.

    Without QUERY, a `sentinel` event (which `queue` must be subscribed to) is
    published and must be the first item claimed from the queue.
    """
    if Capability.QUERY in backend.capabilities:
        assert await app.items(queue=queue) == []
        return
    await app.publish({"name": sentinel})
    delivery = await claim_one(backend, queue, worker="inspector")
    assert delivery.item.name == sentinel, f"{queue} held {delivery.item}"
    await backend.ack(delivery)


class PublishingSuite(SuiteBase):
    """What `publish` returns and stores, and what it refuses."""

    async def test_publish_returns_the_created_item_ids(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        await wrkr.subscribe(names.queue("a"), names.event("x"), Recorder().handle)
        ids = await wrkr.publish({"name": names.event("x")})
        assert len(ids) == 1
        assert all(isinstance(item_id, str) and item_id for item_id in ids)

    async def test_publish_returns_one_id_per_queue_copy_each_delivered_with_its_own(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        recorders = {names.queue(suffix): Recorder() for suffix in ("a", "b")}
        for queue, recorder in recorders.items():
            await wrkr.subscribe(queue, names.event("x"), recorder.handle)
        ids = await wrkr.publish({"name": names.event("x")})
        await wrkr.listen()
        delivered = {queue: (await recorder.next(f"the copy in {queue}")).id
                     for queue, recorder in recorders.items()}
        assert len(set(ids)) == 2, f"one id per copy, got {ids}"
        assert sorted(str(item_id) for item_id in delivered.values()) == sorted(ids)

    async def test_event_that_reaches_no_queue_creates_nothing(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        assert await wrkr.publish({"name": names.event("nobody.listens")}) == []

    async def test_payload_defaults_to_an_empty_dict(self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        recorder = Recorder()
        await wrkr.subscribe(names.queue("a"), names.event("x"), recorder.handle)
        await wrkr.publish({"name": names.event("x")})
        await wrkr.listen()
        assert (await recorder.next()).payload == {}

    async def test_payload_round_trips_unicode_and_nesting(
            self, app: AppFactory, names: Names) -> None:
        payload: dict[str, Any] = {
            "text": "héllo wörld ✓ 日本語 🎉", "empty": "", "none": None, "yes": True,
            "int": -(2**53), "float": 1.5, "list": [1, "two", [3, {"four": 4}]],
            "nested": {"a": {"b": {"c": ["d", {"e": None}]}}}, "клю́ч": "значение",
        }
        wrkr = await app()
        recorder = Recorder()
        await wrkr.subscribe(names.queue("a"), names.event("x"), recorder.handle)
        await wrkr.publish({"name": names.event("x"), "payload": payload})
        await wrkr.listen()
        assert (await recorder.next()).payload == payload

    async def test_payload_of_one_megabyte_round_trips(
            self, app: AppFactory, names: Names) -> None:
        payload = {"blob": "x" * (1024 * 1024), "tail": "é"}
        wrkr = await app()
        recorder = Recorder()
        await wrkr.subscribe(names.queue("a"), names.event("x"), recorder.handle)
        await wrkr.publish({"name": names.event("x"), "payload": payload})
        await wrkr.listen()
        assert (await recorder.next("the 1 MB event")).payload == payload

    async def test_batch_is_delivered_in_order(self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        recorder = Recorder()
        await wrkr.subscribe(names.queue("a"), names.event("x"), recorder.handle)
        ids = await wrkr.publish([{"name": names.event("x"), "tid": str(n)} for n in range(5)])
        assert len(ids) == 5
        await wrkr.listen()
        assert [event.tid for event in await recorder.take(5)] == ["0", "1", "2", "3", "4"]

class EnqueueContractSuite(SuiteBase):
    """`Backend.enqueue` promises the app alone cannot show."""

    async def test_enqueue_returns_item_ids_in_message_order(
            self, backend: Backend, names: Names) -> None:
        queue = names.queue("a")
        batch = [names.event(f"e{n}") for n in range(4)]
        for name in batch:
            await backend.subscribe(queue, name)
        ids = await backend.enqueue([message(name) for name in batch])
        assert len(ids) == len(batch)
        claimed = []
        for _ in batch:
            delivery = await claim_one(backend, queue, worker="w")
            claimed.append((delivery.item.id, delivery.item.name))
            await backend.ack(delivery)
        assert claimed == list(zip(ids, batch, strict=True))

    async def test_enqueue_makes_one_item_per_matching_queue(
            self, backend: Backend, names: Names) -> None:
        name = names.event("x")
        queues = [names.queue(suffix) for suffix in ("a", "b", "c")]
        for queue in queues:
            await backend.subscribe(queue, name)
        await backend.enqueue([message(name, tid="1")])
        for queue in queues:
            delivery = await claim_one(backend, queue, worker="w")
            assert (delivery.item.queue, delivery.item.tid) == (queue, "1")

    async def test_enqueue_returns_the_id_each_copy_is_delivered_with(
            self, backend: Backend, names: Names) -> None:
        name = names.event("x")
        queues = [names.queue(suffix) for suffix in ("a", "b", "c")]
        for queue in queues:
            await backend.subscribe(queue, name)
        ids = await backend.enqueue([message(name)])
        delivered = []
        for queue in queues:
            delivery = await claim_one(backend, queue, worker="w")
            delivered.append(delivery.item.id)
            await backend.ack(delivery)
        assert len(set(delivered)) == len(queues), f"copies share ids: {delivered}"
        assert sorted(delivered) == sorted(ids)

    async def test_enqueue_counts_a_subscription_another_process_just_made(
            self, backend: Backend, backend_factory: BackendFactory, names: Names) -> None:
        name, mine, theirs = names.event("x"), names.queue("mine"), names.queue("theirs")
        await backend.subscribe(mine, name)
        assert len(await backend.enqueue([message(name, tid="before")])) == 1
        async with opened(backend_factory) as other:
            await other.subscribe(theirs, name)
            ids = await backend.enqueue([message(name, tid="after")])
            copy = (await claim_one(other, theirs, worker="w")).item
        assert len(set(ids)) == 2, f"one id per copy, got {ids}"
        assert (copy.tid, copy.id in ids) == ("after", True)

    async def test_enqueue_drops_a_subscription_another_process_just_removed(
            self, backend: Backend, backend_factory: BackendFactory, names: Names) -> None:
        name, mine, theirs = names.event("x"), names.queue("mine"), names.queue("theirs")
        await backend.subscribe(mine, name)
        async with opened(backend_factory) as other:
            await other.subscribe(theirs, name)
            assert len(await backend.enqueue([message(name, tid="both")])) == 2
            await other.unsubscribe(theirs, name)
            ids = await backend.enqueue([message(name, tid="mine only")])
        delivered = []
        for _ in range(2):
            delivery = await claim_one(backend, mine, worker="w")
            delivered.append(delivery.item)
            await backend.ack(delivery)
        assert [item.tid for item in delivered] == ["both", "mine only"]
        assert ids == [delivered[1].id]

    async def test_enqueue_stores_the_payload_bytes_as_given(
            self, backend: Backend, names: Names) -> None:
        queue, name = names.queue("a"), names.event("x")
        await backend.subscribe(queue, name)
        payload = '{"b":1,"a":"é"}'.encode()
        await backend.enqueue([message(name, payload=payload)])
        assert (await claim_one(backend, queue, worker="w")).item.payload == payload

    async def test_enqueue_of_an_unrouted_message_creates_nothing(
            self, backend: Backend, names: Names) -> None:
        assert await backend.enqueue([message(names.event("nobody"))]) == []

    async def test_items_keep_their_due_and_created_times(
            self, backend: Backend, names: Names) -> None:
        queue, name = names.queue("a"), names.event("x")
        await backend.subscribe(queue, name)
        sent = message(name, due=message(name).created - timedelta(seconds=5))
        await backend.enqueue([sent])
        item = (await claim_one(backend, queue, worker="w")).item
        assert abs((item.due - sent.due).total_seconds()) < 0.01
        assert abs((item.created - sent.created).total_seconds()) < 0.01
