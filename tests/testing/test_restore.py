"""The harness leaves the app as it found it, and one harness never leaks into the next."""

from __future__ import annotations

import asyncio

import pytest

from wrkr import Event, NotStarted, Wrkr
from wrkr.testing import harness
from wrkr_memory import MemoryBackend


class Seen(list[str]):
    """The tids a handler saw, and a way to await the next one."""

    def __init__(self) -> None:
        super().__init__()
        self.changed = asyncio.Condition()

    async def add(self, tid: str) -> None:
        async with self.changed:
            self.append(tid)
            self.changed.notify_all()

    async def wait_for(self, tid: str) -> None:
        async with asyncio.timeout(5), self.changed:
            await self.changed.wait_for(lambda: tid in self)


def shop(app: Wrkr, seen: Seen) -> Wrkr:
    """Give `app` a handler that records the tids it sees."""

    @app.on("shop.order.placed", queue="orders")
    async def placed(event: Event) -> None:
        await seen.add(event.tid or "")

    return app


async def test_an_unstarted_app_is_left_unstarted_on_its_own_backend() -> None:
    seen = Seen()
    app = shop(Wrkr(name="shop"), seen)
    backend = app.backend
    async with harness(app) as h:
        assert app.backend is h.backend is not backend
        await app.publish({"name": "shop.order.placed", "tid": "1"})
        await h.drain()
    assert app.backend is backend
    assert seen == ["1"]
    with pytest.raises(NotStarted):
        await app.publish({"name": "shop.order.placed", "tid": "2"})
    async with app:  # and it still works as before
        await app.listen()
        await app.publish({"name": "shop.order.placed", "tid": "3"})
        await seen.wait_for("3")


async def test_a_started_listening_app_is_restarted_and_finds_its_own_items_again() -> None:
    seen = Seen()
    app = shop(Wrkr(MemoryBackend(), name="shop"), seen)
    backend = app.backend
    async with app:
        await app.publish({"name": "shop.order.placed", "tid": "before", "when": "1 day"})
        await app.listen()
        async with harness(app) as h:
            await app.publish({"name": "shop.order.placed", "tid": "inside"})
            await h.drain(until="2 days")
            assert [e.tid for e in h.handled] == ["inside"]  # not the app's own item
        assert app.backend is backend
        [pending] = await app.items()
        assert pending.tid == "before"
        await app.publish({"name": "shop.order.placed", "tid": "after"})
        await seen.wait_for("after")  # listening again: its consumer handles it
    assert seen == ["inside", "after"]


async def test_a_started_app_that_was_not_listening_is_not_listening_after() -> None:
    seen = Seen()
    app = shop(Wrkr(name="shop"), seen)
    async with app:
        async with harness(app) as h:
            await app.publish({"name": "shop.order.placed", "tid": "inside"})
            await h.drain()
        await app.publish({"name": "shop.order.placed", "tid": "after"})
        for _ in range(20):  # turns of the loop in which a consumer, if any, would claim it
            await asyncio.sleep(0)
        [pending] = await app.items(state="ready")
        assert pending.tid == "after"
    assert seen == ["inside"]


async def test_an_app_built_from_a_url_is_restored_to_its_named_store() -> None:
    seen = Seen()
    app = shop(Wrkr.from_url("memory://harness-restore", name="shop"), seen)
    backend = app.backend
    async with app:
        await app.publish({"name": "shop.order.placed", "tid": "kept", "when": "1 hour"})
    async with harness(app) as h:
        await h.drain(until="1 day")
        assert h.handled == []
    assert app.backend is backend
    async with Wrkr.from_url("memory://harness-restore") as other:
        [kept] = await other.items()
        assert kept.tid == "kept"


async def test_routes_subscribed_inside_the_harness_are_gone_afterwards() -> None:
    seen = Seen()
    app = shop(Wrkr(name="shop"), seen)

    async def extra(event: Event) -> None:
        await seen.add(f"extra {event.tid}")

    async with harness(app) as h:
        await app.subscribe("extras", "shop.#", extra)
        await app.publish({"name": "shop.order.placed", "tid": "1"})
        await h.drain()
    assert sorted(seen) == ["1", "extra 1"]
    async with app:
        assert await app.subscriptions("shop.order.placed") == ["orders"]


async def test_two_harnesses_in_a_row_share_nothing() -> None:
    seen = Seen()
    app = shop(Wrkr(name="shop"), seen)
    async with harness(app) as first:
        await app.publish([{"name": "shop.order.placed", "tid": "now"},
                           {"name": "shop.order.placed", "tid": "later", "when": "1 week"}])
        await first.drain()
        start = first.clock.now()
    async with harness(app) as second:
        assert second.backend is not first.backend
        assert await app.items() == []  # the first harness's scheduled item stayed there
        assert second.handled == []
        await second.drain(until="2 weeks")
        assert second.handled == []
        assert second.clock is not first.clock
    assert [e.tid for e in first.handled] == ["now"]
    assert first.clock.now() == start
    assert seen == ["now"]


async def test_the_harness_restores_the_app_when_the_test_fails() -> None:
    app = shop(Wrkr(name="shop"), Seen())
    backend = app.backend
    with pytest.raises(ZeroDivisionError):
        async with harness(app):
            _ = 1 / 0
    assert app.backend is backend
    assert not app.observers  # the harness's recorder is gone too
