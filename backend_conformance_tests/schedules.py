"""Recurring schedules: stored durably, updated in place, each firing published exactly once.

The store-level tests build `ScheduleRecord`s and `Firing`s with any times they like
(a store compares times, it never reads its clock for schedules); the app-level ones
run real apps on the backend's own clock, with one-second intervals.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
from datetime import datetime, timedelta

import pytest

from wrkr.backend import Backend, Capability, Firing, ItemFilter, Message, ScheduleRecord

from ._helpers import (
    AppFactory,
    BackendFactory,
    Names,
    Recorder,
    SuiteBase,
    eventually,
    needs,
    opened,
    utcnow,
)

__all__ = ["ScheduleSuite"]

SECOND = timedelta(seconds=1)
HOUR = timedelta(hours=1)


def record(name: str, *, next: datetime, every: timedelta = HOUR, payload: bytes = b"{}",
           catch_up: str = "latest", tid: str | None = None) -> ScheduleRecord:
    """Return an `every` schedule record due at `next` (whole milliseconds, as stored)."""
    at = next.replace(microsecond=next.microsecond - next.microsecond % 1000)
    return ScheduleRecord(name, None, every, "UTC", tid, payload, catch_up, at)  # type: ignore[arg-type]


def firing(stored: ScheduleRecord, *, publish: bool = True) -> Firing:
    """Return the firing of `stored` at its `next`, moving it on by its interval."""
    assert stored.every is not None
    messages = (Message(stored.name, stored.tid, b"{}", stored.next, utcnow()),) if publish else ()
    return Firing(stored.name, stored.next, stored.next + stored.every,
                  stored.next if publish else None, messages)


async def listed(backend: Backend, name: str) -> ScheduleRecord | None:
    """Return the stored schedule called `name`, or None."""
    return next((found for found in await backend.schedules() if found.name == name), None)


class ScheduleSuite(SuiteBase):
    """`Store` schedule primitives and `app.schedule`, by the SCHEDULES capability."""

    # -- stored and updated ----------------------------------------------------------

    @needs(Capability.SCHEDULES)
    async def test_saved_schedule_is_listed_by_another_process(
            self, backend: Backend, backend_factory: BackendFactory, names: Names) -> None:
        saved = record(names.event("tick"), next=utcnow() + HOUR, tid="7", payload=b'{"a":1}')
        assert await backend.save_schedule(saved) is True
        async with opened(backend_factory) as other:
            assert await listed(other, saved.name) == saved

    @needs(Capability.SCHEDULES)
    async def test_saving_the_same_schedule_again_changes_nothing(
            self, backend: Backend, names: Names) -> None:
        saved = record(names.event("tick"), next=utcnow() + HOUR)
        await backend.save_schedule(saved)
        again = dataclasses.replace(saved, next=saved.next + HOUR)  # a later restart's
        assert await backend.save_schedule(again) is False
        assert await listed(backend, saved.name) == saved

    @needs(Capability.SCHEDULES)
    async def test_updating_the_payload_keeps_the_next_firing_time(
            self, backend: Backend, names: Names) -> None:
        saved = record(names.event("tick"), next=utcnow() + HOUR)
        await backend.save_schedule(saved)
        changed = dataclasses.replace(saved, payload=b'{"v":2}', next=saved.next + HOUR)
        assert await backend.save_schedule(changed) is True
        assert await listed(backend, saved.name) == dataclasses.replace(changed,
                                                                      next=saved.next)

    @needs(Capability.SCHEDULES)
    async def test_updating_the_timing_replaces_the_next_firing_and_keeps_the_last(
            self, backend: Backend, names: Names) -> None:
        saved = record(names.event("tick"), next=utcnow() - SECOND)
        await backend.save_schedule(saved)
        assert await backend.fire_schedule(firing(saved)) is not None
        changed = record(saved.name, next=utcnow() + 2 * HOUR, every=2 * HOUR)
        assert await backend.save_schedule(changed) is True
        assert await listed(backend, saved.name) == dataclasses.replace(changed,
                                                                      last=saved.next)

    @needs(Capability.SCHEDULES)
    async def test_removed_schedule_is_gone_and_removing_it_again_says_so(
            self, backend: Backend, names: Names) -> None:
        saved = record(names.event("tick"), next=utcnow() + HOUR)
        await backend.save_schedule(saved)
        assert await backend.remove_schedule(saved.name) is True
        assert await listed(backend, saved.name) is None
        assert await backend.remove_schedule(saved.name) is False

    # -- firing ----------------------------------------------------------------------

    @needs(Capability.SCHEDULES)
    async def test_firing_publishes_its_event_and_moves_the_schedule_on(
            self, backend: Backend, names: Names) -> None:
        queue, saved = names.queue("a"), record(names.event("tick"), next=utcnow() - SECOND)
        await backend.subscribe(queue, saved.name)
        await backend.save_schedule(saved)
        ids = await backend.fire_schedule(firing(saved))
        assert ids is not None
        assert len(ids) == 1
        assert await listed(backend, saved.name) == dataclasses.replace(
            saved, next=saved.next + HOUR, last=saved.next)
        if Capability.QUERY in backend.capabilities:
            [item] = await backend.items(_in(queue))
            assert (item.id, item.name, item.due) == (ids[0], saved.name, saved.next)

    @needs(Capability.SCHEDULES)
    async def test_a_firing_already_carried_out_publishes_nothing(
            self, backend: Backend, names: Names) -> None:
        queue, saved = names.queue("a"), record(names.event("tick"), next=utcnow() - SECOND)
        await backend.subscribe(queue, saved.name)
        await backend.save_schedule(saved)
        assert await backend.fire_schedule(firing(saved)) is not None
        assert await backend.fire_schedule(firing(saved)) is None
        assert (await listed(backend, saved.name)) == dataclasses.replace(
            saved, next=saved.next + HOUR, last=saved.next)
        if Capability.QUERY in backend.capabilities:
            assert len(await backend.items(_in(queue))) == 1

    @needs(Capability.SCHEDULES)
    async def test_one_firing_tried_by_several_processes_at_once_publishes_exactly_once(
            self, backend: Backend, backend_factory: BackendFactory, names: Names) -> None:
        queue, saved = names.queue("a"), record(names.event("tick"), next=utcnow() - SECOND)
        await backend.subscribe(queue, saved.name)
        await backend.save_schedule(saved)
        others = [backend_factory() for _ in range(4)]
        for other in others:
            await other.open()
        try:
            results = await asyncio.gather(*(other.fire_schedule(firing(saved))
                                             for other in [backend, *others]))
        finally:
            for other in others:
                await other.close()
        assert [len(ids) for ids in results if ids is not None] == [1]
        if Capability.QUERY in backend.capabilities:
            assert len(await backend.items(_in(queue))) == 1

    @needs(Capability.SCHEDULES)
    async def test_a_skipped_firing_moves_on_without_publishing_or_a_last(
            self, backend: Backend, names: Names) -> None:
        queue, saved = names.queue("a"), record(names.event("tick"), next=utcnow() - SECOND)
        await backend.subscribe(queue, saved.name)
        await backend.save_schedule(saved)
        assert await backend.fire_schedule(firing(saved, publish=False)) == []
        assert await listed(backend, saved.name) == dataclasses.replace(
            saved, next=saved.next + HOUR)
        if Capability.QUERY in backend.capabilities:
            assert await backend.items(_in(queue)) == []

    @needs(Capability.SCHEDULES)
    async def test_firing_a_removed_schedule_publishes_nothing(
            self, backend: Backend, names: Names) -> None:
        queue, saved = names.queue("a"), record(names.event("tick"), next=utcnow() - SECOND)
        await backend.subscribe(queue, saved.name)
        await backend.save_schedule(saved)
        await backend.remove_schedule(saved.name)
        assert await backend.fire_schedule(firing(saved)) is None
        assert await listed(backend, saved.name) is None

    # -- apps ------------------------------------------------------------------------

    @needs(Capability.SCHEDULES)
    async def test_several_apps_sharing_one_schedule_publish_each_firing_once(
            self, app: AppFactory, names: Names) -> None:
        recorder, name = Recorder(), names.event("tick")
        apps = [await app() for _ in range(3)]
        for wrkr in apps:  # every process runs the same module
            await wrkr.subscribe(names.queue("a"), name, recorder.handle, concurrency=2)
            await wrkr.schedule(name, every="1 second", tid="shared")
            await wrkr.listen()
        try:
            fired = await recorder.take(3, "three firings")
            await recorder.nothing_more(0.3)  # a duplicate would follow its original
        finally:
            await apps[0].unschedule(name)
        whens = [event.when for event in recorder.events]
        assert len(set(whens)) == len(whens), f"a firing was published twice: {whens}"
        assert [event.tid for event in fired] == ["shared"] * 3
        steps = {b - a for a, b in itertools.pairwise(whens)}  # type: ignore[operator]
        assert steps == {SECOND}

    @needs(Capability.SCHEDULES)
    async def test_schedule_called_again_by_a_restarted_app_keeps_its_next_firing(
            self, app: AppFactory, names: Names) -> None:
        name = names.event("tick")
        first = await app()
        await first.schedule(name, every="1 hour")
        [before] = [s for s in await first.schedules() if s.name == name]
        await first.stop()
        second = await app(start=False)
        await second.schedule(name, every="1 hour")
        await second.start()
        [after] = [s for s in await second.schedules() if s.name == name]
        assert after == before
        assert await second.unschedule(name) is True
        assert [s for s in await second.schedules() if s.name == name] == []

    @pytest.mark.parametrize(("catch_up", "published"), [("all", 4), ("latest", 1), ("none", 0)])
    @needs(Capability.SCHEDULES)
    async def test_firings_missed_while_no_app_ran_are_caught_up_as_told(
            self, app: AppFactory, backend: Backend, names: Names, catch_up: str,
            published: int) -> None:
        # Hourly, due 3.5 hours ago: firings at -3.5, -2.5, -1.5 and -0.5 hours were missed.
        missed = record(names.event("tick"), next=utcnow() - 3.5 * HOUR, catch_up=catch_up)
        await backend.save_schedule(missed)
        recorder = Recorder()
        wrkr = await app()
        await wrkr.subscribe(names.queue("a"), missed.name, recorder.handle)
        await wrkr.listen()
        upcoming = missed.next + 4 * HOUR

        async def caught_up() -> bool:
            found = await listed(backend, missed.name)
            return found is not None and found.next == upcoming

        try:
            await eventually(caught_up, "the schedule has moved past the missed firings")
            events = await recorder.take(published, "the caught-up firings")
            await recorder.nothing_more(0.3)
        finally:
            await backend.remove_schedule(missed.name)
        expected = [missed.next + k * HOUR for k in range(4)][4 - published:]
        assert [event.when for event in events] == expected


def _in(queue: str) -> ItemFilter:
    return ItemFilter(queue=queue)
