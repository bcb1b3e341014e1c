"""Tracing: a handler's span is a child of the span that published its item, on every backend.

Each test has its own SDK `TracerProvider` (given to `Wrkr(tracing=...)`), exporting to
the SDK's in-memory exporter; a second span processor wakes the test when a span ends.
"""

from __future__ import annotations

import asyncio
import functools
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from opentelemetry.sdk.trace import ReadableSpan, SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from pymongo_async_mock import AsyncMongoMockClient

from backend_conformance_tests import Names, Recorder
from backend_conformance_tests._helpers import WAIT
from tests.backends._mongo_servers import new_database_name
from tests.conftest import MQTT_URL, PG_URL, RABBITMQ_URL, new_schema
from wrkr import Event, Fail, InvalidConfig, Wrkr
from wrkr.backend import Backend
from wrkr_memory import MemoryBackend, MemoryStore

ROOT = Path(__file__).resolve().parents[2]


class Ended(SpanProcessor):
    """Wakes the test's loop whenever a span ends (after the exporter has it)."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._changed = asyncio.Event()

    def on_end(self, span: ReadableSpan) -> None:
        """Tell the waiting test, from whichever thread ended the span."""
        if threading.get_ident() == threading.main_thread().ident:
            self._changed.set()
        else:
            self._loop.call_soon_threadsafe(self._changed.set)

    async def wait(self) -> None:
        """Return once another span has ended."""
        await self._changed.wait()
        self._changed.clear()


class Spans:
    """The spans an app's provider exported, and a bounded wait for more."""

    def __init__(self) -> None:
        self.exporter = InMemorySpanExporter()
        self.provider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))
        self.ended = Ended(asyncio.get_running_loop())
        self.provider.add_span_processor(self.ended)

    def named(self, name: str) -> list[ReadableSpan]:
        """Return the finished spans called `name`."""
        return [span for span in self.exporter.get_finished_spans() if span.name == name]

    async def one(self, name: str) -> ReadableSpan:
        """Wait (bounded) until a span called `name` has ended; return it."""
        async with asyncio.timeout(WAIT):
            while not self.named(name):
                await self.ended.wait()
        [span] = self.named(name)
        return span


BACKENDS = ["memory", "sqlite", "mongodb-mock",
            pytest.param("postgres", marks=pytest.mark.postgres),
            pytest.param("rabbitmq", marks=pytest.mark.rabbitmq),
            pytest.param("mqtt", marks=pytest.mark.mqtt)]


@pytest.fixture(params=BACKENDS)
def backend_factory(request: pytest.FixtureRequest, tmp_path: Path,
                    ) -> Iterator[Callable[[], Backend]]:
    """Yield a factory of backends on one test's storage, for each kind of backend."""
    kind = request.param
    if kind == "memory":
        store = MemoryStore()
        yield lambda: MemoryBackend(store)
    elif kind == "sqlite":
        from wrkr_sqlite import SQLiteBackend

        yield lambda: SQLiteBackend(f"sqlite:///{tmp_path / 'wrkr.db'}")
    elif kind == "mongodb-mock":
        from wrkr_mongodb import MongoDBBackend

        client, database = AsyncMongoMockClient(tz_aware=True), new_database_name()
        yield lambda: MongoDBBackend(client=client, database=database)
    elif kind == "postgres":
        from wrkr_postgres import PostgresBackend

        for schema in new_schema(request):
            yield functools.partial(PostgresBackend, PG_URL, schema=schema,
                                    poll_interval=1.0)
    else:
        yield from _broker(request, kind)


def _broker(request: pytest.FixtureRequest, kind: str) -> Iterator[Callable[[], Backend]]:
    prefix = request.getfixturevalue(f"{kind}_prefix")
    if kind == "mqtt":
        from wrkr_mqtt import MQTTBackend

        yield lambda: MQTTBackend(MQTT_URL, prefix=prefix)
        return
    from wrkr_rabbitmq import RabbitMQBackend

    yield lambda: RabbitMQBackend(RABBITMQ_URL, prefix=prefix)


@pytest_asyncio.fixture
async def spans() -> AsyncIterator[Spans]:
    """Provide a fresh provider and exporter; shut the provider down afterwards."""
    found = Spans()
    yield found
    found.provider.shutdown()


async def test_a_handler_span_is_a_child_of_the_span_that_published_its_item(
        backend_factory: Callable[[], Backend], spans: Spans, names: Names) -> None:
    handled = Recorder()
    work = spans.provider.get_tracer("user code")

    async def handle(event: Event) -> None:
        with work.start_as_current_span("send email"):
            handled.record(event)

    queue, name = names.queue("mail"), names.event("signed_up")
    async with Wrkr(backend_factory(), tracing=spans.provider) as app:
        await app.subscribe(queue, name, handle)
        with work.start_as_current_span("POST /users") as request:
            [item_id] = await app.publish({"name": name, "tid": "42"})
        await app.listen()
        await handled.next()
        email = await spans.one("send email")
    publish, process = spans.named(f"publish {name}")[0], spans.named(f"process {queue}")[0]
    assert (publish.kind, process.kind) == (SpanKind.PRODUCER, SpanKind.CONSUMER)
    assert publish.parent is not None
    assert process.parent is not None
    assert email.parent is not None
    assert publish.parent.span_id == request.get_span_context().span_id
    assert process.parent.span_id == publish.context.span_id
    assert email.parent.span_id == process.context.span_id
    trace_ids = {s.context.trace_id for s in (publish, process, email)}
    assert trace_ids == {request.get_span_context().trace_id}
    assert process.attributes is not None
    assert (process.attributes["messaging.message.id"],
            process.attributes["messaging.destination.name"]) == (item_id, queue)


