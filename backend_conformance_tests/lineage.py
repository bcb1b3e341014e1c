"""Lineage: what a handler publishes records its `parent` and `root`; `lineage()` (LINEAGE)."""

from __future__ import annotations

import pytest

from wrkr import Event, ItemNotFound, State, Wrkr
from wrkr.backend import Backend, Capability, ItemFilter, Message

from ._helpers import AppFactory, Names, Recorder, SuiteBase, claim_one, eventually, needs, utcnow


def _tree(events: list[Event]) -> list[tuple[str | None, str | None, str | None, str | None]]:
    return [(event.id, event.parent, event.root, event.name) for event in events]


async def _chain(app: AppFactory, names: Names, archive: str = "delete") -> tuple[Wrkr, Recorder]:
    """An app where `a`'s handler publishes `b`, and `b`'s publishes `c` (recorded)."""
    wrkr = await app(archive=archive)
    leaf = Recorder()

    async def publish_next(event: Event) -> None:
        following = {names.event("a"): "b", names.event("b"): "c"}[event.name]
        await wrkr.publish({"name": names.event(following), "tid": event.tid})

    await wrkr.subscribe(names.queue("a"), names.event("a"), publish_next)
    await wrkr.subscribe(names.queue("b"), names.event("b"), publish_next)
    await wrkr.subscribe(names.queue("c"), names.event("c"), leaf.handle)
    return wrkr, leaf


async def _all_done(wrkr: Wrkr, item_id: str, count: int) -> list[Event]:
    async def done() -> bool:
        tree = await wrkr.lineage(item_id)
        return len(tree) == count and all(event.state is State.DONE for event in tree)

    await eventually(done, f"the {count} items of the tree are done")
    return await wrkr.lineage(item_id)


