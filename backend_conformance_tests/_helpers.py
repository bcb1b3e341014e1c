"""What every suite shares: the fixtures, capability skips, unique names and bounded waits.

Every wait in the suite is bounded by `WAIT` seconds and ends as soon as the awaited
thing happens (a handler signalling an `asyncio.Queue`, a state showing up), so a
passing test costs only as long as the backend takes. A bare `asyncio.sleep` appears
only where a test proves that something does *not* happen (too early, or twice).
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

import pytest
import pytest_asyncio

from wrkr import Event, ItemNotFound, Retry, Wrkr
from wrkr.backend import Backend, Capability, Delivery, Message, State

__all__ = [
    "WAIT",
    "AppFactory",
    "BackendFactory",
    "Names",
    "Recorder",
    "SuiteBase",
    "claim_one",
    "due_of",
    "eventually",
    "fast_retry",
    "is_gone",
    "message",
    "needs",
    "opened",
    "state_of",
    "utcnow",
    "without",
]

WAIT = 10.0
"""Longest any single wait may take before the test fails (seconds)."""

_NEEDS = "__wrkr_needs__"
_WITHOUT = "__wrkr_without__"
F = TypeVar("F", bound=Callable[..., Any])
BackendFactory = Callable[[], Backend]


def needs(*capabilities: Capability) -> Callable[[F], F]:
    """Mark a test as needing `capabilities`; it is skipped, naming them, when one lacks.

    Usage: ``@needs(Capability.CANCEL)`` above a suite test method.
    """

    def mark(test: F) -> F:
        setattr(test, _NEEDS, (*getattr(test, _NEEDS, ()), *capabilities))
        return test

    return mark


def without(*capabilities: Capability) -> Callable[[F], F]:
    """Mark a test of what a backend lacking `capabilities` promises instead (the
    counterpart of a `needs` test); it is skipped, naming them, on a backend that has one.

    Usage: ``@without(Capability.TIMED_LEASES)`` above a test of channel leases.
    """

    def mark(test: F) -> F:
        setattr(test, _WITHOUT, (*getattr(test, _WITHOUT, ()), *capabilities))
        return test

    return mark


STOP_BOUND = 30.0
"""Seconds an app's stop may take at a test's end before the test fails saying where."""


def waiting_tasks() -> str:
    """Describe where every task of the running loop is suspended, innermost await first."""
    lines = []
    for task in asyncio.all_tasks():
        frames: list[Any] = []
        awaited: Any = task.get_coro()
        while awaited is not None:  # the chain of coroutines each awaits the next
            frame = getattr(awaited, "cr_frame", None) or getattr(awaited, "ag_frame", None)
            if frame is None:
                break
            frames.append(frame)
            awaited = getattr(awaited, "cr_await", None) or getattr(awaited, "ag_await", None)
        where = " <- ".join(f"{frame.f_code.co_name} ({frame.f_code.co_filename.rsplit('/', 2)[-1]}"
                            f":{frame.f_lineno})" for frame in reversed(frames[-4:]))
        lines.append(f"  {task.get_name()}: {where or 'not started'}")
    return "\n".join(sorted(lines))


def utcnow() -> datetime:
    """Return the wall-clock time, aware UTC."""
    return datetime.now(UTC)


def due_of(event: Event) -> datetime:
    """Return a delivered or inspected event's due time (its `when`, then a datetime)."""
    assert isinstance(event.when, datetime), f"`when` of {event} should be a datetime"
    assert event.when.utcoffset() == timedelta(0), f"`when` of {event} should be aware UTC"
    return event.when


def fast_retry(attempts: int = 3, backoff: str = "0.1 seconds") -> Retry:
    """Return a retry policy with a short fixed backoff, so retry tests stay fast."""
    return Retry(attempts=attempts, backoff=(backoff,))


