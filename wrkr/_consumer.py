"""One queue's consumer: claim items, run the matching handler, settle the outcome.

The consumer owns every decision about an item's fate (ack, retry later, park as
failed, give back); the backend only carries it out. A queue has `concurrency`
workers that take turns pulling from one delivery stream and run each handler
inline, with no task per item. `stop()` interrupts a handler by expiring its
worker's deadline, never a settlement already under way.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import traceback
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, TypeVar

from wrkr._deadline import HandlerDeadline
from wrkr._errors import BackendUnavailable, Fail, ItemNotFound, LeaseLost
from wrkr._event import Event, from_item
from wrkr._flows import context_of, encode_result
from wrkr._hooks import Handled, Observer, Observers, Outcome
from wrkr._leases import LeaseKeeper
from wrkr._lineage import HANDLING
from wrkr._models import to_model
from wrkr._names import matches
from wrkr._retry import Retry
from wrkr._tracing import Tracing
from wrkr.backend import Backend, Delivery, ErrorRecord, Item

logger = logging.getLogger("wrkr")

DEFAULT_LEASE = timedelta(seconds=30)
"""How long a claim holds its item unless renewed (`Wrkr(lease=...)`); see `_leases`."""
STOP_GRACE = 5.0
"""Seconds a stop waits, after cutting handlers short, for their settlements to end."""
YIELD_EVERY = 16
"""Items a worker handles before it lets the rest of the process run: when the backend
has items at hand and the handler never waits, nothing else would suspend it."""
MAX_PAUSE = 5.0
"""Longest wait before reopening a delivery stream after `BackendUnavailable` (seconds)."""


_UNCACHED: Any = object()  # a name whose route is not cached yet (None: no route)
_MAX_CACHED_NAMES = 10_000
"""Event names whose route a consumer remembers; names are few, but nothing enforces it."""

Handler = Callable[[Event], object] | Callable[[Event, Callable[[], Any]], object]
"""`handler(event)` or `handler(event, ack)`; a coroutine function or a plain one.