class LineageSuite(SuiteBase):
    """`parent` and `root` on every item, and the tree `lineage()` returns."""

    async def test_a_handler_sees_the_parent_and_root_of_its_event(
            self, app: AppFactory, names: Names) -> None:
        wrkr, leaf = await _chain(app, names)
        [root_id] = await wrkr.publish({"name": names.event("a"), "tid": "7"})
        await wrkr.listen()
        c = await leaf.next("the event published by b's handler")
        assert (c.root, c.tid) == (root_id, "7")
        assert c.parent is not None
        assert c.parent != root_id

    async def test_an_event_published_outside_a_handler_is_a_root(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        recorder = Recorder()
        await wrkr.subscribe(names.queue("a"), names.event("a"), recorder.handle)
        [item_id] = await wrkr.publish({"name": names.event("a")})
        await wrkr.listen()
        event = await recorder.next()
        assert (event.id, event.parent, event.root) == (item_id, None, item_id)

    @needs(Capability.LINEAGE, Capability.ARCHIVE)
    async def test_lineage_returns_a_chain_in_creation_order(
            self, app: AppFactory, names: Names) -> None:
        wrkr, leaf = await _chain(app, names, archive="keep")
        [root_id] = await wrkr.publish({"name": names.event("a"), "tid": "7"})
        await wrkr.listen()
        c = await leaf.next()
        tree = await _all_done(wrkr, c.id or "", 3)
        assert c.parent is not None
        assert _tree(tree) == [(root_id, None, root_id, names.event("a")),
                               (c.parent, root_id, root_id, names.event("b")),
                               (c.id, c.parent, root_id, names.event("c"))]
        assert [(e.queue, e.tid) for e in tree] == [(names.queue(q), "7") for q in "abc"]

    @needs(Capability.LINEAGE, Capability.ARCHIVE)
    async def test_lineage_is_the_same_tree_from_any_of_its_items(
            self, app: AppFactory, names: Names) -> None:
        wrkr, leaf = await _chain(app, names, archive="keep")
        [root_id] = await wrkr.publish({"name": names.event("a")})
        await wrkr.listen()
        c = await leaf.next()
        tree = await _all_done(wrkr, root_id, 3)
        assert c.parent is not None
        assert await wrkr.lineage(c.parent) == tree == await wrkr.lineage(c.id or "")

    @needs(Capability.LINEAGE, Capability.ARCHIVE)
    async def test_a_handler_publishing_a_batch_makes_branches(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app(archive="keep")
        leaves = Recorder()

        async def branch(event: Event) -> None:
            await wrkr.publish([{"name": names.event("leaf"), "tid": tid} for tid in "12"])

        await wrkr.subscribe(names.queue("a"), names.event("a"), branch)
        await wrkr.subscribe(names.queue("leaf"), names.event("leaf"), leaves.handle)
        [root_id] = await wrkr.publish({"name": names.event("a")})
        [other_root] = await wrkr.publish({"name": names.event("leaf"), "tid": "other"})
        await wrkr.listen()
        await leaves.take(3)
        tree = await _all_done(wrkr, root_id, 3)
        assert [(e.parent, e.root, e.tid) for e in tree] == [
            (None, root_id, None), (root_id, root_id, "1"), (root_id, root_id, "2")]
        assert other_root not in [e.id for e in tree]
        assert _tree(await wrkr.lineage(other_root)) == [
            (other_root, None, other_root, names.event("leaf"))]

    @needs(Capability.LINEAGE, Capability.ARCHIVE)
    async def test_fan_out_copies_each_have_the_parent(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app(archive="keep")
        copies = Recorder()

        async def publish_child(event: Event) -> None:
            await wrkr.publish({"name": names.event("child")})

        await wrkr.subscribe(names.queue("a"), names.event("a"), publish_child)
        for queue in ("x", "y"):
            await wrkr.subscribe(names.queue(queue), names.event("child"), copies.handle)
        [root_id] = await wrkr.publish({"name": names.event("a")})
        await wrkr.listen()
        received = await copies.take(2)
        assert sorted((e.queue, e.parent, e.root) for e in received) == [
            (names.queue("x"), root_id, root_id), (names.queue("y"), root_id, root_id)]
        tree = await _all_done(wrkr, root_id, 3)
        assert sorted(e.queue or "" for e in tree[1:]) == [names.queue("x"), names.queue("y")]

    @needs(Capability.LINEAGE)
    async def test_lineage_of_a_root_alone_is_the_root_with_its_own_fields(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        await wrkr.subscribe(names.queue("a"), names.event("a"), Recorder().handle)
        [item_id] = await wrkr.publish({"name": names.event("a"), "tid": "t"})
        [event] = await wrkr.lineage(item_id)
        assert (event.id, event.parent, event.root, event.name, event.queue, event.tid,
                event.state) == (item_id, None, item_id, names.event("a"), names.queue("a"),
                                 "t", State.READY)

    @needs(Capability.LINEAGE)
    async def test_lineage_lists_only_the_items_the_backend_still_holds(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()  # archive="delete": the handled parent is gone once acked
        children = Recorder()

        async def publish_child(event: Event) -> None:
            await wrkr.publish({"name": names.event("child")})

        await wrkr.subscribe(names.queue("a"), names.event("a"), publish_child)
        await wrkr.subscribe(names.queue("b"), names.event("child"), children.hold)
        [root_id] = await wrkr.publish({"name": names.event("a")})
        await wrkr.listen()
        child = await children.next()

        async def parent_gone() -> bool:
            return [e.id for e in await wrkr.lineage(child.id or "")] == [child.id]

        await eventually(parent_gone, "the acked parent is deleted")
        [held] = await wrkr.lineage(child.id or "")
        assert (held.parent, held.root) == (root_id, root_id)
        children.release()

    @needs(Capability.LINEAGE)
    async def test_lineage_of_an_unknown_id_raises_item_not_found(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        with pytest.raises(ItemNotFound):
            await wrkr.lineage("0" * 32)

    @needs(Capability.LINEAGE)
    async def test_backend_stores_parent_root_and_trace_as_given(
            self, backend: Backend, names: Names) -> None:
        queue, name = names.queue("a"), names.event("x")
        await backend.subscribe(queue, name)
        now = utcnow()
        root = Message(name, None, b"{}", now, now)
        [root_id] = await backend.enqueue([root])
        trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        child = Message(name, None, b"{}", now, now, parent=root_id, root=root_id, trace=trace)
        [child_id] = await backend.enqueue([child])
        stored = {item.id: item for item in await backend.items(ItemFilter(root=root_id))}
        assert sorted(stored) == sorted([root_id, child_id])
        assert (stored[root_id].parent, stored[root_id].root, stored[root_id].trace) == (
            None, root_id, None)
        assert (stored[child_id].parent, stored[child_id].root, stored[child_id].trace) == (
            root_id, root_id, trace)
        delivery = await claim_one(backend, queue, worker="w")
        assert (delivery.item.id, delivery.item.root) == (root_id, root_id)

    async def test_a_delivered_item_carries_its_trace(
            self, backend: Backend, names: Names) -> None:
        queue, name = names.queue("a"), names.event("x")
        await backend.subscribe(queue, name)
        now = utcnow()
        trace = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
        [item_id] = await backend.enqueue([Message(name, None, b"{}", now, now, parent="p1",
                                                   root="r1", trace=trace)])
        item = (await claim_one(backend, queue, worker="w")).item
        assert (item.id, item.parent, item.root, item.trace) == (item_id, "p1", "r1", trace)
