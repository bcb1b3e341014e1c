"""What only the RabbitMQ backend promises: delay routing, foreign messages, crashes, restarts,
batches published all or nothing, queue types, the wire format (docs/wire-format.md).

The broker-restart test stops the shared RabbitMQ application: it is marked `alone`
and runs separately, after everything else (``pytest -m alone``).
"""

from __future__ import annotations

import asyncio
import hashlib
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pika  # type: ignore[import-untyped]
import pytest
import pytest_asyncio

from backend_conformance_tests import Names, Recorder
from backend_conformance_tests._helpers import WAIT, eventually
from tests.conftest import RABBITMQ_URL
from wrkr import (
    BackendUnavailable,
    Event,
    InvalidConfig,
    InvalidEvent,
    ItemNotFound,
    LeaseLost,
    NotSupported,
    Retry,
    State,
    Wrkr,
)
from wrkr.backend import ItemFilter, Message
from wrkr_rabbitmq import RabbitMQBackend
from wrkr_rabbitmq._client import RabbitMQConnection
from wrkr_rabbitmq._topology import (
    DELAY_LEVELS,
    MAX_COUNTDOWN,
    countdown_routing_key,
    entry_level,
)

pytestmark = pytest.mark.rabbitmq

ROOT = Path(__file__).resolve().parents[2]


@pytest_asyncio.fixture
async def app(rabbitmq_prefix: str) -> AsyncIterator[Wrkr]:
    """Provide a started app on a fresh namespace, stopped afterwards."""
    started = Wrkr(RabbitMQBackend(RABBITMQ_URL, prefix=rabbitmq_prefix))
    await started.start()
    yield started
    await started.stop(timeout=1.0)


def test_countdown_routing_key_is_26_binary_digits_then_namespace_and_destination() -> None:
    key = countdown_routing_key(5, "ns", "e:user.added")
    assert key == "0." * 23 + "1.0.1.ns.e:user.added"
    assert entry_level(5) == 2  # published straight into the 4-second level
    assert len(countdown_routing_key(MAX_COUNTDOWN, "ns", "q:" + "x" * 250)) <= 255


def test_from_url_reads_the_prefix_and_repr_masks_the_password() -> None:
    backend = RabbitMQBackend.from_url("amqp://guest:s3cret@127.0.0.1:5672/?prefix=shop")
    assert backend.topology.prefix == "shop"
    assert "s3cret" not in repr(backend)
    assert "prefix" not in str(backend.url)


async def test_unreachable_broker_raises_backend_unavailable_without_the_password() -> None:
    backend = RabbitMQBackend("amqp://guest:s3cret@127.0.0.1:1/")
    with pytest.raises(BackendUnavailable) as caught:
        await backend.open()
    assert "s3cret" not in str(caught.value)
    assert "***" in str(caught.value)


@pytest.mark.parametrize(("query", "bad"), [("prefx=x", "'prefx'"),
                                            ("heartbeat=abc", "'abc'")])
def test_bad_url_option_raises_invalid_config_naming_it_and_the_valid_ones(
        query: str, bad: str) -> None:
    with pytest.raises(InvalidConfig) as caught:
        Wrkr.from_url(f"amqp://guest:s3cret@127.0.0.1:5672/?{query}")
    message = str(caught.value)
    assert bad in message
    assert "valid options: blocked_connection_timeout, " in message
    assert "heartbeat" in message
    assert "prefix" in message
    assert "guest:***@127.0.0.1" in message
    assert "s3cret" not in message


def test_unknown_keyword_option_raises_invalid_config_naming_it() -> None:
    with pytest.raises(InvalidConfig, match=r"pool_sise.*valid keyword options: prefix"):
        Wrkr.from_url("amqp://guest:guest@127.0.0.1:5672/", pool_sise=3)


def test_prefix_that_is_not_one_segment_raises_invalid_config() -> None:
    with pytest.raises(InvalidConfig, match=r"invalid RabbitMQ prefix 'a\.b'"):
        RabbitMQBackend(RABBITMQ_URL, prefix="a.b")


async def test_refused_connection_says_so_in_one_line_the_password_masked() -> None:
    backend = RabbitMQBackend("amqp://guest:s3cret@127.0.0.1:1/")
    with pytest.raises(BackendUnavailable) as caught:
        await backend.open()
    assert str(caught.value) == "could not connect to amqp://guest:***@127.0.0.1:1/: " \
        "connection refused"


async def test_unresolvable_host_raises_backend_unavailable_saying_so() -> None:
    backend = RabbitMQBackend("amqp://guest:s3cret@wrkr-test.invalid:5672/")
    with pytest.raises(BackendUnavailable, match=r"could not connect to "
                       r"amqp://guest:\*\*\*@wrkr-test\.invalid:5672/: cannot resolve the host"):
        await backend.open()


OVER_DEFAULT_LIMIT = 128 * 1024 * 1024  # RabbitMQ's default max_message_size, in bytes


@pytest.mark.parametrize("alone_in_its_batch", [True, False])
async def test_over_sized_message_raises_invalid_event_and_publishes_nothing(
        app: Wrkr, names: Names, rabbitmq_prefix: str, alone_in_its_batch: bool) -> None:
    queue = names.queue("big")
    await app.subscribe(queue, names.event("e"), Recorder().handle)
    huge: dict[str, Any] = {"name": names.event("e"), "payload": {"x": "a" * OVER_DEFAULT_LIMIT}}
    batch = [huge] if alone_in_its_batch else [{"name": names.event("e")}, huge]
    with pytest.raises(InvalidEvent) as caught:
        await app.publish(batch)
    assert str(caught.value) == (
        "the message is 134217736 bytes, over the broker's limit of 134217728 bytes "
        "(max_message_size); nothing was published")
    assert await _ready(f"{rabbitmq_prefix}.q.{queue}") == 0
    assert len(await app.publish({"name": names.event("e")})) == 1  # the backend goes on