Typed so that `mypy --strict` rejects a handler taking anything else."""
H = TypeVar("H", bound=Handler)

ErrorHook = Callable[[BaseException, Event], Any]


class ErrorHookObserver(Observer):
    """`on_error(exception, event)` as an observer: called when a handler raises.

    `Fail` is a decision, not an error, so it is not reported. An awaitable result
    runs as a task of its own: observers never hold up the item.
    """

    def __init__(self, hook: ErrorHook) -> None:
        self.hook = hook
        self._tasks: set[asyncio.Task[Any]] = set()

    def handled(self, report: Handled) -> None:
        """Call the hook for a handler that raised anything but `Fail`."""
        error = report.error
        if error is None or isinstance(error, Fail):
            return
        result = self.hook(error, report.event)
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(self._await(result))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _await(self, result: Any) -> None:
        try:
            await result
        except Exception:
            logger.exception("on_error hook raised")


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
    model: type | None = None  # the payload model the handler gets, if any

    @classmethod
    def build(
        cls, pattern: str, handler: Handler, concurrency: int, timeout: timedelta,
        retry: Retry | None, model: type | None = None,
    ) -> Route:
        """Inspect the handler once, not on every delivery."""
        takes_ack = len(inspect.signature(handler).parameters) >= 2
        is_async = inspect.iscoroutinefunction(handler) or inspect.iscoroutinefunction(
            getattr(handler, "__call__", None))  # noqa: B004 - async callable objects
        return cls(pattern, handler, concurrency, timeout, retry, takes_ack, is_async, model)


@dataclass(frozen=True, slots=True)
class Settings:
    """What every consumer of one app shares."""

    backend: Backend
    worker: str
    retry: Retry
    keep: bool
    retention: timedelta | None
    observers: Observers
    lease: timedelta = DEFAULT_LEASE
    tracing: Tracing | None = None


class Ack:
    """The `ack` a handler may await early (at-most-once); acks at most once."""

    def __init__(self, settings: Settings, delivery: Delivery[Any],
                 settling: Callable[[Delivery[Any]], None]) -> None:
        self._settings = settings
        self._delivery = delivery
        self._settling = settling  # stops the lease renewals first
        self.done = False

    @property
    def delivery_id(self) -> int:
        """The key the consumer knows this delivery by."""
        return id(self._delivery)

    async def __call__(self, result: bytes | None = None) -> None:
        """Acknowledge the item now (a flow's job: with its handler's `result`, JSON);
        later calls do nothing."""
        if self.done:
            return
        self.done = True
        self._settling(self._delivery)
        settings = self._settings
        expires = None
        if settings.keep and settings.retention is not None:
            expires = settings.backend.now() + settings.retention
        await settings.backend.ack(self._delivery, keep=settings.keep, expires=expires,
                                   result=result)

    def blocking(self, loop: asyncio.AbstractEventLoop) -> Callable[[], None]:
        """Return an `ack()` a sync handler can call from its worker thread."""
        return lambda: asyncio.run_coroutine_threadsafe(self(), loop).result()


class Interrupted(Exception):
    """The handler was cut short by a forced stop: its item goes back untouched."""


class LeaseGone(Exception):
    """The handler was cut short because a renewal found its lease lost."""


class QueueConsumer:
    """Consumes one queue for one app with `concurrency` workers sharing one stream.

    Each worker pulls an item, runs its handler inline and settles it: no task per
    item. A stop cancels only workers waiting for an item; busy ones get the stop's
    timeout, then their handler's own timeout scope is expired, so a handler is cut
    short but a settlement never is.
    """

    def __init__(self, queue: str, settings: Settings) -> None:
        self.queue = queue
        self._settings = settings
        self._observers = settings.observers
        self._routes: list[Route] = []
        self._workers: set[asyncio.Task[None]] = set()
        self._busy: set[asyncio.Task[None]] = set()  # workers holding an item
        self._deadlines: dict[asyncio.Task[Any], HandlerDeadline] = {}  # one per worker
        self._route_cache: dict[str, Route | None] = {}  # event name -> first matching route
        self._stream: AsyncGenerator[Delivery[Any], None] | None = None
        # One worker at a time pulls from the stream (an async generator cannot be
        # resumed twice at once); the others queue for their turn. Not an asyncio.Lock:
        # its `async with` costs five Python calls per item, this a flag test.
        self._pulling = False
        self._pull_turns: deque[asyncio.Future[None]] = deque()
        self._stopping = False
        self._forced = False
        self._unavailable = False  # the last claim failed: say so when one succeeds again
        # What is in flight, with the deadline of the worker running each: one map
        self._leases: LeaseKeeper[HandlerDeadline] = LeaseKeeper(
            settings.backend.renew, settings.lease, self._lease_lost, queue)
        self._stop_renewing = self._leases.release  # bound once: every Ack gets it
        self._gone: set[int] = set()  # id(delivery) of handlers cut short by a lost lease
        self._threads = 0  # sync handlers running on after they were cut short

    def add(self, route: Route) -> None:
        """Handle events matching `route.pattern` (the first matching route wins).

        Added while running, a route asking for more concurrency gets more workers.
        """
        self._routes.append(route)
        self._route_cache.clear()
        if self._workers and not self._stopping:
            self._add_workers()

    def start(self) -> None:
        """Begin claiming items in the background, with as many workers as routes allow."""
        if self._workers:
            return
        self._stream = self._open_stream()
        self._add_workers()

    def _add_workers(self) -> None:
        for number in range(len(self._workers), max(r.concurrency for r in self._routes)):
            worker = asyncio.create_task(self._work(), name=f"wrkr:{self.queue}:{number}")
            self._workers.add(worker)

    async def stop(self, timeout: float) -> None:
        """Stop claiming, let running handlers finish for `timeout` s, give back the rest."""
        self._stopping = True
        for worker in self._workers - self._busy:
            worker.cancel()  # waiting for an item: it holds nothing
        if self._busy:
            await asyncio.wait(set(self._busy), timeout=timeout)
        self._forced = True
        for deadline in self._deadlines.values():
            deadline.expire_now()
        if self._busy:
            logger.warning("queue %s: stopping; %d handler(s) still running after %gs were "
                           "cut short, their items go back", self.queue, len(self._busy), timeout)
            await asyncio.wait(set(self._busy), timeout=STOP_GRACE)
        while self._threads:  # a thread cannot be interrupted: its item stays leased
            logger.warning("queue %s: waiting for %d sync handler(s) to end: a thread cannot "
                           "be interrupted, and its item stays ours until then",
                           self.queue, self._threads)
            await asyncio.wait(set(self._busy), timeout=STOP_GRACE)
        stuck = await self._end_workers()
        await self._leases.close()
        if self._stream is not None and not stuck:  # a stuck worker is still inside it
            try:  # gives back what it claimed but did not yield
                async with asyncio.timeout(STOP_GRACE):
                    await self._stream.aclose()
            except TimeoutError:
                logger.warning("queue %s: could not give back its prefetched items in %gs; "
                               "they come back when their leases end", self.queue, STOP_GRACE)

    async def _end_workers(self) -> set[asyncio.Task[None]]:
        """Cancel every worker and wait for them, bounded; return those still running.

        A stop must never hang on a worker. One still running is left to end when the
        backend closes (its stream stops then); its items come back when their leases do.
        """
        for worker in self._workers:
            worker.cancel()  # a settlement stuck on a dead backend: its lease brings it back
        if not self._workers:
            return set()
        done, stuck = await asyncio.wait(set(self._workers), timeout=STOP_GRACE)
        for worker in done:  # consumed, as a gather would: asyncio must not log them
            if not worker.cancelled():
                worker.exception()
        if stuck:
            logger.warning("queue %s: %d worker(s) had not ended %gs after being cancelled "
                           "(%s); stopping without them", self.queue, len(stuck), STOP_GRACE,
                           ", ".join(sorted(task.get_name() for task in stuck)))
        return stuck

    # -- claiming ------------------------------------------------------------------

    def _open_stream(self) -> AsyncGenerator[Delivery[Any], None]:
        concurrency = max(route.concurrency for route in self._routes)
        return self._settings.backend.deliveries(
            self.queue, worker=self._settings.worker, lease=self._settings.lease,
            prefetch=concurrency)

    def _lease_lost(self, delivery: Delivery[Any], deadline: HandlerDeadline) -> None:
        """A renewal found `delivery`'s lease lost: cut its handler short."""
        item = delivery.item
        logger.warning("item %s on %s: LeaseLost, its lease ended while its handler ran (the "
                       "worker was paused or cut off); the handler is cancelled, since another "
                       "worker may hold the item now", item.id, self.queue)
        if self._observers:
            self._observers.lease_lost(self.queue, item.id)
        self._gone.add(id(delivery))
        deadline.expire_now()

    async def _work(self) -> None:
        worker = asyncio.current_task()
        assert worker is not None
        deadline = self._deadlines[worker] = HandlerDeadline(worker)
        handled = 0
        try:
            while not self._stopping:
                delivery = await self._next_delivery()
                if delivery is None:
                    return
                self._busy.add(worker)  # no await since the item arrived: stop() sees it
                self._leases.hold(delivery, deadline)
                try:  # each outcome of `_handle` stops the renewals first
                    await self._handle(delivery, deadline)
                except Exception as exc:  # (caught here: a wrapping coroutine costs a frame)
                    self._not_settled(delivery, exc)
                finally:
                    self._busy.discard(worker)
                    if self._gone:
                        self._gone.discard(id(delivery))
                handled += 1
                if handled % YIELD_EVERY == 0:
                    await asyncio.sleep(0)
        finally:
            self._deadlines.pop(worker).close()

    async def _next_delivery(self) -> Delivery[Any] | None:
        while self._pulling:  # another worker is pulling: wait for our turn
            await self._wait_turn()
        self._pulling = True
        try:
            pause = 0.5
            while not self._stopping and self._stream is not None:
                try:
                    delivery = await anext(self._stream)
                except StopAsyncIteration:
                    return None  # the backend was closed
                except BackendUnavailable as exc:
                    logger.warning("queue %s: backend unavailable (%s); retrying in %.1fs",
                                   self.queue, exc, pause)
                    self._unavailable = True
                    if self._observers:
                        self._observers.backend_unavailable(f"claiming from {self.queue}", exc)
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, MAX_PAUSE)
                    self._stream = self._open_stream()
                    continue
                if self._unavailable:
                    self._unavailable = False
                    logger.info("queue %s: backend available again", self.queue)
                    if self._observers:
                        self._observers.backend_recovered(f"claiming from {self.queue}")
                return delivery
            return None
        finally:
            self._pulling = False
            if self._pull_turns:
                self._pass_turn()

    async def _wait_turn(self) -> None:
        turn = asyncio.get_running_loop().create_future()
        self._pull_turns.append(turn)
        try:
            await turn
        except asyncio.CancelledError:
            if not turn.cancelled():  # woken, then cancelled: wake the next one instead
                self._pass_turn()
            raise

    def _pass_turn(self) -> None:
        """Wake the first worker still waiting to pull (it checks the flag again)."""
        turns = self._pull_turns
        while turns:
            turn = turns.popleft()
            if not turn.done():
                turn.set_result(None)
                return

    # -- handling ------------------------------------------------------------------

    def _not_settled(self, delivery: Delivery[Any], exc: Exception) -> None:
        """Stop renewing a delivery whose handling ended in `exc`, and say why."""
        self._stop_renewing(delivery)
        if isinstance(exc, LeaseLost | BackendUnavailable):
            logger.warning("item %s on %s could not be settled: %s",
                           delivery.item.id, self.queue, exc)
            if isinstance(exc, LeaseLost) and self._observers:
                self._observers.lease_lost(self.queue, delivery.item.id)
        else:
            logger.exception("item %s on %s: unexpected error", delivery.item.id, self.queue,
                             exc_info=exc)

    async def _handle(self, delivery: Delivery[Any], deadline: HandlerDeadline) -> None:
        item = delivery.item
        try:
            event = from_item(item)
        except ValueError as exc:
            record = _record(self._now(), item.attempts, exc, "malformed item")
            await self._fail(delivery, record)
            self._tell(from_item(item, strict=False), Outcome.FAILED, None, 0.0, exc)
            return
        if item.flow is not None:
            event = await self._with_flow(event, item.flow)
        route = self._route_cache.get(item.name, _UNCACHED)  # `_route_for`'s usual way
        if route is _UNCACHED:
            route = self._route_for(item.name)
        retry = (route.retry if route else None) or self._settings.retry
        error: Exception
        if route is None:
            error = LookupError(f"no handler for {item.name!r} on queue {self.queue!r} here")
            outcome = await self._retry_or_fail(delivery, retry, error)
            self._tell(event, outcome, None, 0.0, error)
        elif item.attempts > retry.attempts:
            error = RuntimeError(f"gave up after {item.attempts - 1} attempts (worker lost)")
            await self._fail(delivery, _record(self._now(), item.attempts, error))
            self._tell(event, Outcome.FAILED, None, 0.0, error)
        else:
            if route.model is not None:
                try:
                    event = replace(event, payload=to_model(route.model, event.payload))
                except ValueError as exc:  # retrying cannot fix it: park it, saying why
                    what = f"payload does not validate as {route.model.__name__}"
                    await self._fail(delivery, _record(self._now(), item.attempts, exc, what))
                    self._tell(event, Outcome.FAILED, None, 0.0, exc)
                    return
            await self._run_and_settle(route, retry, event, delivery, deadline)

    async def _with_flow(self, event: Event, flow_id: str) -> Event:
        """Return `event` with its flow's context (`event.flow`), read from the backend."""
        try:
            stored = await self._settings.backend.flow_record(flow_id)
        except ItemNotFound:  # the flow was removed: the job runs as a plain event
            logger.warning("item %s on %s: its flow %s is gone; handled without event.flow",
                           event.id, self.queue, flow_id)
            return event
        assert event.id is not None
        return replace(event, flow=context_of(stored, event.id))

    async def _run_and_settle(
        self, route: Route, retry: Retry, event: Event, delivery: Delivery[Any],
        deadline: HandlerDeadline,
    ) -> None:
        ack = Ack(self._settings, delivery, self._stop_renewing)
        error: Exception | None = None
        observers = self._observers
        started = None
        if observers.listening:
            started = self._now()
            observers.started(event)
        clock = time.perf_counter()
        result: object = None
        try:
            result = await self._run(route, event, ack, deadline, delivery.item)
        except LeaseGone:
            self._tell(event, Outcome.LEASE_LOST, started, time.perf_counter() - clock, None)
            return
        except Interrupted:
            if not ack.done:
                self._stop_renewing(delivery)
                await self._settings.backend.release(delivery)
            self._tell(event, Outcome.RELEASED, started, time.perf_counter() - clock, None)
            return
        except Exception as exc:
            error = exc
        duration = time.perf_counter() - clock
        try:
            if error is None and not ack.done and delivery.item.flow is None:
                await ack()  # `_conclude`'s usual way, inline: it stops the renewals first
                outcome = Outcome.ACKED
            else:
                outcome = await self._conclude(error, ack, retry, event, delivery, result)
        except LeaseLost:
            self._tell(event, Outcome.LEASE_LOST, started, duration, error)
            raise
        if observers.listening:  # (tested here: `_tell` is a call per item otherwise)
            self._tell(event, outcome, started, duration, error)

    async def _conclude(
        self, error: BaseException | None, ack: Ack, retry: Retry, event: Event,
        delivery: Delivery[Any], result: object = None,
    ) -> Outcome:
        if ack.done:
            if error is not None:
                logger.warning("item %s failed after its early ack; not retried: %r",
                               event.id, error)
            return Outcome.ACKED
        if error is None and delivery.item.flow is not None:  # a job's result is kept
            try:
                encoded = encode_result(result)
            except ValueError as exc:  # retrying cannot fix it: fail the job, saying why
                error = Fail(str(exc))
            else:
                await ack(encoded)
                return Outcome.ACKED
        if error is None:
            await ack()  # which stops the renewals first
            return Outcome.ACKED
        if isinstance(error, Fail):
            await self._fail(delivery, _record(self._now(), event.attempts, error))
            return Outcome.FAILED
        return await self._retry_or_fail(delivery, retry, error)

    def _tell(self, event: Event, outcome: Outcome, started: datetime | None,
              duration: float, error: BaseException | None) -> None:
        """Report a settled delivery to the observers, if any listen."""
        if self._observers.listening:
            report = Handled(event, outcome, started or self._now(), duration, error)
            self._observers.handled(report)

    async def _run(self, route: Route, event: Event, ack: Ack, deadline: HandlerDeadline,
                   item: Item) -> object:
        """Run the handler under the worker's `deadline` (passed down: finding the
        current task costs more than the rest of the timeout bookkeeping), as `item`'s:
        what it publishes is `item`'s child (lineage), and it runs in `item`'s span.
        Return what the handler returned (a flow job's result)."""
        seconds = route.timeout.total_seconds()
        deadline.begin(seconds)
        token = HANDLING.set(item)
        tracing = self._settings.tracing
        span = None if tracing is None else tracing.handling(item, self.queue)
        try:
            try:
                if span is None and route.is_async:  # `_call`, inline: the usual handler
                    handler: Any = route.handler
                    result = await (handler(event, ack) if route.takes_ack else handler(event))
                elif span is None:
                    result = await self._call(route, event, ack, seconds)
                else:
                    with span:
                        result = await self._call(route, event, ack, seconds)
            except BaseException as exc:
                deadline.end(exc)
                raise
            deadline.end(None)
            return result
        except TimeoutError as exc:
            if not deadline.expired:
                raise  # the handler's own TimeoutError
            if ack.delivery_id in self._gone:
                raise LeaseGone from exc
            if self._forced:
                raise Interrupted from exc
            raise TimeoutError(f"handler exceeded its timeout of {seconds:g}s") from exc
        finally:
            HANDLING.reset(token)

    async def _call(self, route: Route, event: Event, ack: Ack, seconds: float) -> object:
        handler: Any = route.handler
        if route.is_async:
            return await (handler(event, ack) if route.takes_ack else handler(event))
        args: tuple[Any, ...] = (event,)
        if route.takes_ack:
            args = (event, ack.blocking(asyncio.get_running_loop()))
        result = await self._outlast(asyncio.ensure_future(asyncio.to_thread(handler, *args)),
                                     event, seconds)
        if inspect.isawaitable(result):
            return await result
        return result

    async def _outlast(self, thread: asyncio.Future[Any], event: Event, seconds: float) -> Any:
        """Wait for a sync handler's thread to end, even past a cut (its timeout, a stop).

        A thread cannot be interrupted. Giving its item back while it runs would have it
        handled twice, so the item stays leased (renewed) until the thread ends, and is
        settled by what the handler did.
        """
        try:
            return await asyncio.shield(thread)
        except asyncio.CancelledError:
            if thread.done():
                raise
        task = asyncio.current_task()
        assert task is not None
        task.uncancel()
        logger.warning("item %s on %s: its sync handler ran past its timeout of %gs or a stop; "
                       "a thread cannot be interrupted, so its item stays leased until it ends",
                       event.id, self.queue, seconds)
        self._threads += 1
        try:
            while not thread.done():
                try:
                    await asyncio.shield(thread)
                except asyncio.CancelledError:
                    task.uncancel()
        finally:
            self._threads -= 1
        return thread.result()

    # -- outcomes --------------------------------------------------------------------

    async def _retry_or_fail(
        self, delivery: Delivery[Any], retry: Retry, error: BaseException
    ) -> Outcome:
        self._stop_renewing(delivery)  # settling now: a renewal would race the settlement
        attempt = delivery.item.attempts
        record = _record(self._now(), attempt, error)
        if retry.exhausted(attempt):
            await self._fail(delivery, record, error)
            return Outcome.FAILED
        due = self._now() + retry.delay(attempt)
        # The first attempt's traceback shows the cause; later ones would repeat it.
        logger.warning("item %s (%s) on %s: attempt %d failed with %s: %s; retrying at %s",
                       delivery.item.id, delivery.item.name, self.queue, attempt, record.type,
                       record.message, due.isoformat(),
                       exc_info=error if attempt == 1 else None)
        await self._settings.backend.nack(delivery, due=due, error=record)
        return Outcome.RETRIED

    async def _fail(self, delivery: Delivery[Any], record: ErrorRecord,
                    error: BaseException | None = None) -> None:
        logger.error("item %s (%s) on %s failed for good after attempt %d: %s: %s",
                     delivery.item.id, delivery.item.name, self.queue, record.attempt,
                     record.type, record.message,
                     exc_info=error if isinstance(error, Exception) and not isinstance(
                         error, Fail) else None)
        self._stop_renewing(delivery)  # settling now: a renewal would race the settlement
        await self._settings.backend.fail(delivery, error=record)

    def _route_for(self, name: str) -> Route | None:
        """Return the first route matching `name`, cached per name (routes rarely change)."""
        try:
            return self._route_cache[name]
        except KeyError:
            found = next((route for route in self._routes if matches(route.pattern, name)), None)
            if len(self._route_cache) >= _MAX_CACHED_NAMES:
                self._route_cache.clear()
            self._route_cache[name] = found
            return found

    def _now(self) -> datetime:
        return self._settings.backend.now()


TRACEBACK_FRAMES = 20
"""Frames of a handler's traceback kept in its `ErrorRecord` (the last ones)."""


def _record(at: datetime, attempt: int, error: BaseException, prefix: str = "") -> ErrorRecord:
    message = str(error) or repr(error)
    if prefix:
        message = f"{prefix}: {message}"
    trace = None
    if error.__traceback__ is not None and not isinstance(error, Fail):  # Fail is a decision
        trace = "".join(traceback.format_exception(error, limit=-TRACEBACK_FRAMES))
    return ErrorRecord(at=at, attempt=attempt, type=type(error).__name__, message=message,
                       traceback=trace)
