"""Core behaviour no backend changes: input validation, lifecycle errors, worker ids, hooks.

These ran in the conformance suite on every backend although the core decides them
before a backend is reached; here they run once, on the memory backend.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

import pytest

from backend_conformance_tests._helpers import (
    WAIT,
    AppFactory,
    BackendFactory,
    Names,
    Recorder,
    SuiteBase,
)
from backend_conformance_tests.publishing import assert_nothing_queued
from backend_conformance_tests.retries import always_raises
from wrkr import (
    AlreadyStarted,
    Event,
    InvalidEvent,
    InvalidWhen,
    NotStarted,
    Retry,
    Wrkr,
    WrkrError,
)
from wrkr.backend import Backend
from wrkr_memory import MemoryBackend, MemoryStore


class CoreChecks(SuiteBase):
    """What the core decides alone."""

    async def test_starting_twice_raises_already_started(self, app: AppFactory) -> None:
        wrkr = await app()
        with pytest.raises(AlreadyStarted):
            await wrkr.start()

    async def test_async_with_starts_and_stops_the_app(
            self, backend_factory: BackendFactory, names: Names) -> None:
        async with Wrkr(backend_factory()) as wrkr:
            await wrkr.subscriptions(names.event("x"))
        with pytest.raises(NotStarted):
            await wrkr.subscriptions(names.event("x"))

    async def test_stopping_twice_is_harmless(self, app: AppFactory) -> None:
        wrkr = await app()
        await wrkr.stop()
        await wrkr.stop()

    async def test_worker_id_is_the_name_and_a_uuid(self, app: AppFactory) -> None:
        named, anonymous = await app(name="crm"), await app()
        name, _, suffix = named.worker_id.partition(":")
        assert (name, str(uuid.UUID(suffix))) == ("crm", suffix)
        assert str(uuid.UUID(anonymous.worker_id)) == anonymous.worker_id
        assert named.worker_id != (await app(name="crm")).worker_id

    async def test_subscription_retry_overrides_the_app_retry(
            self, app: AppFactory, names: Names) -> None:
        recorder = Recorder()
        wrkr = await app(retry=Retry(attempts=3, backoff=("0.1 s",)))
        await wrkr.subscribe(names.queue("a"), names.event("x"), always_raises(recorder),
                             retry=Retry(attempts=2, backoff=("0.1 s",)))
        await wrkr.publish({"name": names.event("x")})
        await wrkr.listen()
        assert [event.attempts for event in await recorder.take(2)] == [1, 2]
        await recorder.nothing_more(0.3)  # proving the app's 3 attempts do not apply

    async def test_consumer_keeps_going_after_a_handler_error(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app(retry=Retry(attempts=1))
        recorder = Recorder()

        async def handler(event: Event) -> None:
            recorder.record(event)
            if event.tid == "bad":
                raise RuntimeError("only this one")

        await wrkr.subscribe(names.queue("a"), names.event("x"), handler)
        await wrkr.publish([{"name": names.event("x"), "tid": tid} for tid in ("bad", "good")])
        await wrkr.listen()
        assert [event.tid for event in await recorder.take(2)] == ["bad", "good"]

    async def test_on_error_is_called_with_the_exception_and_the_event(
            self, app: AppFactory, names: Names) -> None:
        reported: asyncio.Queue[tuple[BaseException, Event]] = asyncio.Queue()
        wrkr = await app(retry=Retry(attempts=1),
                         on_error=lambda error, event: reported.put_nowait((error, event)))
        recorder = Recorder()
        await wrkr.subscribe(names.queue("a"), names.event("x"), always_raises(recorder))
        [item_id] = await wrkr.publish({"name": names.event("x")})
        await wrkr.listen()
        async with asyncio.timeout(WAIT):
            error, event = await reported.get()
        assert (type(error), str(error), event.id) == (RuntimeError, "boom on attempt 1", item_id)

    async def test_publish_accepts_an_event_object(self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        recorder = Recorder()
        await wrkr.subscribe(names.queue("a"), names.event("x"), recorder.handle)
        await wrkr.publish(Event(names.event("x"), tid="7", payload={"k": 1}))
        await wrkr.listen()
        got = await recorder.next()
        assert (got.name, got.tid, got.payload) == (names.event("x"), "7", {"k": 1})

    async def test_batch_with_one_bad_event_publishes_nothing(
            self, app: AppFactory, names: Names, backend: Backend) -> None:
        wrkr = await app()
        queue, good = names.queue("a"), names.event("good")
        await wrkr.subscribe(queue, good, Recorder().handle)
        batch: list[dict[str, Any]] = [{"name": good, "tid": "1"}, {"name": "bad name"}]
        with pytest.raises(InvalidEvent):
            await wrkr.publish(batch)
        await assert_nothing_queued(wrkr, queue, good, backend)

    @pytest.mark.parametrize("name", ["", "a..b", "a b", ".a", "a.", "a.*", "a.#", "ä.b", 42])
    async def test_bad_event_name_is_rejected_naming_it(
            self, app: AppFactory, name: Any) -> None:
        wrkr = await app()
        with pytest.raises(InvalidEvent) as raised:
            await wrkr.publish({"name": name})
        assert repr(name) in str(raised.value) or str(name) in str(raised.value)

    @pytest.mark.parametrize("bad", [
        {"tid": 42}, {"payload": {"when": object()}}, {"payload": [1, 2]},
        {"payload": {"at": datetime(2030, 1, 1)}}, {"payload": "text"}, {"tid": "a\x00b"},
    ], ids=["int-tid", "object-in-payload", "list-payload", "datetime-in-payload", "str-payload",
            "nul-in-tid"])
    async def test_bad_tid_or_payload_is_rejected_with_nothing_published(
            self, app: AppFactory, names: Names, backend: Backend, bad: dict[str, Any]) -> None:
        wrkr = await app()
        queue, name = names.queue("a"), names.event("x")
        await wrkr.subscribe(queue, name, Recorder().handle)
        with pytest.raises(InvalidEvent):
            await wrkr.publish({"name": name, **bad})
        await assert_nothing_queued(wrkr, queue, name, backend)

    @pytest.mark.parametrize("bad", [
        {"when": datetime(2030, 1, 1, 12, 0)}, {"when": "next tuesday-ish"},
        {"when": "7 fortnights"}, {"when": [1]}, {"once_every": "often"},
        {"once_every": "3 bananas"},
    ], ids=["naive-datetime", "words", "unknown-unit", "list", "once-every-words",
            "once-every-unit"])
    async def test_bad_when_or_once_every_is_rejected_with_nothing_published(
            self, app: AppFactory, names: Names, backend: Backend, bad: dict[str, Any]) -> None:
        wrkr = await app()
        queue, name = names.queue("a"), names.event("x")
        await wrkr.subscribe(queue, name, Recorder().handle)
        with pytest.raises(InvalidWhen) as raised:
            await wrkr.publish({"name": name, **bad})
        value = next(iter(bad.values()))
        if isinstance(value, str):
            assert value in str(raised.value), "the error should quote the bad input"
        await assert_nothing_queued(wrkr, queue, name, backend)

    async def test_unknown_event_field_is_rejected(self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        with pytest.raises(InvalidEvent, match="colour"):
            await wrkr.publish({"name": names.event("x"), "colour": "red"})

    async def test_publish_before_start_raises_not_started_and_publishes_nothing(
            self, app: AppFactory, names: Names, backend: Backend,
            backend_factory: BackendFactory) -> None:
        idle = await app(start=False)
        with pytest.raises(NotStarted):
            await idle.publish({"name": names.event("x")})
        running = await app()
        queue = names.queue("a")
        await running.subscribe(queue, names.event("x"), Recorder().handle)
        await assert_nothing_queued(running, queue, names.event("x"), backend)

    async def test_publish_after_stop_raises_not_started(
            self, app: AppFactory, names: Names) -> None:
        wrkr = await app()
        await wrkr.stop()
        with pytest.raises(NotStarted):
            await wrkr.publish({"name": names.event("x")})

    async def test_errors_share_one_root(self, app: AppFactory) -> None:
        wrkr = await app()
        with pytest.raises(WrkrError):
            await wrkr.publish({"name": "no spaces allowed"})



class TestCoreOnMemory(CoreChecks):
    """The checks above, on a fresh memory store per test."""

    @pytest.fixture
    def backend_factory(self) -> BackendFactory:
        store = MemoryStore()
        return lambda: MemoryBackend(store=store)