async def test_undeclared_capabilities_raise_not_supported_naming_them(app: Wrkr) -> None:
    with pytest.raises(NotSupported, match="query"):
        await app.items(state=State.READY)
    with pytest.raises(NotSupported, match="cancel"):
        await app.cancel(name="x.y")
    with pytest.raises(NotSupported, match="'lineage'"):
        await app.lineage("0" * 32)


async def test_mixed_delays_arrive_in_due_order_without_head_of_line_blocking(
        app: Wrkr, names: Names) -> None:
    recorder = Recorder()
    await app.subscribe(names.queue("mixed"), names.event("#"), recorder.handle)
    delays = {"hour": "1 hour", "three": "2.6 seconds", "one": "1 second",
              "two": "1.8 seconds", "now": None}
    await app.publish([{"name": names.event(key), "when": when} for key, when in delays.items()])
    await app.listen()
    got = await recorder.take(4)
    assert [event.name for event in got] == [names.event(k) for k in ("now", "one", "two", "three")]
    await recorder.nothing_more(0.3)  # the one-hour item stays in the chain


async def test_malformed_messages_are_parked_as_failed_and_the_consumer_keeps_going(
        app: Wrkr, names: Names, rabbitmq_prefix: str) -> None:
    recorder = Recorder()
    queue = names.queue("foreign")
    await app.subscribe(queue, names.event("ok"), recorder.handle)
    await app.listen()
    await _publish_raw(f"{rabbitmq_prefix}.q.{queue}", [b"not json at all", b'{"no": "headers"}'])
    await app.publish({"name": names.event("ok")})
    assert (await recorder.next()).name == names.event("ok")

    async def both_parked() -> bool:
        return len(await app.items(queue=queue, state=State.FAILED)) == 2

    await eventually(both_parked, "both foreign messages are parked")
    parked = await app.items(queue=queue, state=State.FAILED)
    assert all("not a wrkr message" in event.errors[0].message for event in parked)


async def _publish_raw(queue: str, bodies: list[bytes]) -> None:
    """Publish as a foreign application would: straight to the queue, no wrkr headers."""
    connection = await RabbitMQConnection.connect(RABBITMQ_URL)
    try:
        channel = await connection.channel()
        for body in bodies:
            await channel.publish(body, exchange="", routing_key=queue,
                                  properties=pika.BasicProperties(delivery_mode=2))
    finally:
        await connection.close()


@pytest_asyncio.fixture
async def backend(rabbitmq_prefix: str) -> AsyncIterator[RabbitMQBackend]:
    """Provide an open backend on a fresh namespace, closed afterwards."""
    opened = RabbitMQBackend(RABBITMQ_URL, prefix=rabbitmq_prefix)
    await opened.open()
    yield opened
    await opened.close()


def _message(name: str, due: datetime, index: int = 0) -> Message:
    return Message(name, None, f'{{"i": {index}}}'.encode(), due, due)


async def _ready(queue: str) -> int:
    """Return how many messages `queue` holds ready, asked on a connection of its own."""
    connection = await RabbitMQConnection.connect(RABBITMQ_URL)
    try:
        return await (await connection.channel()).queue_declare(queue, passive=True)
    finally:
        await connection.close()


async def test_batch_the_broker_refuses_midway_stores_none_of_it(
        backend: RabbitMQBackend, names: Names) -> None:
    # Two messages due within a second go to the due queue (the default exchange), then
    # one due now to the events exchange, deleted here: the broker closes the channel
    # at that publish (404), after it took the first two into the transaction.
    due_queue, now = backend.topology.due, backend.now()
    connection = await RabbitMQConnection.connect(RABBITMQ_URL)
    try:
        await (await connection.channel()).exchange_delete(backend.topology.events)
    finally:
        await connection.close()
    soon = now + timedelta(milliseconds=500)
    batch = [_message(names.event("a"), soon, 0), _message(names.event("a"), soon, 1),
             _message(names.event("a"), now, 2), _message(names.event("a"), soon, 3)]
    with pytest.raises(BackendUnavailable, match="NOT_FOUND") as caught:
        await backend.enqueue(batch)
    assert "guest:guest" not in str(caught.value)
    assert "unknown" not in str(caught.value)  # the broker refused it: nothing stored
    # The next batch goes through on a new channel; the queue then holds it and only it.
    # (No queue subscribes to "b": no ids come back, and when due the batch routes nowhere.)
    assert await backend.enqueue([_message(names.event("b"), soon, i) for i in range(3)]) == []

    async def only_the_second_batch() -> bool:
        return await _ready(due_queue) == 3

    await eventually(only_the_second_batch, "the due queue holds the second batch only")


