"""One queue's consumer: claim items, run the matching handler, settle the outcome.

The consumer owns every decision about an item's fate (ack, retry later, park as
failed, give back); the backend only carries it out. A handler's run is a task of
its own so that `stop()` can cancel a run without interrupting a settlement that is
already under way.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from wrkr._errors import BackendUnavailable, Fail, LeaseLost
from wrkr._event import Event, from_item
from wrkr._names import matches
from wrkr._retry import Retry
from wrkr.backend import Backend, Delivery, ErrorRecord

logger = logging.getLogger("wrkr")

LEASE_MARGIN = timedelta(seconds=30)
"""How much longer than the handler timeout a claim is held: a live worker never loses it."""

Handler = Callable[..., Any]
"""`handler(event)` or `handler(event, ack)`; a coroutine function or a plain one."""

ErrorHook = Callable[[BaseException, Event], Any]


@dataclass(frozen=True, slots=True)
class Route:
    """A subscription's handler and how to run it."""

    pattern: str
    handler: Handler
    concurrency: int
    timeout: timedelta
    retry: Retry | None
    takes_ack: bool  # the handler's signature asks for `ack` as second argument
    is_async: bool

    @classmethod
    def build(
        cls, pattern: str, handler: Handler, concurrency: int, timeout: timedelta,
        retry: Retry | None,
    ) -> Route:
        """Inspect the handler once, not on every delivery."""
        takes_ack = len(inspect.signature(handler).parameters) >= 2
        is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            getattr(handler, "__call__", None))  # noqa: B004 - async callable objects
        return cls(pattern, handler, concurrency, timeout, retry, takes_ack, is_async)


@dataclass(frozen=True, slots=True)
class Settings:
    """What every consumer of one app shares."""

    backend: Backend
    worker: str
    retry: Retry
    keep: bool
    retention: timedelta | None
    on_error: ErrorHook | None