def message(name: str, *, tid: str | None = None, payload: bytes = b"{}",
            due: datetime | None = None, dedupe: bool = False) -> Message:
    """Build a `Message` for a backend-level test, due now unless told otherwise."""
    now = utcnow()
    return Message(name, tid, payload, due or now, now, dedupe=dedupe)


class Names:
    """Names unique to one test, so tests sharing a server never see each other's items."""

    def __init__(self) -> None:
        self.prefix = f"wct{secrets.token_hex(5)}"

    def event(self, suffix: str) -> str:
        """Return an event name (or pattern) under this test's prefix."""
        return f"{self.prefix}.{suffix}"

    def queue(self, suffix: str) -> str:
        """Return a queue name under this test's prefix."""
        return f"{self.prefix}.q.{suffix}"


class Recorder:
    """A handler that records what it receives and lets the test await it, bounded.

    Use `recorder.handle` as a handler, or call `recorder.record(event)` from a
    handler of your own (also from a sync handler running in a thread).
    """

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._arrivals: asyncio.Queue[Event] = asyncio.Queue()
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._released = asyncio.Event()

    def record(self, event: Event) -> None:
        """Note that `event` was received."""
        if threading.get_ident() == self._thread:
            self._arrive(event)
        else:
            self._loop.call_soon_threadsafe(self._arrive, event)

    def _arrive(self, event: Event) -> None:
        self.events.append(event)
        self._arrivals.put_nowait(event)

    async def handle(self, event: Event) -> None:
        """Record the event and return (which acks it)."""
        self.record(event)

    async def hold(self, event: Event) -> None:
        """Record the event, then keep its item in flight until `release()`."""
        self.record(event)
        await self._released.wait()

    def release(self) -> None:
        """Let every handler waiting in `hold` return."""
        self._released.set()

    async def next(self, what: str = "a delivery") -> Event:
        """Return the next event received, failing after `WAIT` seconds."""
        try:
            async with asyncio.timeout(WAIT):
                return await self._arrivals.get()
        except TimeoutError:
            raise AssertionError(f"timed out after {WAIT}s waiting for {what}") from None

    async def take(self, count: int, what: str = "deliveries") -> list[Event]:
        """Return the next `count` events received, failing after `WAIT` seconds each."""
        return [await self.next(f"{what} ({index + 1} of {count})") for index in range(count)]

    async def nothing_more(self, seconds: float) -> None:
        """Assert that nothing else arrives within `seconds` (a deliberate sleep)."""
        await asyncio.sleep(seconds)
        assert self._arrivals.empty(), f"unexpected delivery: {self._arrivals.get_nowait()}"


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    """Poll `check` until it holds, failing after `WAIT` seconds with `what` in the message."""
    try:
        async with asyncio.timeout(WAIT):
            # Polling, because backend state changes raise no signal the suite could await.
            while not await check():  # noqa: ASYNC110
                await asyncio.sleep(0.02)
    except TimeoutError:
        raise AssertionError(f"timed out after {WAIT}s waiting until {what}") from None


async def claim_one(backend: Backend, queue: str, *, worker: str,
                    lease: timedelta = timedelta(seconds=60)) -> Delivery[Any]:
    """Claim one item of `queue` straight from the backend, bounded; close the iterator."""
    stream = backend.deliveries(queue, worker=worker, lease=lease, prefetch=1)
    try:
        async with asyncio.timeout(WAIT):
            return await anext(stream)
    except TimeoutError:
        raise AssertionError(f"timed out after {WAIT}s claiming from {queue}") from None
    finally:
        await stream.aclose()


class AppFactory(Protocol):
    """Builds a `Wrkr` on a new backend from `backend_factory` (or the one given)."""

    async def __call__(self, *, start: bool = True, backend: Backend | None = None,
                       **options: Any) -> Wrkr: ...