async def test_batch_failing_on_the_client_midway_is_rolled_back(
        backend: RabbitMQBackend, names: Names) -> None:
    queue = names.queue("roll")
    await backend.subscribe(queue, names.event("#"))
    now = backend.now()
    # pika cannot encode the third message (a routing key over 255 bytes) after it has
    # written the first two into the transaction: tx.rollback discards them.
    batch = [_message(names.event("ok"), now, 0), _message(names.event("ok"), now, 1),
             _message(names.event("x" * 300), now, 2), _message(names.event("ok"), now, 3)]
    with pytest.raises(BackendUnavailable, match="ShortStringTooLong"):
        await backend.enqueue(batch)
    # The same transactional channel carries the next batch, whole.
    ids = await backend.enqueue([_message(names.event("ok"), now, i) for i in range(2)])
    stream = backend.deliveries(queue, worker="w", lease=timedelta(minutes=1), prefetch=10)
    try:
        async with asyncio.timeout(WAIT):
            got = [await anext(stream) for _ in ids]
        assert [d.item.id for d in got] == ids
        for delivery in got:
            await backend.ack(delivery)
    finally:
        await stream.aclose()
    assert await _ready(backend.topology.queue(queue)) == 0


async def test_uncommitted_publishes_vanish_when_the_connection_drops(
        backend: RabbitMQBackend, names: Names) -> None:
    # What a batch relies on when the connection is lost before tx.commit.
    queue = names.queue("drop")
    await backend.subscribe(queue, names.event("e"))
    connection = await RabbitMQConnection.connect(RABBITMQ_URL)
    channel = await connection.channel(transactional=True)
    for _ in range(5):
        channel.publish_in_transaction(b"{}", exchange=backend.topology.events,
                                       routing_key=names.event("e"),
                                       properties=pika.BasicProperties(delivery_mode=2))
    # A round trip on the same channel: the broker has taken the five publishes by now.
    assert await channel.queue_declare(backend.topology.queue(queue), passive=True) == 0
    await connection.close()
    assert await _ready(backend.topology.queue(queue)) == 0


async def test_connection_lost_during_commit_raises_outcome_unknown(
        backend: RabbitMQBackend, names: Names) -> None:
    queue = names.queue("lost")
    await backend.subscribe(queue, names.event("e"))
    now = backend.now()
    await backend.enqueue([_message(names.event("e"), now, i) for i in range(2)])  # warm up
    batch = [_message(names.event("e"), now, i) for i in range(10)]
    publishing = asyncio.create_task(backend.enqueue(batch))
    # One step of the task publishes the batch, sends tx.commit and waits for commit-ok;
    # its frames leave at the end of this loop turn. Shut the socket down before they do:
    # the client is left waiting on tx.commit when the connection dies.
    await asyncio.sleep(0)
    await _cut_the_socket(backend)
    with pytest.raises(BackendUnavailable, match="whether the broker stored the batch is unknown"):
        async with asyncio.timeout(WAIT):
            await publishing
    # Here the broker never got the frames, so the batch is not stored; only the warm-up.
    assert await _ready(backend.topology.queue(queue)) == 2


async def _cut_the_socket(backend: RabbitMQBackend) -> None:
    """Shut the backend's socket down as a failing network would: nothing more goes out."""
    connection = backend.broker.connection()
    connection._connection._transport._sock.shutdown(socket.SHUT_RDWR)


async def test_batch_arrives_whole_and_in_order_its_unroutable_messages_left_out(
        backend: RabbitMQBackend, names: Names) -> None:
    queue = names.queue("order")
    await backend.subscribe(queue, names.event("in"))
    now = backend.now()
    batch = [_message(names.event("in" if i % 4 else "nowhere"), now, i) for i in range(40)]
    batch.insert(5, _message(names.event("in"), now + timedelta(seconds=1), 99))  # delayed
    ids = await backend.enqueue(batch)
    assert len(ids) == 31  # 40 minus the 10 that reach no queue, plus the delayed one
    stream = backend.deliveries(queue, worker="w", lease=timedelta(minutes=1), prefetch=50)
    try:
        async with asyncio.timeout(WAIT):
            got = [await anext(stream) for _ in ids]
        delayed = ids.pop(3)  # after 1, 2 and 3 in the batch; it arrives last
        assert [d.item.id for d in got] == [*ids, delayed]
        assert [d.item.payload for d in got[:3]] == [b'{"i": 1}', b'{"i": 2}', b'{"i": 3}']
        for delivery in got:
            await backend.ack(delivery)
    finally:
        await stream.aclose()


async def test_failed_item_is_listed_with_its_history_and_retried_to_its_queue_only(
        app: Wrkr, names: Names) -> None:
    recorder, other = Recorder(), Recorder()
    calls = 0

    async def fail_once(event: Event) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("boom")
        recorder.record(event)

    await app.subscribe(names.queue("a"), names.event("x"), fail_once, retry=Retry(attempts=1))
    await app.subscribe(names.queue("b"), names.event("x"), other.handle)
    ids = await app.publish({"name": names.event("x")})
    await app.listen()
    handled_in_b = (await other.next()).id

    async def parked() -> bool:
        return len(await app.items(queue=names.queue("a"), state=State.FAILED)) == 1

    await eventually(parked, "the item is parked as failed")
    [failed] = await app.items(queue=names.queue("a"), state=State.FAILED)
    assert failed.errors[0].type == "RuntimeError"
    assert sorted([failed.id, handled_in_b]) == sorted(ids)  # each copy its own id
    with pytest.raises(ItemNotFound):
        await app.retry(handled_in_b)  # b's copy did not fail
    await app.retry(failed.id)
    assert (await recorder.next()).id == failed.id
    await other.nothing_more(0.2)  # the retry went to queue a only


