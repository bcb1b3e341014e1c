"""The harness with other kinds of apps and handlers: a server URL, sync handlers, facades."""

from __future__ import annotations

import threading

import pytest

from wrkr import (
    AlreadyStarted,
    BackendUnavailable,
    BlockingWrkr,
    Event,
    InvalidConfig,
    NotStarted,
    Wrkr,
)
from wrkr.testing import blocking_harness, harness
from wrkr_memory import MemoryBackend


# Port 9 (discard) on localhost: nothing listens, so any connection attempt would fail.
@pytest.mark.parametrize("url", ["postgresql://nobody:secret@127.0.0.1:9/none",
                                 "amqp://nobody:secret@127.0.0.1:9/", "mongodb://127.0.0.1:9/none"])
async def test_an_app_built_for_a_server_runs_on_memory_without_reaching_it(url: str) -> None:
    app = Wrkr.from_url(url, name="shop")  # the test extras install every backend
    backend = app.backend
    seen: list[str | None] = []

    @app.on("shop.order.placed", queue="orders")
    async def placed(event: Event) -> None:
        seen.append(event.tid)

    async with harness(app) as h:
        await app.publish({"name": "shop.order.placed", "tid": "1", "when": "1 hour"})
        await h.drain(until="1 hour")
    assert seen == ["1"]
    assert app.backend is backend
    assert not backend.is_open


async def test_plain_function_handlers_run_in_their_threads_and_are_waited_for() -> None:
    app = Wrkr(name="shop")
    threads: list[str] = []

    @app.on("shop.report", queue="reports")
    def build(event: Event) -> None:
        threads.append(threading.current_thread().name)

    async with harness(app) as h:
        await app.publish([{"name": "shop.report", "tid": str(n)} for n in range(3)])
        handled = await h.drain()
    assert [e.tid for e in handled] == ["0", "1", "2"]
    assert threading.main_thread().name not in threads


async def test_a_harness_cannot_be_entered_twice() -> None:
    h = harness(Wrkr())
    async with h:
        with pytest.raises(AlreadyStarted, match="already in use"):
            await h.__aenter__()


def test_blocking_harness_needs_a_started_blocking_wrkr() -> None:
    events = BlockingWrkr(Wrkr())
    with pytest.raises(NotStarted, match=r"events\.start\(\)"), blocking_harness(events):
        pass


def test_blocking_harness_takes_a_portal_only_with_a_plain_app() -> None:
    with pytest.raises(InvalidConfig, match="a BlockingWrkr alone"):
        blocking_harness(Wrkr())
    with BlockingWrkr(Wrkr()) as events, pytest.raises(InvalidConfig):
        blocking_harness(events, portal=object())  # type: ignore[arg-type]


def test_blocking_harness_restores_the_facade_it_borrowed() -> None:
    app = Wrkr(name="shop")
    seen: list[str | None] = []

    @app.on("shop.order.placed", queue="orders")
    async def placed(event: Event) -> None:
        seen.append(event.tid)

    with BlockingWrkr(app) as events:
        backend = app.backend
        with blocking_harness(events) as h:
            events.publish({"name": "shop.order.placed", "tid": "1"})
            assert [e.tid for e in h.drain()] == ["1"]
        assert app.backend is backend
        events.publish({"name": "shop.order.placed", "tid": "2"})  # started, not listening
        [pending] = events.items()
        assert pending.tid == "2"
    assert seen == ["1"]


class UnreachableBackend(MemoryBackend):
    """A backend whose server is down: opening it fails."""

    async def connect(self) -> None:
        raise BackendUnavailable("could not connect to memory-server://down: connection refused")


async def test_an_app_whose_server_is_down_is_tested_without_opening_its_backend() -> None:
    app = Wrkr(UnreachableBackend(), name="shop")

    @app.on("shop.order.placed", queue="orders")
    async def placed(event: Event) -> None:
        pass

    async with harness(app) as h:
        await app.publish({"name": "shop.order.placed", "tid": "1"})
        assert [e.tid for e in await h.drain()] == ["1"]
    assert isinstance(app.backend, UnreachableBackend)
    assert not app.backend.is_open