class Ack:
    """The `ack` a handler may await early (at-most-once); acks at most once."""

    def __init__(self, settings: Settings, delivery: Delivery) -> None:
        self._settings = settings
        self._delivery = delivery
        self.done = False

    async def __call__(self) -> None:
        """Acknowledge the item now; later calls do nothing."""
        if self.done:
            return
        self.done = True
        settings = self._settings
        expires = None
        if settings.keep and settings.retention is not None:
            expires = settings.backend.now() + settings.retention
        await settings.backend.ack(self._delivery, keep=settings.keep, expires=expires)

    def blocking(self, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
        """Return an `ack()` a sync handler can call from its worker thread."""
        return lambda: asyncio.run_coroutine_threadsafe(self(), loop).result()


class QueueConsumer:
    """Consumes one queue for one app: at most `concurrency` handlers at a time."""

    def __init__(self, queue: str, settings: Settings) -> None:
        self.queue = queue
        self._settings = settings
        self._routes: list[Route] = []
        self._pull_task: asyncio.Task[None] | None = None
        self._jobs: set[asyncio.Task[None]] = set()
        self._runs: set[asyncio.Task[None]] = set()

    def add(self, route: Route) -> None:
        """Handle events matching `route.pattern` (the first matching route wins)."""
        self._routes.append(route)

    def start(self) -> None:
        """Begin claiming items in the background."""
        if self._pull_task is None:
            self._pull_task = asyncio.create_task(self._pull_forever(), name=f"wrkr:{self.queue}")

    async def stop(self, timeout: float) -> None:
        """Stop claiming, let running handlers finish for `timeout` s, give back the rest."""
        if self._pull_task is not None:
            self._pull_task.cancel()
            await asyncio.gather(self._pull_task, return_exceptions=True)
            self._pull_task = None
        if self._jobs:
            await asyncio.wait(self._jobs, timeout=timeout)
        for run in self._runs:
            run.cancel()
        if self._jobs:
            await asyncio.gather(*self._jobs, return_exceptions=True)

    # -- claiming ------------------------------------------------------------------

    async def _pull_forever(self) -> None:
        pause = 0.5
        while True:
            try:
                await self._pull()
                return  # the backend ended the stream: it was closed
            except BackendUnavailable as exc:
                logger.warning("queue %s: backend unavailable (%s); retrying in %.1fs",
                               self.queue, exc, pause)
                await asyncio.sleep(pause)
                pause = min(pause * 2, 30.0)

    async def _pull(self) -> None:
        concurrency = max(route.concurrency for route in self._routes)
        lease = max(route.timeout for route in self._routes) + LEASE_MARGIN
        slots = asyncio.Semaphore(concurrency)
        stream = self._settings.backend.deliveries(
            self.queue, worker=self._settings.worker, lease=lease, prefetch=concurrency)
        async with contextlib.aclosing(stream):
            while True:
                await slots.acquire()
                try:
                    delivery = await anext(stream)
                except StopAsyncIteration:
                    return
                except BaseException:
                    slots.release()
                    raise
                job = asyncio.create_task(self._settle(delivery))
                self._jobs.add(job)
                job.add_done_callback(self._jobs.discard)
                job.add_done_callback(lambda _: slots.release())

    # -- handling ------------------------------------------------------------------

    async def _settle(self, delivery: Delivery) -> None:
        try:
            await self._handle(delivery)
        except (LeaseLost, BackendUnavailable) as exc:
            logger.warning("item %s on %s could not be settled: %s",
                           delivery.item.id, self.queue, exc)
        except Exception:
            logger.exception("item %s on %s: unexpected error", delivery.item.id, self.queue)

    async def _handle(self, delivery: Delivery) -> None:
        item = delivery.item
        try:
            event = from_item(item)
        except ValueError as exc:
            await self._fail(delivery, _record(self._now(), item.attempts, exc, "malformed item"))
            return
        route = self._route_for(item.name)
        retry = (route.retry if route else None) or self._settings.retry
        error: Exception
        if route is None:
            error = LookupError(f"no handler for {item.name!r} on queue {self.queue!r} here")
            await self._retry_or_fail(delivery, retry, error)
        elif item.attempts > retry.attempts:
            error = RuntimeError(f"gave up after {item.attempts - 1} attempts (worker lost)")
            await self._fail(delivery, _record(self._now(), item.attempts, error))
        else:
            await self._run_and_settle(route, retry, event, delivery)

    async def _run_and_settle(
        self, route: Route, retry: Retry, event: Event, delivery: Delivery
    ) -> None:
        ack = Ack(self._settings, delivery)
        run = asyncio.create_task(self._run(route, event, ack))
        self._runs.add(run)
        try:
            await asyncio.wait({run})
        finally:
            self._runs.discard(run)
        if run.cancelled():
            if not ack.done:
                await self._settings.backend.release(delivery)
            return
        await self._conclude(run.exception(), ack, retry, event, delivery)

    async def _conclude(
        self, error: BaseException | None, ack: Ack, retry: Retry, event: Event,
        delivery: Delivery,
    ) -> None:
        if error is not None and not isinstance(error, Fail):
            await self._report(error, event)
        if ack.done:
            if error is not None:
                logger.warning("item %s failed after its early ack; not retried: %r",
                               event.id, error)
        elif error is None:
            await ack()
        elif isinstance(error, Fail):
            await self._fail(delivery, _record(self._now(), event.attempts, error))
        else:
            await self._retry_or_fail(delivery, retry, error)

    async def _run(self, route: Route, event: Event, ack: Ack) -> None:
        seconds = route.timeout.total_seconds()
        try:
            async with asyncio.timeout(seconds):
                await self._call(route, event, ack)
        except TimeoutError as exc:
            raise TimeoutError(f"handler exceeded its timeout of {seconds:g}s") from exc

    async def _call(self, route: Route, event: Event, ack: Ack) -> None:
        handler = route.handler
        if route.is_async:
            await (handler(event, ack) if route.takes_ack else handler(event))
            return
        args: tuple[Any, ...] = (event,)
        if route.takes_ack:
            args = (event, ack.blocking(asyncio.get_running_loop()))
        result = await asyncio.to_thread(handler, *args)
        if inspect.isawaitable(result):
            await result

    # -- outcomes --------------------------------------------------------------------

    async def _retry_or_fail(self, delivery: Delivery, retry: Retry, error: BaseException) -> None:
        attempt = delivery.item.attempts
        record = _record(self._now(), attempt, error)
        if retry.exhausted(attempt):
            await self._fail(delivery, record)
            return
        due = self._now() + retry.delay(attempt)
        logger.info("item %s on %s: attempt %d failed (%s); retrying at %s",
                    delivery.item.id, self.queue, attempt, record.message, due.isoformat())
        await self._settings.backend.nack(delivery, due=due, error=record)

    async def _fail(self, delivery: Delivery, record: ErrorRecord) -> None:
        logger.error("item %s on %s failed for good: %s: %s",
                     delivery.item.id, self.queue, record.type, record.message)
        await self._settings.backend.fail(delivery, error=record)

    async def _report(self, error: BaseException, event: Event) -> None:
        hook = self._settings.on_error
        if hook is None:
            return
        try:
            result = hook(error, event)
            if inspect.isawaitable(result):
                await result
        except Exception:
            logger.exception("on_error hook raised")

    def _route_for(self, name: str) -> Route | None:
        return next((route for route in self._routes if matches(route.pattern, name)), None)

    def _now(self) -> datetime:
        return self._settings.backend.now()


def _record(at: datetime, attempt: int, error: BaseException, prefix: str = "") -> ErrorRecord:
    message = str(error) or repr(error)
    if prefix:
        message = f"{prefix}: {message}"
    return ErrorRecord(at=at, attempt=attempt, type=type(error).__name__, message=message)