_WORKER = """
import asyncio, sys
from wrkr import Wrkr
from wrkr_rabbitmq import RabbitMQBackend
from wrkr_rabbitmq._client import RabbitMQConnection

async def main(url, prefix, queue, pattern):
    app = Wrkr(RabbitMQBackend(url, prefix=prefix))
    async def hang(event):
        print(event.id, flush=True)
        await asyncio.sleep(3600)
    async with app:
        await app.subscribe(queue, pattern, hang)
        await app.listen()
        await asyncio.sleep(3600)

asyncio.run(main(*sys.argv[1:]))
"""


async def test_worker_killed_mid_handler_hands_its_item_to_another(
        app: Wrkr, names: Names, rabbitmq_prefix: str) -> None:
    recorder = Recorder()
    queue = names.queue("kill")
    await app.subscribe(queue, names.event("job"), recorder.handle)
    [item_id] = await app.publish({"name": names.event("job")})
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _WORKER, RABBITMQ_URL, rabbitmq_prefix, queue, names.event("job"),
        cwd=ROOT, stdout=subprocess.PIPE)
    try:
        assert worker.stdout is not None
        async with asyncio.timeout(WAIT):  # the worker prints the id once its handler runs
            assert (await worker.stdout.readline()).decode().strip() == item_id
    finally:
        worker.send_signal(signal.SIGKILL)
        await worker.wait()
    await app.listen()
    event = await recorder.next("the item, redelivered after the worker died")
    assert (event.id, event.attempts) == (item_id, 2)


async def test_stale_delivery_raises_lease_lost_after_its_connection_dropped(
        rabbitmq_prefix: str, names: Names) -> None:
    backend = RabbitMQBackend(RABBITMQ_URL, prefix=rabbitmq_prefix)
    await backend.open()
    try:
        await backend.subscribe(names.queue("l"), names.event("e"))
        now = backend.now()
        await backend.enqueue([Message(names.event("e"), None, b"{}", now, now)])
        stream = backend.deliveries(names.queue("l"), worker="w", lease=timedelta(minutes=1),
                                    prefetch=1)
        delivery = await anext(stream)
        await backend.drop_connections()
        with pytest.raises(LeaseLost):
            await backend.ack(delivery)
        again = await anext(stream)  # the stream reconnected by itself; the item is back
        assert (again.item.id, again.item.attempts) == (delivery.item.id, 2)
        await backend.ack(again)
        await stream.aclose()
        assert await backend.items(ItemFilter(queue=names.queue("l"), state=State.FAILED)) == []
    finally:
        await backend.close()


async def test_renew_holds_while_the_channel_is_open_and_not_after_it_closed(
        backend: RabbitMQBackend, names: Names) -> None:
    queue = names.queue("renew")
    await backend.subscribe(queue, names.event("e"))
    now = backend.now()
    await backend.enqueue([_message(names.event("e"), now, i) for i in range(2)])
    stream = backend.deliveries(queue, worker="w", lease=timedelta(seconds=1), prefetch=2)
    try:
        async with asyncio.timeout(WAIT):
            first, second = await anext(stream), await anext(stream)
        assert await backend.renew([first, second], timedelta(seconds=1)) == [True, True]
        await backend.ack(first)
        assert await backend.renew([first, second], timedelta(seconds=1)) == [False, True]
        await backend.drop_connections()
        assert await backend.renew([second], timedelta(seconds=1)) == [False]
    finally:
        await stream.aclose()


async def test_delayed_items_are_forwarded_again_after_the_connection_dropped(
        backend: RabbitMQBackend, names: Names) -> None:
    queue = names.queue("later")
    await backend.subscribe(queue, names.event("e"))
    stream = backend.deliveries(queue, worker="w", lease=timedelta(seconds=5), prefetch=1)
    try:
        for _ in ("before", "after"):  # the drop in between takes the forwarder's channel
            due = backend.now() + timedelta(milliseconds=300)
            [item_id] = await backend.enqueue([_message(names.event("e"), due)])
            async with asyncio.timeout(WAIT):
                delivery = await anext(stream)
                while delivery.item.id != item_id:  # forwarded twice: the drop beat its ack
                    await backend.ack(delivery)
                    delivery = await anext(stream)
            assert delivery.item.attempts == 1
            await backend.ack(delivery)
            await backend.drop_connections()
    finally:
        await stream.aclose()


@pytest.mark.alone
async def test_broker_restart_mid_stream_loses_no_confirmed_item_delayed_ones_included(
        app: Wrkr, names: Names) -> None:
    handled: set[str] = set()
    arrived = asyncio.Event()

    async def handle(event: Event) -> None:
        handled.add(str(event.id))
        arrived.set()

    await app.subscribe(names.queue("restart"), names.event("n"), handle)
    await app.listen()
    # Delayed items wait in the TTL chain through the restart (it takes a few seconds):
    # countdowns of 16 and 18 s enter level 4 (16 s), so they hop between levels only
    # after the broker is back. An item hopping *while the broker boots* can find no
    # route yet and is retried by the broker only after 180 s on the shared broker's
    # default settings (late, not lost): test_rabbitmq_dead_lettering.py covers that
    # window on a private node configured as docs/explanation/leases-and-delays.md says.
    delayed = set(await app.publish([{"name": names.event("n"), "when": f"{s} seconds"}
                                     for s in (17, 19)]))
    confirmed = delayed | await _publish_through_a_restart(app, names.event("n"), count=300)

    async def all_handled() -> bool:
        return confirmed <= handled

    try:
        async with asyncio.timeout(60):
            while not await all_handled():
                arrived.clear()
                await arrived.wait()
    except TimeoutError:
        missing = confirmed - handled
        pytest.fail(f"{len(missing)} confirmed item(s) not handled within 60 s, "
                    f"{len(missing & delayed)} of them delayed: {sorted(missing)[:10]}")
    assert len(confirmed) == 302