async def test_what_a_handler_publishes_continues_the_trace(
        backend_factory: Callable[[], Backend], spans: Spans, names: Names) -> None:
    leaf = Recorder()
    first, second = names.queue("first"), names.queue("second")
    async with Wrkr(backend_factory(), tracing=spans.provider) as app:
        async def publish_next(event: Event) -> None:
            await app.publish({"name": names.event("b")})

        await app.subscribe(first, names.event("a"), publish_next)
        await app.subscribe(second, names.event("b"), leaf.handle)
        await app.publish({"name": names.event("a")})
        await app.listen()
        await leaf.next()
        last = await spans.one(f"process {second}")
    [outer] = spans.named(f"publish {names.event('a')}")
    [handling] = spans.named(f"process {first}")
    [inner] = spans.named(f"publish {names.event('b')}")
    chain = [outer, handling, inner, last]
    assert [s.parent.span_id if s.parent else None for s in chain] == [
        None, outer.context.span_id, handling.context.span_id, inner.context.span_id]
    assert len({s.context.trace_id for s in chain}) == 1


async def test_a_handler_of_an_untraced_item_starts_a_trace_of_its_own(
        spans: Spans, names: Names) -> None:
    store, handled = MemoryStore(), Recorder()
    queue, name = names.queue("q"), names.event("x")
    async with Wrkr(MemoryBackend(store), tracing=False) as publisher, \
            Wrkr(MemoryBackend(store), tracing=spans.provider) as worker:
        await worker.subscribe(queue, name, handled.handle)
        with spans.provider.get_tracer("t").start_as_current_span("unrelated"):
            await publisher.publish({"name": name})
            await worker.listen()
            process = await spans.one(f"process {queue}")
    assert process.parent is None
    assert process.attributes is not None
    assert (await handled.next()).id == process.attributes["messaging.message.id"]


async def test_a_failing_handler_span_records_the_error(spans: Spans, names: Names) -> None:
    async def refuse(event: Event) -> None:
        raise Fail("no such user")

    queue = names.queue("q")
    async with Wrkr(MemoryBackend(), tracing=spans.provider) as app:
        await app.subscribe(queue, names.event("x"), refuse)
        await app.publish({"name": names.event("x")})
        await app.listen()
        process = await spans.one(f"process {queue}")
    assert process.status.status_code is StatusCode.ERROR
    assert [event.name for event in process.events] == ["exception"]


async def test_a_sync_handler_runs_inside_its_span(spans: Spans, names: Names) -> None:
    tracer = spans.provider.get_tracer("user code")

    def handle(event: Event) -> None:  # in a worker thread
        with tracer.start_as_current_span("in a thread"):
            pass

    queue = names.queue("q")
    async with Wrkr(MemoryBackend(), tracing=spans.provider) as app:
        await app.subscribe(queue, names.event("x"), handle)
        await app.publish({"name": names.event("x")})
        await app.listen()
        inner = await spans.one("in a thread")
        process = await spans.one(f"process {queue}")
    assert inner.parent is not None
    assert inner.parent.span_id == process.context.span_id


def test_tracing_refuses_what_is_not_a_provider() -> None:
    with pytest.raises(InvalidConfig, match="TracerProvider"):
        Wrkr(MemoryBackend(), tracing="yes")


def _run(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                            text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_without_opentelemetry_nothing_is_imported_and_handlers_run() -> None:
    out = _run("""
import asyncio, sys
sys.modules["opentelemetry"] = None  # as if it were not installed
from wrkr import InvalidConfig, Wrkr

async def main():
    seen = []
    async with Wrkr() as app:
        await app.subscribe("q", "x", lambda event: seen.append(event.id))
        [item_id] = await app.publish({"name": "x"})
        await app.listen()
        while not seen:
            await asyncio.sleep(0.01)
    loaded = [m for m, mod in sys.modules.items() if m.startswith("opentelemetry") and mod]
    print(seen == [item_id], loaded)
    try:
        Wrkr(tracing=True)
    except InvalidConfig as exc:
        print(exc)

asyncio.run(main())
""")
    assert out.splitlines() == ["True []",
                                'tracing=True needs OpenTelemetry: pip install "wrkr[otel]"']


def test_importing_wrkr_imports_no_opentelemetry() -> None:
    out = _run("import sys, wrkr, wrkr_memory; "
               "print([m for m in sys.modules if m.startswith('opentelemetry')])")
    assert out == "[]"


def test_by_default_an_app_traces_through_the_global_provider_once_one_is_set() -> None:
    out = _run("""
import asyncio
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
import wrkr._tracing
from wrkr import Wrkr

wrkr._tracing.RECHECK = 0.0  # look at the global provider every time (else once a second)
exporter = InMemorySpanExporter()

async def main():
    handled = asyncio.Queue()

    async def handle(event):
        handled.put_nowait(event.tid)

    async with Wrkr() as app:
        await app.subscribe("q", "x", handle)
        await app.listen()
        await app.publish({"name": "x", "tid": "before"})  # no SDK yet: no span
        print(await asyncio.wait_for(handled.get(), 10))
        provider = TracerProvider()
        provider.add_span_processor(SimpleSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        await app.publish({"name": "x", "tid": "after"})
        print(await asyncio.wait_for(handled.get(), 10))
    print(sorted(span.name for span in exporter.get_finished_spans()))

asyncio.run(main())
""")
    assert out.splitlines() == ["before", "after", "['process q', 'publish x']"]
