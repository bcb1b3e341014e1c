"""A delay-chain hop that finds no route, as while RabbitMQ boots, is late, never lost.

A booting broker starts its quorum queues before it has recovered their bindings, so a
delayed item whose level expires in that window is dead-lettered into an exchange with
no route yet. Dead-lettering at least once keeps it and retries every
``dead_letter_worker_publisher_confirm_timeout`` (3 minutes by default on RabbitMQ 3.10;
docs/explanation/leases-and-delays.md says what to configure). Seen here about one
restart in ten with items hopping through it: delivered 181 s late, none lost.

The test starts a private node with that interval at 2 s (the shared broker is never
touched) and takes the route away by hand, deterministically, instead of hoping that a
restart hits the window. Marked `alone`: a second RabbitMQ node wants the machine.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta

import pika  # type: ignore[import-untyped]
import pytest
import pytest_asyncio

from backend_conformance_tests._helpers import WAIT
from bench._faults_servers import PrivateRabbitMQ, ServerMissing, free_port
from wrkr.backend import Message
from wrkr_rabbitmq import RabbitMQBackend
from wrkr_rabbitmq._topology import RabbitMQTopology, _digit_pattern

pytestmark = [pytest.mark.rabbitmq, pytest.mark.alone, pytest.mark.timeout(120)]

RETRY_MS = 2000


@pytest.fixture(scope="module")
def node() -> Iterator[PrivateRabbitMQ]:
    """A private RabbitMQ node retrying unrouted dead letters every 2 s."""
    try:
        server = PrivateRabbitMQ(free_port(), free_port(), advanced=(
            f"[{{rabbit, [{{dead_letter_worker_publisher_confirm_timeout, {RETRY_MS}}}]}}]."))
    except ServerMissing as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"no private RabbitMQ node here: {exc}")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest_asyncio.fixture
async def backend(node: PrivateRabbitMQ) -> AsyncIterator[RabbitMQBackend]:
    started = RabbitMQBackend(node.url, prefix="boot")
    await started.connect()
    yield started
    await started.disconnect()


def _hop(node: PrivateRabbitMQ, topology: RabbitMQTopology, bound: bool) -> None:
    """Take away (or give back) the binding level 0 sends a digit 0 on by: the chain's end."""
    parameters = pika.URLParameters(f"amqp://guest:guest@127.0.0.1:{node.port}/")
    with pika.BlockingConnection(parameters) as connection:
        channel = connection.channel()
        change = channel.exchange_bind if bound else channel.exchange_unbind
        change(topology.chain_end, topology.level(0), _digit_pattern(0, "0"))


async def test_an_item_whose_hop_finds_no_route_arrives_once_the_route_is_back(
        node: PrivateRabbitMQ, backend: RabbitMQBackend) -> None:
    topology = backend.broker.topology
    await backend.subscribe("boot", "e")
    stream = backend.deliveries("boot", worker="w", lease=timedelta(seconds=5), prefetch=1)
    # A countdown of 2 s (binary 10) enters level 1; when it expires, level 0's exchange sends it
    # (digit 0) on to the chain's end, by the binding taken away here.
    await asyncio.to_thread(_hop, node, topology, False)
    try:
        due = backend.now() + timedelta(seconds=2.5)  # countdown 2 s (then a held 0.5 s)
        [item_id] = await backend.enqueue([Message("e", None, b"{}", due, due)])
        first = asyncio.ensure_future(anext(stream))
        done, _ = await asyncio.wait([first], timeout=4.5)
        assert not done, "the item arrived although its hop had no route"
        await asyncio.to_thread(_hop, node, topology, True)
        # The next retry of the unrouted dead letter takes it; with RabbitMQ's default
        # interval this would be up to 180 s.
        async with asyncio.timeout(RETRY_MS / 1000 + WAIT):
            delivery = await first
        assert (delivery.item.id, delivery.item.attempts) == (item_id, 1)
        await backend.ack(delivery)
    finally:
        await stream.aclose()