async def _publish_through_a_restart(app: Wrkr, name: str, count: int) -> set[str]:
    """Publish `count` events one by one; stop the broker app a third of the way through."""
    confirmed: set[str] = set()
    for index in range(count):
        if index == count // 3:
            await _rabbitmqctl("stop_app")
            with pytest.raises(BackendUnavailable):
                await app.publish({"name": name, "payload": {"lost": True}})
            await _rabbitmqctl("start_app")
        confirmed.update(await _publish_until_confirmed(app, name, index))
    return confirmed


async def _publish_until_confirmed(app: Wrkr, name: str, index: int) -> list[str]:
    """Publish one event, trying again while the broker is still starting (bounded)."""
    async with asyncio.timeout(WAIT):
        while True:
            try:
                return await app.publish({"name": name, "payload": {"i": index}})
            except BackendUnavailable:
                await asyncio.sleep(0.2)  # the broker is still booting


async def _rabbitmqctl(command: str) -> None:
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", "-q", command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    async with asyncio.timeout(60):
        assert await process.wait() == 0, f"rabbitmqctl {command} failed"


def test_exclusive_and_rate_raise_not_supported_naming_the_capability() -> None:
    app = Wrkr(RabbitMQBackend("amqp://guest:guest@127.0.0.1:5672/"))
    with pytest.raises(NotSupported, match="'exclusive'"):
        app.on("e", queue="q", exclusive=True)(lambda event: None)
    with pytest.raises(NotSupported, match="'rate'"):
        app.on("e", queue="q", rate="30/s")(lambda event: None)
    with pytest.raises(NotSupported, match="'rate'"):
        app.limiter("etsy", "30/s")


# -- queue types -----------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["clasic", "stream", ""])
def test_unknown_queue_type_raises_invalid_config_naming_it(bad: str) -> None:
    with pytest.raises(InvalidConfig, match=rf"invalid RabbitMQ queue_type '{bad}': expected "
                                            "'quorum' or 'classic'"):
        Wrkr.from_url(f"amqp://guest:guest@127.0.0.1:5672/?queue_type={bad}")


def test_queue_type_is_quorum_by_default_and_read_from_the_url_or_a_keyword() -> None:
    assert RabbitMQBackend(RABBITMQ_URL).topology.queue_type == "quorum"
    by_url = RabbitMQBackend.from_url(f"{RABBITMQ_URL}?queue_type=classic&prefix=p")
    assert (by_url.topology.queue_type, by_url.topology.prefix) == ("classic", "p")
    assert "queue_type" not in str(by_url.url)  # not passed on to pika
    assert RabbitMQBackend.from_url(RABBITMQ_URL, queue_type="classic").topology.queue_type \
        == "classic"


