"""Inspection and control: items / get / cancel, counts, archive, missing capabilities."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from wrkr import InvalidEvent, ItemNotFound, NotSupported, State, Wrkr
from wrkr.backend import Backend, Capability, ItemFilter

from ._helpers import (
    AppFactory,
    Names,
    Recorder,
    SuiteBase,
    claim_one,
    due_of,
    eventually,
    is_gone,
    message,
    needs,
    state_of,
    utcnow,
)


async def subscribed(app: AppFactory, names: Names, *queues: str) -> Wrkr:
    """Start an app with `queues` (default: "a") subscribed to the event "x", not listening."""
    wrkr = await app()
    for queue in queues or ("a",):
        await wrkr.subscribe(names.queue(queue), names.event("x"), Recorder().handle)
    return wrkr


class InspectionSuite(SuiteBase):
    """`items()` and `get()` (QUERY), and the backend's `counts()`."""

    @needs(Capability.QUERY)
    async def test_items_lists_the_pending_items_of_a_queue(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await subscribed(app, names)
        ids = await wrkr.publish([{"name": names.event("x"), "tid": str(n)} for n in range(3)])
        listed = await wrkr.items(queue=names.queue("a"))
        assert [(event.id, event.tid, event.state) for event in listed] == [
            (ids[0], "0", State.READY), (ids[1], "1", State.READY), (ids[2], "2", State.READY)]

    @needs(Capability.QUERY)
    async def test_items_filter_by_name(self, app: AppFactory, names: Names) -> None:
        wrkr = await subscribed(app, names)
        await wrkr.subscribe(names.queue("a"), names.event("y"), Recorder().handle)
        await wrkr.publish([{"name": names.event("x")}, {"name": names.event("y")}])
        listed = await wrkr.items(name=names.event("y"))
        assert [event.name for event in listed] == [names.event("y")]

    @needs(Capability.QUERY)
    async def test_items_filter_by_tid(self, app: AppFactory, names: Names) -> None:
        wrkr = await subscribed(app, names)
        await wrkr.publish([{"name": names.event("x"), "tid": tid} for tid in ("1", "2", "1")])
        listed = await wrkr.items(name=names.event("x"), tid="1")
        assert [event.tid for event in listed] == ["1", "1"]

    @needs(Capability.QUERY)
    async def test_items_filter_by_queue(self, app: AppFactory, names: Names) -> None:
        wrkr = await subscribed(app, names, "a", "b")
        await wrkr.publish({"name": names.event("x")})
        listed = await wrkr.items(queue=names.queue("b"))
        assert [event.queue for event in listed] == [names.queue("b")]

    @needs(Capability.QUERY, Capability.DELAY)
    async def test_items_filter_by_state(self, app: AppFactory, names: Names) -> None:
        wrkr = await subscribed(app, names)
        await wrkr.publish([{"name": names.event("x"), "tid": "later", "when": "1 hour"},
                            {"name": names.event("x"), "tid": "now"}])
        scheduled = await wrkr.items(name=names.event("x"), state=State.SCHEDULED)
        ready = await wrkr.items(name=names.event("x"), state="ready")
        assert ([e.tid for e in scheduled], [e.tid for e in ready]) == (["later"], ["now"])

    @needs(Capability.QUERY, Capability.DELAY)
    async def test_items_come_oldest_due_first(self, app: AppFactory, names: Names) -> None:
        wrkr = await subscribed(app, names)
        for tid, when in (("c", "3 hours"), ("a", None), ("b", "1 hour")):
            await wrkr.publish({"name": names.event("x"), "tid": tid, "when": when})
        listed = await wrkr.items(name=names.event("x"))
        assert [event.tid for event in listed] == ["a", "b", "c"]

    @needs(Capability.QUERY)
    async def test_items_respect_the_limit(self, app: AppFactory, names: Names) -> None:
        wrkr = await subscribed(app, names)
        await wrkr.publish([{"name": names.event("x"), "tid": str(n)} for n in range(5)])
        listed = await wrkr.items(name=names.event("x"), limit=2)
        assert [event.tid for event in listed] == ["0", "1"]

    @needs(Capability.QUERY)
    @pytest.mark.parametrize("bad", [{"state": "bogus"}, {"limit": 0}, {"tid": 5},
                                     {"queue": "a b"}, {"name": "a..b"}],
                             ids=["state", "limit", "tid", "queue", "name"])
    async def test_items_with_a_bad_filter_is_rejected(
            self, app: AppFactory, bad: dict[str, Any]) -> None:
        wrkr = await app()
        with pytest.raises(InvalidEvent):
            await wrkr.items(**bad)

    @needs(Capability.QUERY)
    async def test_get_returns_the_item_with_its_decoded_payload(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await subscribed(app, names)
        [item_id] = await wrkr.publish({"name": names.event("x"), "tid": "42",
                                        "payload": {"plan": "pro", "seats": [1, 2]}})
        event = await wrkr.get(item_id)
        assert (event.id, event.queue, event.name, event.tid, event.payload) == (
            item_id, names.queue("a"), names.event("x"), "42", {"plan": "pro", "seats": [1, 2]})
        assert (event.state, event.attempts, event.errors, event.worker) == (
            State.READY, 0, (), None)
        assert event.created is not None
        assert due_of(event) >= event.created

    @needs(Capability.QUERY)
    async def test_get_tells_the_copies_of_one_event_apart(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await subscribed(app, names, "a", "b")
        ids = await wrkr.publish({"name": names.event("x")})
        queues = sorted([str((await wrkr.get(item_id)).queue) for item_id in ids])
        assert queues == [names.queue("a"), names.queue("b")]

    @needs(Capability.QUERY)
    async def test_get_of_an_unknown_id_raises_item_not_found(self, app: AppFactory) -> None:
        wrkr = await app()
        with pytest.raises(ItemNotFound):
            await wrkr.get("f" * 32)

    @needs(Capability.QUERY)
    async def test_counts_report_items_per_queue_and_state(
            self, backend: Backend, names: Names) -> None:
        name = names.event("x")
        for queue in (names.queue("a"), names.queue("b")):
            await backend.subscribe(queue, name)
        await backend.enqueue([message(name), message(name)])
        await claim_one(backend, names.queue("a"), worker="w")
        counts = await backend.counts()
        assert counts[names.queue("a")] == {State.READY: 1, State.PROCESSING: 1}
        assert counts[names.queue("b")] == {State.READY: 2}

    async def test_operations_needing_a_missing_capability_raise_not_supported(
            self, app: AppFactory, names: Names, capabilities: frozenset[Capability]) -> None:
        wrkr = await app()
        calls: dict[Capability, Callable[[], Awaitable[object]]] = {
            Capability.QUERY: lambda: wrkr.get("f" * 32),
            Capability.CANCEL: lambda: wrkr.cancel(name=names.event("x")),
            Capability.FAILED: lambda: wrkr.retry("f" * 32),
            Capability.ONCE_EVERY: lambda: wrkr.publish(  # due now: DELAY is not needed
                {"name": names.event("x"), "once_every": "1 hour", "when": utcnow()}),
            Capability.DELAY: lambda: wrkr.publish({"name": names.event("x"), "when": "1 hour"}),
        }
        for capability, call in calls.items():
            if capability not in capabilities:  # vacuous for a backend that has them all
                with pytest.raises(NotSupported, match=str(capability)):
                    await call()


class CancelSuite(SuiteBase):
    """`cancel()`: pending items go, others stay (CANCEL)."""

    @needs(Capability.CANCEL, Capability.QUERY)
    async def test_cancel_deletes_the_matching_pending_items_and_counts_them(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await subscribed(app, names, "a", "b")
        await wrkr.publish([{"name": names.event("x"), "tid": str(n)} for n in range(2)])
        assert await wrkr.cancel(name=names.event("x")) == 4
        assert await wrkr.items(name=names.event("x")) == []

    @needs(Capability.CANCEL, Capability.QUERY)
    async def test_cancel_by_tid_leaves_other_tids(self, app: AppFactory, names: Names) -> None:
        wrkr = await subscribed(app, names)
        await wrkr.publish([{"name": names.event("x"), "tid": tid} for tid in ("1", "2")])
        assert await wrkr.cancel(name=names.event("x"), tid="1") == 1
        assert [e.tid for e in await wrkr.items(name=names.event("x"))] == ["2"]

    @needs(Capability.CANCEL, Capability.QUERY)
    async def test_cancel_by_queue_leaves_other_queues(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await subscribed(app, names, "a", "b")
        await wrkr.publish({"name": names.event("x")})
        assert await wrkr.cancel(queue=names.queue("a")) == 1
        assert [e.queue for e in await wrkr.items(name=names.event("x"))] == [names.queue("b")]

    @needs(Capability.CANCEL, Capability.DELAY, Capability.QUERY)
    async def test_cancel_deletes_scheduled_items(self, app: AppFactory, names: Names) -> None:
        wrkr = await subscribed(app, names)
        await wrkr.publish({"name": names.event("x"), "when": "7 days"})
        assert await wrkr.cancel(name=names.event("x")) == 1
        assert await wrkr.items(name=names.event("x")) == []

    @needs(Capability.CANCEL, Capability.QUERY)
    async def test_cancel_leaves_items_being_processed(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        recorder = Recorder()
        await wrkr.subscribe(names.queue("a"), names.event("x"), recorder.hold)
        [item_id] = await wrkr.publish({"name": names.event("x")})
        await wrkr.listen()
        await recorder.next()
        assert await wrkr.cancel(name=names.event("x")) == 0
        assert await state_of(wrkr, item_id) == State.PROCESSING
        recorder.release()

    @needs(Capability.CANCEL)
    async def test_cancelled_item_is_never_delivered(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        recorder = Recorder()
        await wrkr.subscribe(names.queue("a"), names.event("x"), recorder.handle)
        await wrkr.publish({"name": names.event("x"), "tid": "cancelled"})
        await wrkr.cancel(name=names.event("x"), tid="cancelled")
        await wrkr.publish({"name": names.event("x"), "tid": "kept"})
        await wrkr.listen()
        assert (await recorder.next()).tid == "kept"

    @needs(Capability.CANCEL)
    async def test_cancel_without_a_filter_is_rejected(self, app: AppFactory) -> None:
        wrkr = await app()
        with pytest.raises(InvalidEvent):
            await wrkr.cancel()

    @needs(Capability.CANCEL)
    async def test_cancel_of_nothing_returns_zero(self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        assert await wrkr.cancel(name=names.event("nothing")) == 0

    @needs(Capability.CANCEL, Capability.QUERY)
    async def test_backend_cancel_takes_an_item_filter(
            self, backend: Backend, names: Names) -> None:
        queue, name = names.queue("a"), names.event("x")
        await backend.subscribe(queue, name)
        await backend.enqueue([message(name, tid="1"), message(name, tid="2")])
        assert await backend.cancel(ItemFilter(queue=queue, tid="2")) == 1
        assert [item.tid for item in await backend.items(ItemFilter(queue=queue))] == ["1"]


class ArchiveSuite(SuiteBase):
    """archive="keep": acked items stay `done`, with who finished them and when."""

    @needs(Capability.ARCHIVE, Capability.QUERY)
    async def test_backend_ack_with_keep_marks_the_item_done(
            self, backend: Backend, names: Names) -> None:
        queue, name = names.queue("a"), names.event("x")
        await backend.subscribe(queue, name)
        await backend.enqueue([message(name)])
        delivery = await claim_one(backend, queue, worker="w-9")
        await backend.ack(delivery, keep=True)
        item = await backend.get(delivery.item.id)
        assert (item.state, item.worker) == (State.DONE, "w-9")
        assert item.finished is not None

    @needs(Capability.QUERY)
    async def test_backend_ack_deletes_the_item(self, backend: Backend, names: Names) -> None:
        queue, name = names.queue("a"), names.event("x")
        await backend.subscribe(queue, name)
        await backend.enqueue([message(name)])
        delivery = await claim_one(backend, queue, worker="w")
        await backend.ack(delivery)
        with pytest.raises(ItemNotFound):
            await backend.get(delivery.item.id)

    async def _handled(self, app: AppFactory, names: Names,
                       retention: str | None = None) -> tuple[Wrkr, str]:
        wrkr = await app(archive="keep", name="archivist", retention=retention)
        recorder = Recorder()
        await wrkr.subscribe(names.queue("a"), names.event("x"), recorder.handle)
        [item_id] = await wrkr.publish({"name": names.event("x")})
        await wrkr.listen()
        await recorder.next()
        return wrkr, item_id

    @needs(Capability.ARCHIVE, Capability.QUERY)
    async def test_archive_keep_keeps_done_items_with_worker_and_finished(
            self, app: AppFactory, names: Names) -> None:
        wrkr, item_id = await self._handled(app, names)

        async def done() -> bool:
            return await state_of(wrkr, item_id) == State.DONE

        await eventually(done, "the acked item is kept as done")
        item = await wrkr.get(item_id)
        assert item.worker == wrkr.worker_id
        assert item.finished is not None
        assert item.created is not None
        assert item.finished >= item.created

    @needs(Capability.ARCHIVE, Capability.QUERY)
    async def test_archive_keep_purges_done_items_after_the_retention(
            self, app: AppFactory, names: Names) -> None:
        wrkr, item_id = await self._handled(app, names, retention="0.5 seconds")
        await eventually(lambda: is_gone(wrkr, item_id), "the done item is purged")

    @needs(Capability.ARCHIVE, Capability.QUERY)
    async def test_done_items_are_listed_by_state(self, app: AppFactory, names: Names) -> None:
        wrkr, item_id = await self._handled(app, names)

        async def listed() -> bool:
            done = await wrkr.items(queue=names.queue("a"), state=State.DONE)
            return [event.id for event in done] == [item_id]

        await eventually(listed, "the done item is listed")

    @needs(Capability.QUERY)
    async def test_archive_delete_removes_acked_items(self, app: AppFactory,
                                                      names: Names) -> None:
        wrkr = await app(archive="delete")
        recorder = Recorder()
        await wrkr.subscribe(names.queue("a"), names.event("x"), recorder.handle)
        [item_id] = await wrkr.publish({"name": names.event("x")})
        await wrkr.listen()
        await recorder.next()
        await eventually(lambda: is_gone(wrkr, item_id), "the acked item is deleted")

