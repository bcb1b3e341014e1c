"""Lineage in the core: how a handler's item reaches `publish`, wherever the handler runs."""

from __future__ import annotations

import asyncio
from typing import ClassVar

import pytest

from backend_conformance_tests import Recorder
from wrkr import BlockingWrkr, Event, NotSupported, Wrkr
from wrkr.backend import Capability
from wrkr_memory import MemoryBackend, MemoryStore


async def _child_of(publish_from_handler: object) -> tuple[str, Event]:
    """Run a handler of "a" that publishes "b" its own way; return a's id and b as handled."""
    app = Wrkr(MemoryBackend())
    children = Recorder()
    async with app:
        await app.subscribe("q.a", "a", publish_from_handler(app))  # type: ignore[operator]
        await app.subscribe("q.b", "b", children.handle)
        [root_id] = await app.publish({"name": "a"})
        await app.listen()
        return root_id, await children.next()


async def test_a_task_started_by_a_handler_publishes_as_the_handler() -> None:
    def handler_of(app: Wrkr) -> object:
        async def handle(event: Event) -> None:
            await asyncio.create_task(app.publish({"name": "b"}))
        return handle

    root_id, child = await _child_of(handler_of)
    assert (child.parent, child.root) == (root_id, root_id)


async def test_a_sync_handler_publishing_through_the_loop_records_its_parent() -> None:
    def handler_of(app: Wrkr) -> object:
        loop = asyncio.get_running_loop()

        def handle(event: Event) -> None:  # runs in a thread: the context is copied there
            asyncio.run_coroutine_threadsafe(app.publish({"name": "b"}), loop).result(10)
        return handle

    root_id, child = await _child_of(handler_of)
    assert (child.parent, child.root) == (root_id, root_id)


async def test_a_handler_publishing_to_another_app_records_its_parent_there() -> None:
    store = MemoryStore()
    other = Wrkr(MemoryBackend(store))
    async with other:
        await other.subscribe("q.elsewhere", "b", Recorder().handle)

        def handler_of(app: Wrkr) -> object:
            async def handle(event: Event) -> None:
                [other_id] = await other.publish({"name": "b"})
                await app.publish({"name": "b", "tid": other_id})
            return handle

        root_id, _ = await _child_of(handler_of)
        [elsewhere] = await other.items(queue="q.elsewhere")
        assert (elsewhere.parent, elsewhere.root) == (root_id, root_id)


async def test_what_the_app_publishes_after_a_handler_returned_is_a_root() -> None:
    app = Wrkr(MemoryBackend())
    handled = Recorder()
    async with app:
        await app.subscribe("q.a", "a", handled.handle)
        await app.publish({"name": "a"})
        await app.listen()
        await handled.next()
        [later] = await app.publish({"name": "a", "tid": "later"})
        event = await app.get(later)
        assert (event.parent, event.root) == (None, later)


class _NoLineage(MemoryBackend):
    capabilities: ClassVar[frozenset[Capability]] = (
        MemoryBackend.capabilities - {Capability.LINEAGE})


async def test_lineage_without_the_capability_raises_not_supported_naming_it() -> None:
    async with Wrkr(_NoLineage()) as app:
        with pytest.raises(NotSupported, match="'lineage'"):
            await app.lineage("0" * 32)


def test_blocking_wrkr_lineage_returns_the_tree() -> None:
    app = Wrkr(MemoryBackend())
    app.on("a", queue="q.a")(lambda event: None)
    with BlockingWrkr(app) as blocking:
        [root_id] = blocking.publish({"name": "a", "tid": "1"})
        assert [(e.id, e.parent, e.root) for e in blocking.lineage(root_id)] == [
            (root_id, None, root_id)]


async def test_a_sync_handler_publishing_through_a_blocking_wrkr_records_its_parent() -> None:
    other = Wrkr(MemoryBackend())
    other.on("b", queue="q.elsewhere")(lambda event: None)
    with BlockingWrkr(other) as blocking:  # its own loop, in its own thread
        def handler_of(app: Wrkr) -> object:
            loop = asyncio.get_running_loop()

            def handle(event: Event) -> None:  # in a worker thread
                blocking.publish({"name": "b"})
                asyncio.run_coroutine_threadsafe(app.publish({"name": "b"}), loop).result(10)
            return handle

        root_id, _ = await _child_of(handler_of)
        [elsewhere] = await asyncio.to_thread(blocking.items, queue="q.elsewhere")
    assert (elsewhere.parent, elsewhere.root) == (root_id, root_id)