async def _queue_types() -> dict[str, tuple[str, str]]:
    """Return every queue's (type, arguments) as the broker lists them (rabbitmqctl)."""
    process = await asyncio.create_subprocess_exec(
        "rabbitmqctl", "-q", "list_queues", "name", "type", "arguments",
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    async with asyncio.timeout(60):
        out, _ = await process.communicate()
    rows = (line.split("\t") for line in out.decode().splitlines()[1:])
    return {row[0]: (row[1], row[2]) for row in rows if len(row) == 3}


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
async def test_every_queue_of_the_namespace_and_its_chain_has_the_queue_type(
        rabbitmq_prefix: str, names: Names, queue_type: str) -> None:
    backend = RabbitMQBackend(RABBITMQ_URL, prefix=rabbitmq_prefix, queue_type=queue_type)
    await backend.open()
    try:
        await backend.subscribe(names.queue("t"), names.event("e"))
        topology = backend.topology
        listed = await _queue_types()
        ours = [topology.queue(names.queue("t")), topology.failed(names.queue("t")),
                topology.due, topology.registry, topology.level(0), topology.level(25)]
        assert {listed[name][0] for name in ours} == {queue_type}
        level = listed[topology.level(3)][1]
        assert '{"x-message-ttl",8000}' in level
        if queue_type == "quorum":
            assert topology.chain == "wrkr-delay-quorum-v1"
            assert '{"x-dead-letter-strategy","at-least-once"}' in level
            assert all('{"x-overflow","reject-publish"}' in listed[name][1] for name in ours)
        else:
            assert topology.chain == "wrkr-delay-v1"
            assert "at-least-once" not in level
    finally:
        await backend.delete_namespace()
        await backend.close()


@pytest.mark.parametrize(("first", "then"), [("quorum", "classic"), ("classic", "quorum")])
async def test_namespace_declared_with_the_other_queue_type_raises_invalid_config_saying_how(
        rabbitmq_prefix: str, first: str, then: str) -> None:
    declared = RabbitMQBackend(RABBITMQ_URL, prefix=rabbitmq_prefix, queue_type=first)
    await declared.open()
    try:
        other = RabbitMQBackend(RABBITMQ_URL, prefix=rabbitmq_prefix, queue_type=then)
        with pytest.raises(InvalidConfig) as caught:
            await other.open()
        message = str(caught.value)
        assert f"RabbitMQ queue '{rabbitmq_prefix}.due' exists with other arguments than a " \
            f"{then} queue of wrkr's (queue_type={then}; the broker says: inequivalent arg" \
            in message
        assert f"connect with ?queue_type={first} to keep using it" in message
        assert f"rabbitmqctl delete_queue {rabbitmq_prefix}.due" in message
        assert "guest:guest" not in message
        await declared.subscribe("q", "e")  # the first backend is unharmed
    finally:
        await declared.delete_namespace()
        await declared.close()


async def test_subscribing_a_queue_declared_classic_in_a_quorum_namespace_raises_invalid_config(
        backend: RabbitMQBackend, names: Names) -> None:
    queue = names.queue("old")
    connection = await RabbitMQConnection.connect(RABBITMQ_URL)
    try:  # what an older wrkr, on classic queues, left behind
        await (await connection.channel()).queue_declare(backend.topology.queue(queue))
    finally:
        await connection.close()
    with pytest.raises(InvalidConfig, match=rf"queue '{backend.topology.queue(queue)}' exists "
                                            r"with other arguments than a quorum queue"):
        await backend.subscribe(queue, names.event("e"))
    await backend.subscribe(names.queue("new"), names.event("e"))  # the backend goes on
    assert await backend.subscriptions() == [(names.queue("new"), names.event("e"))]
    await backend.broker.delete_namespace()
    connection = await RabbitMQConnection.connect(RABBITMQ_URL)
    try:  # not in the subscription record, so not deleted with the namespace
        await (await connection.channel()).queue_delete(backend.topology.queue(queue))
    finally:
        await connection.close()


def _consume_and_die(queue: str, count: int) -> list[bytes]:
    """Take `count` messages unacked with raw pika, then drop the connection as a crash."""
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=count)
    taken = []
    for _method, _properties, body in channel.consume(queue, inactivity_timeout=WAIT):
        assert body is not None, "the messages did not arrive"
        taken.append(body)
        if len(taken) == count:
            break
    connection.close()  # unacked: the broker gives them back, as after a SIGKILL
    return taken


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
async def test_items_redelivered_after_a_crash_keep_their_place_only_on_quorum_queues(
        rabbitmq_prefix: str, names: Names, queue_type: str) -> None:
    backend = RabbitMQBackend(RABBITMQ_URL, prefix=rabbitmq_prefix, queue_type=queue_type)
    await backend.open()
    queue = names.queue("place")
    try:
        await backend.subscribe(queue, names.event("e"))
        now = backend.now()
        ids = await backend.enqueue([_message(names.event("e"), now, i) for i in range(30)])
        taken = await asyncio.to_thread(_consume_and_die, backend.topology.queue(queue), 5)
        assert taken == [f'{{"i": {i}}}'.encode() for i in range(5)]
        stream = backend.deliveries(queue, worker="w", lease=timedelta(minutes=1), prefetch=50)
        try:
            async with asyncio.timeout(WAIT):
                got = [await anext(stream) for _ in ids]
            for delivery in got:
                await backend.ack(delivery)
        finally:
            await stream.aclose()
    finally:
        await backend.delete_namespace()
        await backend.close()
    seen = [(d.item.id, d.item.attempts) for d in got]
    crashed, rest = [(i, 2) for i in ids[:5]], [(i, 1) for i in ids[5:]]
    # Quorum queues count the delivery themselves (x-delivery-count): the five are handed
    # out again first. Classic ones say only "redelivered": wrkr republishes them to count
    # the attempt, behind the 25 others.
    assert seen == ([*crashed, *rest] if queue_type == "quorum" else [*rest, *crashed])


@pytest.mark.parametrize("queue_type", ["quorum", "classic"])
async def test_released_item_comes_back_uncounted_on_the_stream_that_released_it(
        rabbitmq_prefix: str, names: Names, queue_type: str) -> None:
    # A release stops its consumer (so the copy cannot come back to it counted); the
    # stream goes on with a new consumer and gets the copy.
    backend = RabbitMQBackend(RABBITMQ_URL, prefix=rabbitmq_prefix, queue_type=queue_type)
    await backend.open()
    try:
        await backend.subscribe(names.queue("rel"), names.event("e"))
        [item_id] = await backend.enqueue([_message(names.event("e"), backend.now())])
        stream = backend.deliveries(names.queue("rel"), worker="w",
                                    lease=timedelta(minutes=1), prefetch=5)
        try:
            async with asyncio.timeout(WAIT):
                first = await anext(stream)
                await backend.release(first)
                again = await anext(stream)
            assert (again.item.id, again.item.attempts) == (item_id, 1)
            await backend.ack(again)
        finally:
            await stream.aclose()
    finally:
        await backend.delete_namespace()
        await backend.close()


# -- the wire format, with a raw AMQP client beside wrkr ----------------------------------


def _publish_foreign(exchange: str, routing_key: str, bodies: list[bytes],
                     headers: dict[str, Any] | None = None) -> None:
    """Publish as another application would, with raw pika: no wrkr header."""
    connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
    try:
        channel = connection.channel()
        channel.confirm_delivery()
        for body in bodies:
            channel.basic_publish(exchange, routing_key, body, pika.BasicProperties(
                delivery_mode=2, content_type="application/json", headers=headers))
    finally:
        connection.close()