@pytest.mark.asyncio  # inherited: runs the tests without asyncio_mode = "auto" too
class SuiteBase:
    """Fixtures and knobs shared by every suite; a backend's test class inherits them.

    Attributes:
        delay_tolerance: how late (seconds) a delayed item may arrive and still be on time.
    """

    delay_tolerance: float = 0.5

    async def simulate_crash(self, backend: Backend) -> None:
        """Make `backend`'s claimed items come back as if its process had died.

        The default calls the backend's own `drop_connections()` (public contract), so
        the suite run by URL needs no hook; a test module may do more here.
        """
        await backend.drop_connections()

    @pytest.fixture
    def backend_factory(self) -> BackendFactory:
        """Provide, in your subclass, a factory of new unopened backends on shared storage."""
        pytest.fail(f"{type(self).__name__} must define the `backend_factory` fixture "
                    "(see backend_conformance_tests' docstring)", pytrace=False)

    @pytest.fixture
    def names(self) -> Names:
        """Provide queue and event names unique to this test."""
        return Names()

    @pytest.fixture(autouse=True)
    def _skip_without_capabilities(self, request: pytest.FixtureRequest,
                                   backend_factory: BackendFactory) -> None:
        wanted: tuple[Capability, ...] = getattr(request.function, _NEEDS, ())
        unwanted: tuple[Capability, ...] = getattr(request.function, _WITHOUT, ())
        if not wanted and not unwanted:
            return
        have = backend_factory().capabilities
        missing = [str(capability) for capability in wanted if capability not in have]
        if missing:
            pytest.skip(f"the backend lacks the capability {', '.join(missing)}")
        present = [str(capability) for capability in unwanted if capability in have]
        if present:
            pytest.skip(f"the backend has the capability {', '.join(present)}: this test is "
                        "of what a backend without it promises instead")

    @pytest.fixture
    def capabilities(self, backend_factory: BackendFactory) -> frozenset[Capability]:
        """Provide the capabilities the backend under test declares."""
        return backend_factory().capabilities

    @pytest_asyncio.fixture
    async def app(self, backend_factory: BackendFactory) -> AsyncIterator[AppFactory]:
        """Provide a factory of apps (started by default), each stopped at teardown."""
        apps: list[Wrkr] = []

        async def make(*, start: bool = True, backend: Backend | None = None,
                       **options: Any) -> Wrkr:
            made = Wrkr(backend if backend is not None else backend_factory(), **options)
            apps.append(made)
            if start:
                await made.start()
            return made

        yield make
        for made in reversed(apps):
            with contextlib.suppress(Exception):  # a test that broke its app failed already
                try:
                    async with asyncio.timeout(STOP_BOUND):
                        await made.stop(timeout=1.0)
                except TimeoutError:  # pytest's Failed is no Exception: it is not suppressed
                    pytest.fail(f"app.stop(timeout=1.0) had not returned after "
                                f"{STOP_BOUND:g}s; where each task waited:\n{waiting_tasks()}")

    @pytest_asyncio.fixture
    async def backend(self, backend_factory: BackendFactory) -> AsyncIterator[Backend]:
        """Provide an open backend for tests of the contract itself, closed at teardown."""
        opened = backend_factory()
        await opened.open()
        yield opened
        await opened.close()


@contextlib.asynccontextmanager
async def opened(backend_factory: BackendFactory) -> AsyncIterator[Backend]:
    """Open a second backend on the same storage (another "process"), closed on exit."""
    other = backend_factory()
    await other.open()
    try:
        yield other
    finally:
        await other.close()


async def is_gone(wrkr: Wrkr, item_id: str) -> bool:
    """Tell whether `get(item_id)` raises `ItemNotFound` (the item was deleted)."""
    try:
        await wrkr.get(item_id)
    except ItemNotFound:
        return True
    return False


async def state_of(wrkr: Wrkr, item_id: str) -> State | None:
    """Return the state of item `item_id`, or None once it is deleted."""
    try:
        return (await wrkr.get(item_id)).state
    except ItemNotFound:
        return None