async def test_plain_json_object_published_to_the_events_exchange_is_consumed_as_an_event(
        app: Wrkr, names: Names, rabbitmq_prefix: str) -> None:
    recorder = Recorder()
    await app.subscribe(names.queue("in"), names.event("signed-up"), recorder.handle)
    await app.listen()
    body = b'{"email": "ada@example.com", "plan": {"seats": 3}}'
    await asyncio.to_thread(_publish_foreign, f"{rabbitmq_prefix}.events",
                            names.event("signed-up"), [body, body], {"x-wrkr-tid": "user-7"})
    first, second = await recorder.take(2)
    assert (first.name, first.tid, first.attempts) == (names.event("signed-up"), "user-7", 1)
    assert first.payload == {"email": "ada@example.com", "plan": {"seats": 3}}
    assert first.id
    assert second.id not in (None, first.id)  # a fresh id each
    assert await app.items(queue=names.queue("in"), state=State.FAILED) == []


async def test_foreign_event_without_a_tid_header_has_no_tid_and_retries_like_any(
        app: Wrkr, names: Names, rabbitmq_prefix: str) -> None:
    recorder, calls = Recorder(), 0

    async def fail_once(event: Event) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("first try fails")
        recorder.record(event)

    await app.subscribe(names.queue("r"), names.event("x"), fail_once,
                        retry=Retry(attempts=3, backoff=["10 milliseconds"]))
    await app.listen()
    await asyncio.to_thread(_publish_foreign, f"{rabbitmq_prefix}.events", names.event("x"),
                            [b'{"n": 1}'])
    again = await recorder.next("the foreign event, retried")
    assert (again.tid, again.attempts, again.payload) == (None, 2, {"n": 1})
    assert again.errors[0].message == "first try fails"


@pytest.mark.parametrize(("body", "reason"), [
    (b"not json at all", "foreign message: the body is not JSON (starts with b'not json"),
    (b'[1, 2, 3]', "foreign message: the body is a JSON array, not an object"),
    (b'"text"', "foreign message: the body is a JSON string, not an object"),
])
async def test_foreign_message_that_is_not_a_json_object_is_parked_with_the_reason(
        app: Wrkr, names: Names, rabbitmq_prefix: str, body: bytes, reason: str) -> None:
    recorder = Recorder()
    queue = names.queue("bad")
    await app.subscribe(queue, names.event("e"), recorder.handle)
    await app.listen()
    await asyncio.to_thread(_publish_foreign, f"{rabbitmq_prefix}.events", names.event("e"),
                            [body, b'{"ok": true}'])
    assert (await recorder.next()).payload == {"ok": True}  # the consumer goes on

    async def parked() -> bool:
        return len(await app.items(queue=queue, state=State.FAILED)) == 1

    await eventually(parked, "the malformed message is parked")
    [failed] = await app.items(queue=queue, state=State.FAILED)
    assert failed.name == names.event("e")
    assert failed.errors[0].message.startswith(reason)
    await recorder.nothing_more(0.1)


async def test_foreign_tid_header_that_is_not_a_string_is_parked_saying_so(
        app: Wrkr, names: Names, rabbitmq_prefix: str) -> None:
    queue = names.queue("tid")
    await app.subscribe(queue, names.event("e"), Recorder().handle)
    await app.listen()
    await asyncio.to_thread(_publish_foreign, f"{rabbitmq_prefix}.events", names.event("e"),
                            [b"{}"], {"x-wrkr-tid": 42})

    async def parked() -> bool:
        return len(await app.items(queue=queue, state=State.FAILED)) == 1

    await eventually(parked, "the message is parked")
    [failed] = await app.items(queue=queue, state=State.FAILED)
    assert failed.errors[0].message == \
        "foreign message: header 'x-wrkr-tid' must be a string, not int 42"


class _RawReader:
    """Another application reading wrkr's events: a queue of its own, bound with raw pika."""

    def __init__(self, queue: str, exchange: str, pattern: str) -> None:
        self.queue = queue
        self.connection = pika.BlockingConnection(pika.URLParameters(RABBITMQ_URL))
        self.channel = self.connection.channel()
        self.channel.queue_declare(queue, durable=True)
        self.channel.queue_bind(queue, exchange, pattern)

    def take_and_delete(self) -> tuple[Any, Any, bytes]:
        """Take the one message, delete the queue, close."""
        try:
            method, properties, body = self.channel.basic_get(self.queue, auto_ack=True)
            self.channel.queue_delete(self.queue)
            return method, properties, body
        finally:
            self.connection.close()


async def test_raw_client_reads_wrkr_messages_as_the_wire_format_says(
        app: Wrkr, names: Names, rabbitmq_prefix: str) -> None:
    reader = await asyncio.to_thread(_RawReader, f"{rabbitmq_prefix}.raw-reader",
                                     f"{rabbitmq_prefix}.events", names.event("order.*"))
    queue = names.queue("orders")
    await app.subscribe(queue, names.event("order.paid"), lambda _event: None)
    [item_id] = await app.publish({"name": names.event("order.paid"), "tid": "o-1",
                                   "payload": {"total": 12.5, "lines": [1, 2]}})
    method, properties, body = await asyncio.to_thread(reader.take_and_delete)
    assert method.routing_key == names.event("order.paid")
    assert orjson.loads(body) == {"total": 12.5, "lines": [1, 2]}
    assert (properties.content_type, properties.delivery_mode) == ("application/json", 2)
    meta = orjson.loads(properties.headers["x-wrkr"])
    assert {key: meta[key] for key in ("name", "tid", "attempts", "errors", "to")} == {
        "name": names.event("order.paid"), "tid": "o-1", "attempts": 0,
        "errors": [], "to": f"e:{names.event('order.paid')}"}
    # The copy in wrkr's queue is named by the spec's rule from the message id.
    assert (properties.message_id, meta["copy_ids"]) == (meta["id"], "sha256")
    assert hashlib.sha256(f"{meta['id']}/{queue}".encode()).hexdigest()[:32] == item_id
    assert isinstance(meta["due"], int)
    assert meta["due"] == meta["created"]
    assert abs(meta["created"] / 1e6 - datetime.now().timestamp()) < 60


async def test_a_delayed_item_reaching_the_chain_end_unbound_is_moved_to_its_due_queue(
        backend: RabbitMQBackend, names: Names) -> None:
    """A booting broker recovers queues before bindings, so an item can leave the delay
    chain before its namespace's due queue is bound to the chain's end again: the limbo
    queue behind the chain end's alternate exchange keeps it, and a forwarder (any
    process's) moves it to that due queue instead of it being lost."""
    queue, topology = names.queue("limbo"), backend.broker.topology
    await backend.subscribe(queue, names.event("e"))
    stream = backend.deliveries(queue, worker="w", lease=timedelta(seconds=5), prefetch=1)
    admin = await backend.broker.connection().channel()
    try:
        await admin.queue_unbind(topology.due, topology.chain_end,
                                 "*." * DELAY_LEVELS + f"{topology.prefix}.#")
        [item_id] = await backend.enqueue(
            [_message(names.event("e"), backend.now() + timedelta(seconds=2))])
        async with asyncio.timeout(WAIT):
            delivery = await anext(stream)
        assert (delivery.item.id, delivery.item.attempts) == (item_id, 1)
        await backend.ack(delivery)
    finally:
        await admin.close()
        await stream.aclose()


def _wrkr_header(item_id: str, name: str, **extra: Any) -> dict[str, Any]:
    """Return the x-wrkr header of a new event, as a wrkr publisher writes it."""
    now = int(datetime.now().timestamp() * 1e6)
    return {"x-wrkr": orjson.dumps({
        "id": item_id, "name": name, "tid": None, "due": now, "created": now,
        "attempts": 0, "errors": [], "to": f"e:{name}", **extra}).decode()}


async def test_a_copy_the_publisher_did_not_name_takes_the_id_the_rule_derives(
        app: Wrkr, names: Names, rabbitmq_prefix: str) -> None:
    # A publisher whose view missed a subscription made meanwhile: the broker still
    # routes the copy, and its consumer names it by the rule of docs/wire-format.md.
    recorder, queue, name = Recorder(), names.queue("late"), names.event("x")
    await app.subscribe(queue, name, recorder.handle)
    await app.listen()
    message_id = "ab" * 16
    await asyncio.to_thread(_publish_foreign, f"{rabbitmq_prefix}.events", name, [b"{}"],
                            _wrkr_header(message_id, name, copy_ids="sha256"))
    expected = hashlib.sha256(f"{message_id}/{queue}".encode()).hexdigest()[:32]
    event = await recorder.next()
    assert (event.id, event.root) == (expected, expected)


async def test_a_message_of_a_publisher_before_copy_ids_keeps_its_id(
        app: Wrkr, names: Names, rabbitmq_prefix: str) -> None:
    recorders = {names.queue(s): Recorder() for s in ("a", "b")}
    for queue, recorder in recorders.items():
        await app.subscribe(queue, names.event("x"), recorder.handle)
    await app.listen()
    await asyncio.to_thread(_publish_foreign, f"{rabbitmq_prefix}.events", names.event("x"),
                            [b"{}"], _wrkr_header("cd" * 16, names.event("x")))
    assert [(await r.next()).id for r in recorders.values()] == ["cd" * 16] * 2


_SUBSCRIBER = """
import asyncio, sys
from wrkr import Wrkr
from wrkr_rabbitmq import RabbitMQBackend

async def main(url, prefix, queue, pattern):
    app = Wrkr(RabbitMQBackend(url, prefix=prefix))
    async def report(event):
        print(event.id, flush=True)
    async with app:
        await app.subscribe(queue, pattern, report)
        print("subscribed", flush=True)
        await app.listen()
        await asyncio.sleep(3600)

asyncio.run(main(*sys.argv[1:]))
"""


async def test_a_subscription_another_process_made_counts_in_the_next_publish(
        app: Wrkr, names: Names, rabbitmq_prefix: str) -> None:
    name, theirs = names.event("x"), names.queue("theirs")
    await app.subscribe(names.queue("mine"), name, lambda _event: None)
    assert len(await app.publish({"name": name})) == 1  # the view is read before
    subscriber = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _SUBSCRIBER, RABBITMQ_URL, rabbitmq_prefix, theirs, name,
        cwd=ROOT, stdout=subprocess.PIPE)
    try:
        assert subscriber.stdout is not None
        async with asyncio.timeout(WAIT):
            assert (await subscriber.stdout.readline()).decode().strip() == "subscribed"
            ids = await app.publish({"name": name})
            reported = (await subscriber.stdout.readline()).decode().strip()
    finally:
        subscriber.send_signal(signal.SIGKILL)
        await subscriber.wait()
    assert len(set(ids)) == 2
    assert reported in ids
