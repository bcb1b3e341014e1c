"""`Wrkr`, the application's handle: publish, subscribe, consume, inspect.

The app validates everything before it reaches the backend, checks the backend's
capabilities up front (so a missing one fails at the call, naming it), and runs
one `QueueConsumer` per subscribed queue once `listen()` is called.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any, Literal, Self, overload

from wrkr._connect import backend_from_url
from wrkr._consumer import (
    DEFAULT_LEASE,
    ErrorHook,
    ErrorHookObserver,
    H,
    Handler,
    QueueConsumer,
    Route,
    Settings,
)
from wrkr._errors import (
    AlreadyStarted,
    InvalidConfig,
    InvalidEvent,
    ItemNotFound,
    NotStarted,
    NotSupported,
    quote,
)
from wrkr._event import Event, from_item, to_event, to_message
from wrkr._flows import Flow, item_ids, new_flow_record, view
from wrkr._hooks import Observer, Observers
from wrkr._limiter import Limiter
from wrkr._lineage import in_creation_order, parent_and_root
from wrkr._models import check_model
from wrkr._names import check_name, check_pattern, check_queue, is_wildcard
from wrkr._rates import QueueOptions, Rate, parse_rate
from wrkr._retry import Retry
from wrkr._schedule_args import build_record, to_schedule
from wrkr._scheduler import Scheduler
from wrkr._schedules import Schedule, ScheduleRecord
from wrkr._signals import signals_routed
from wrkr._tracing import load_tracing
from wrkr._when import parse_duration
from wrkr.backend import FINISHED_STATES, Backend, Capability, ItemFilter, Message, State

logger = logging.getLogger("wrkr")

Duration = timedelta | float | str
MIN_LEASE = timedelta(milliseconds=500)
_APP_OPTIONS = frozenset({"name", "archive", "retention", "retry", "on_error", "lease",
                          "tracing"})


class Wrkr:
    """Publish events, subscribe queues to them and consume them, on one backend.

    Args:
        backend: where subscriptions and items live; an in-memory backend by default.
        name: the app's name, the prefix of its worker id (`"<name>:<uuid4>"`).
        archive: `"delete"` removes acked items; `"keep"` keeps them as `done`.
        retention: with `"keep"`, how long done items are kept (forever if None).
        retry: the default retry policy of subscriptions that name none.
        on_error: called as `on_error(exception, event)` when a handler raises.
        lease: how long a claim holds its item unless renewed (30 s). The app renews it
            every third of that while the handler runs, so a handler may run as long as
            its `timeout`, while a killed worker's items are claimable again within
            about one lease.
        tracing: OpenTelemetry spans around publish and each handler, linked through the
            items (see the README's Tracing): None traces when ``opentelemetry-api`` is
            installed, True requires it, False turns it off; a ``TracerProvider`` is
            used instead of the global one.
    """

    def __init__(
        self, backend: Backend | None = None, *, name: str | None = None,
        archive: Literal["delete", "keep"] = "delete", retention: Duration | None = None,
        retry: Retry | None = None, on_error: ErrorHook | None = None,
        lease: Duration = DEFAULT_LEASE, tracing: object = None,
    ) -> None:
        if backend is None:
            from wrkr_memory import MemoryBackend

            backend = MemoryBackend()
        if archive not in ("delete", "keep"):
            raise InvalidConfig(f"invalid archive {quote(archive)}: expected 'delete' or 'keep'")
        self.backend = backend
        self.url: str | None = None  # what `from_url` was given: `wrkr worker` checks it
        self.name = name
        self.worker_id = f"{name}:{uuid.uuid4()}" if name else str(uuid.uuid4())
        if archive == "keep":
            self._require(Capability.ARCHIVE, "archive='keep'")
        keep_for = None if retention is None else parse_duration(retention, what="retention")
        hold_for = parse_duration(lease, what="lease")
        if hold_for < MIN_LEASE:
            raise InvalidConfig(f"invalid lease {quote(lease)}: must be at least {MIN_LEASE}, so "
                                "that renewals every third of it can reach the backend")
        self.observers = Observers()
        self._tracing = load_tracing(tracing)
        if on_error is not None:
            self.observers.add(ErrorHookObserver(on_error))
        self._settings = Settings(backend, self.worker_id, retry or Retry(), archive == "keep",
                                  keep_for, self.observers, hold_for, self._tracing)
        self._routes: dict[str, list[Route]] = {}
        self._queue_options: dict[str, QueueOptions] = {}  # as declared in this app
        self._consumers: dict[str, QueueConsumer] = {}
        self._schedules: dict[str, Callable[[datetime], ScheduleRecord]] = {}
        self._scheduler: Scheduler | None = None
        self._started = False
        self._listening = False
        self._stopping: asyncio.Future[None] | None = None
        self._run_ends = asyncio.Event()  # set by stop() or a signal: run() returns

    @classmethod
    def from_url(cls, url: str, **options: Any) -> Self:
        """Build an app whose backend is chosen by the URL's scheme.

        Options named like `Wrkr`'s own arguments go to the app, the rest to the backend.
        """
        app_options = {key: options.pop(key) for key in list(options) if key in _APP_OPTIONS}
        app = cls(backend_from_url(url, **options), **app_options)
        app.url = url
        return app

    # -- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        """Open the backend and make the routes declared with `@app.on` durable."""
        if self._started:
            raise AlreadyStarted(f"app {quote(self.worker_id)} is already started")
        await self.backend.open()
        self._started = True
        self._run_ends.clear()
        try:
            for queue, routes in self._routes.items():
                await self._configure(queue, self._queue_options.get(queue, QueueOptions()))
                for route in routes:
                    await self.backend.subscribe(queue, route.pattern)
            for declared in self._schedules.values():
                await self.backend.save_schedule(declared(self.backend.now()))
        except BaseException:
            await self.stop()
            raise

    async def stop(self, timeout: float = 10.0) -> None:
        """Stop consuming gracefully and close the backend; a second call does nothing.

        Running handlers get `timeout` seconds to finish; the rest are cancelled and
        their items given back to the queue, so nothing is lost.
        """
        if self._stopping is None:
            if not self._started:
                return
            self._stopping = asyncio.ensure_future(self._shut_down(timeout))
        # Concurrent calls (two quick SIGTERMs) share one shutdown: the backend,
        # maybe shared with other apps, is closed exactly once.
        await asyncio.shield(self._stopping)

    async def _shut_down(self, timeout: float) -> None:
        try:
            consumers, self._consumers = list(self._consumers.values()), {}
            scheduler, self._scheduler = self._scheduler, None
            if scheduler is not None:
                await scheduler.stop()
            await asyncio.gather(*(consumer.stop(timeout) for consumer in consumers))
            self._started = self._listening = False
            await self.backend.close()
        finally:
            self._stopping = None
            self._run_ends.set()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    @property
    def started(self) -> bool:
        """True between `start()` and `stop()`: what a readiness probe asks first."""
        return self._started

    def observe(self, observer: Observer) -> None:
        """Call `observer`'s hooks from now on (see `wrkr.Observer`)."""
        self.observers.add(observer)

    def unobserve(self, observer: Observer) -> None:
        """Stop calling `observer`'s hooks."""
        self.observers.remove(observer)

    # -- publishing ------------------------------------------------------------------

    async def publish(
        self, events: Event | dict[str, Any] | Sequence[Event | dict[str, Any]],
        *, connection: Any = None,
    ) -> list[str]:
        """Publish one event or a batch (a list, stored all or nothing).

        Args:
            events: an `Event`, a dict of event fields, or a list of them.
            connection: the caller's open transaction, on backends that can join one.

        Returns:
            The ids of the queue items created (none for a queue that already holds
            a pending `once_every` item, or when no queue is subscribed).

        Published by a handler, the items record the handled item as their `parent`
        and its `root` as theirs (see `lineage`).
        """
        if not self._started:  # (tested here first: `publish` is the hottest call)
            self._require_started("publish")
        batch: Sequence[object] = events if isinstance(events, list | tuple) else [events]
        span = None
        if self._tracing is not None:
            checked = [to_event(event) for event in batch]  # the span is named by them
            span, batch = self._tracing.publishing(checked), checked
        if span is None:
            return await self._publish(batch, connection, None)
        with span as trace:
            return await self._publish(batch, connection, trace)

    async def _publish(self, batch: Sequence[object], connection: Any,
                       trace: str | None) -> list[str]:
        now = self.backend.now()
        parent, root = parent_and_root()
        messages = [to_message(to_event(event), now, parent, root, trace) for event in batch]
        self._check_publishable(messages, now, connection)
        if not messages:
            return []
        ids = await self.backend.enqueue(messages, connection=connection)
        if not ids and logger.isEnabledFor(logging.DEBUG):
            logger.debug("published %s: no item created (no queue is subscribed, or each "
                         "queue already holds it pending under once_every)",
                         ", ".join(sorted({message.name for message in messages})))
        if self.observers.listening:
            self.observers.published(messages, ids)
        return ids

    def _check_publishable(self, messages: list[Message], now: datetime, connection: Any) -> None:
        later = dedupe = False
        for message in messages:  # (one loop: two any() generators cost 3 calls a publish)
            later = later or message.due > now
            dedupe = dedupe or message.dedupe
        if later:
            self._require(Capability.DELAY, "a future 'when'")
        if dedupe:
            self._require(Capability.ONCE_EVERY, "'once_every'")
        if connection is not None:
            self._require(Capability.TRANSACTIONAL, "publish(connection=...)")

    # -- subscriptions ---------------------------------------------------------------

    async def subscribe(
        self, queue: str, event_pattern: str, handler: Handler, *, concurrency: int = 1,
        timeout: Duration = "5 minutes", retry: Retry | None = None,
        payload: type | None = None, exclusive: bool = False, rate: str | Rate | None = None,
    ) -> None:
        """Route events matching `event_pattern` to `queue` (durably) and handle them here.

        `handler(event)` or `handler(event, ack)`, a coroutine function or a plain
        function (run in a thread). Consuming starts with `listen()`. With `payload`
        (a dataclass, pydantic model or msgspec Struct class), the handler's
        `event.payload` is that model; a payload that does not validate is parked as
        failed with the validation error, since retrying cannot fix it.

        `exclusive=True`: at most one item per tid of `queue` processing at a time, across
        every process, in due order per tid. `rate="30/s"` (or N/min, N/h, "N per
        second|minute|hour"): at most N handler starts of `queue` in any such window, all
        workers together. Both are stored with the queue: subscribing it again with other
        values raises `InvalidConfig`.
        """
        self._require_started("subscribe")
        route = self._route(queue, event_pattern, handler, concurrency, timeout, retry,
                            payload)
        options = self._declare(queue, exclusive, rate)
        await self._configure(queue, options)
        await self.backend.subscribe(queue, event_pattern)
        self._queue_options[queue] = options
        self._add_route(queue, route)

    def on(
        self, event_pattern: str, *, queue: str, concurrency: int = 1,
        timeout: Duration = "5 minutes", retry: Retry | None = None,
        payload: type | None = None, exclusive: bool = False, rate: str | Rate | None = None,
    ) -> Callable[[H], H]:
        """Decorate a handler in a worker module; it is subscribed when the app starts."""

        def register(handler: H) -> H:
            route = self._route(queue, event_pattern, handler, concurrency, timeout, retry,
                                payload)
            self._queue_options[queue] = self._declare(queue, exclusive, rate)
            self._routes.setdefault(queue, []).append(route)
            return handler

        return register

    def limiter(self, name: str, rate: str | Rate, *,
                margin: timedelta | float | str | None = None) -> Limiter:
        """Return the rate limit called `name`, shared by every process on the backend.

        `async with limiter:` (or `await limiter.acquire()`) waits for a slot: at most
        `rate` acquisitions in any window of its period, counted in the backend when it
        grants them. `margin` widens every window by that much, for a limit counted
        where calls arrive (an API): a call arrives a varying time after its grant.
        """
        self._require(Capability.RATE, f"limiter {quote(name)}")
        if not isinstance(name, str) or not 0 < len(name) <= 200:
            raise InvalidConfig(f"invalid limiter name {quote(name)}: expected a str of 1 to "
                                "200 characters")
        widen = timedelta(0) if margin is None else parse_duration(margin, what="margin")
        return Limiter(lambda: self.backend, name, parse_rate(rate), widen)

    def _declare(self, queue: str, exclusive: bool, rate: str | Rate | None) -> QueueOptions:
        """Check a subscription's `exclusive` and `rate`; they must match the queue's."""
        if not isinstance(exclusive, bool):
            raise InvalidConfig(f"invalid exclusive {quote(exclusive)}: expected True or False")
        options = QueueOptions(exclusive, None if rate is None else parse_rate(rate))
        if exclusive:
            self._require(Capability.EXCLUSIVE, f"exclusive=True on queue {quote(queue)}")
        if rate is not None:
            self._require(Capability.RATE, f"rate={quote(rate)} on queue {quote(queue)}")
        declared = self._queue_options.get(queue, options)
        if declared != options:
            raise InvalidConfig(f"queue {quote(queue)} is declared with {declared} in this "
                                f"app, not {options}: every route of a queue uses the same")
        return options

    async def _configure(self, queue: str, options: QueueOptions) -> None:
        stored = await self.backend.configure(queue, options)
        if stored != options:
            raise InvalidConfig(
                f"queue {quote(queue)} is stored with {stored}, not {options}: every "
                "consumer of a queue obeys the same settings (leaving one out means "
                "exclusive=False, rate=None); subscribe with those, or use another queue")

    async def unsubscribe(self, queue: str, event_pattern: str) -> None:
        """Stop routing `event_pattern` to `queue`; items already queued stay."""
        self._require_started("unsubscribe")
        check_queue(queue)
        check_pattern(event_pattern)
        await self.backend.unsubscribe(queue, event_pattern)

    @overload
    async def subscriptions(self) -> list[tuple[str, str]]: ...

    @overload
    async def subscriptions(self, event_name: str) -> list[str]: ...

    async def subscriptions(
        self, event_name: str | None = None
    ) -> list[str] | list[tuple[str, str]]:
        """Return the queues an event called `event_name` would reach; without a name,
        every subscription as sorted (queue, pattern) pairs."""
        self._require_started("subscriptions")
        if event_name is None:
            return await self.backend.subscriptions()
        return await self.backend.queues_for(check_name(event_name))

    def routes(self) -> dict[str, tuple[Route, ...]]:
        """Return the handlers declared in this app, per queue (what `wrkr worker` shows)."""
        return {queue: tuple(routes) for queue, routes in self._routes.items()}

    def _route(
        self, queue: str, pattern: str, handler: Handler, concurrency: int,
        timeout: Duration, retry: Retry | None, model: type | None = None,
    ) -> Route:
        check_queue(queue)
        check_pattern(pattern)
        if is_wildcard(pattern):
            self._require(Capability.WILDCARDS, f"pattern {quote(pattern)}")
        if not callable(handler):
            raise InvalidConfig(f"handler {quote(handler)} for {quote(pattern)} is not callable")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise InvalidConfig(f"invalid concurrency {quote(concurrency)}: expected an int >= 1")
        if retry is not None and not isinstance(retry, Retry):
            raise InvalidConfig(f"invalid retry {quote(retry)}: expected a wrkr.Retry")
        limit = parse_duration(timeout, what="timeout")
        return Route.build(pattern, handler, concurrency, limit, retry,
                           None if model is None else check_model(model))

    def _add_route(self, queue: str, route: Route) -> None:
        self._routes.setdefault(queue, []).append(route)
        if queue in self._consumers:
            self._consumers[queue].add(route)
        elif self._listening:
            self._start_consumer(queue)

    # -- consuming -------------------------------------------------------------------

    async def listen(self) -> None:
        """Start consuming every subscribed queue in the background."""
        self._require_started("listen")
        self._listening = True
        for queue in self._routes:
            if queue not in self._consumers:
                self._start_consumer(queue)
        if self._scheduler is None and Capability.SCHEDULES in self.backend.capabilities:
            self._scheduler = Scheduler(self.backend, self.observers)
            self._scheduler.start()

    def _start_consumer(self, queue: str) -> None:
        consumer = QueueConsumer(queue, self._settings)
        for route in self._routes[queue]:
            consumer.add(route)
        self._consumers[queue] = consumer
        consumer.start()

    async def run(self) -> None:
        """Start if needed, listen, and block until `stop()` or SIGINT / SIGTERM."""
        if not self._started:
            await self.start()
        await self.listen()
        with signals_routed(lambda sig: self._run_ends.set()):
            try:
                await self._run_ends.wait()
            finally:
                await self.stop()  # a second signal meanwhile is harmless: already set

    # -- recurring schedules ---------------------------------------------------------

    async def schedule(
        self, name: str, *, cron: str | None = None, every: Duration | None = None,
        tz: str = "UTC", tid: str | None = None, payload: dict[str, Any] | None = None,
        catch_up: Literal["latest", "all", "none"] = "latest",
    ) -> None:
        """Publish the event `name` (with `tid`, `payload`) on a recurring schedule.

        Give `cron` (read in `tz`; needs ``wrkr[cron]``) or `every` (the first firing
        one interval from now). Before `start()` the schedule is declared and made
        durable at start; after, at once. The same name again updates the schedule (a
        no-op when nothing changed), so every process may run the same module. Each
        firing is published once however many apps listen; firings missed while no
        app ran: `catch_up="latest"` publishes the most recent, `"all"` each, `"none"`
        none.
        """
        self._require(Capability.SCHEDULES, "schedule()")
        declared = functools.partial(build_record, name, cron=cron, every=every, tz=tz,
                                     tid=tid, payload=payload, catch_up=catch_up)
        record = declared(now=self.backend.now())  # bad arguments fail here, at the call
        self._schedules[name] = lambda now: declared(now=now)
        if self._started:
            await self.backend.save_schedule(record)
            if self._scheduler is not None:
                self._scheduler.wake()

    async def unschedule(self, name: str) -> bool:
        """Remove the schedule called `name`; tell whether there was one."""
        self._require(Capability.SCHEDULES, "unschedule()")
        declared = self._schedules.pop(check_name(name), None) is not None
        return await self.backend.remove_schedule(name) if self._started else declared

    async def schedules(self) -> list[Schedule]:
        """Return every stored schedule (this app's and other processes'), by name."""
        self._require_started("schedules")
        self._require(Capability.SCHEDULES, "schedules()")
        return [to_schedule(record) for record in await self.backend.schedules()]

    # -- workflows -------------------------------------------------------------------

    async def start_flow(
        self, name: str, *, steps: Sequence[Sequence[dict[str, Any]]], tid: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> str:
        """Start a flow: `steps` run in order, the jobs of each in parallel; return its id.

        A job is a dict with `name` and optionally `tid` (the flow's by default),
        `payload` and `when` (a delay after its step starts); it is published as an
        event, and every item it fans out to is part of its step. The next step starts
        when every item of the step is acked; a failed item fails the flow. When the
        flow ends, `<name>.completed` or `<name>.failed` is published, tid the flow id.
        """
        self._require_started("start_flow")
        self._require(Capability.FLOWS, "start_flow()")
        record = new_flow_record(name, tid, payload, steps, self.backend.now())
        await self.backend.create_flow(record)
        return record.id

    async def flow(self, flow_id: str) -> Flow:
        """Return the flow `flow_id`: its state, each job's items, results and errors."""
        self._require_started("flow")
        self._require(Capability.FLOWS, "flow()")
        record = await self.backend.flow_record(_check_id(flow_id))
        live = {}
        open_items = item_ids(record) if Capability.QUERY in self.backend.capabilities else []
        for item_id in open_items:
            try:
                live[item_id] = await self.backend.get(item_id)
            except ItemNotFound:
                continue  # settled since the record was read
        return view(record, live)

    async def cancel_flow(self, flow_id: str) -> Flow:
        """Cancel a running flow: its pending jobs are removed, running ones finish; state
        "cancelled". A flow that already ended stays as it is."""
        self._require_started("cancel_flow")
        self._require(Capability.FLOWS, "cancel_flow()")
        await self.backend.cancel_flow(_check_id(flow_id))
        return await self.flow(flow_id)

    # -- inspection and control ------------------------------------------------------

    async def items(
        self, *, queue: str | None = None, name: str | None = None, tid: str | None = None,
        state: State | str | None = None, limit: int | None = None, offset: int = 0,
    ) -> list[Event]:
        """Return the items that match every filter given, oldest due first.

        `offset` skips that many matches first, so `limit` and `offset` page through them.
        """
        self._require_started("items")
        where = _filter(queue, name, tid, state, limit, offset)
        if not (where.state is State.FAILED and Capability.FAILED in self.backend.capabilities):
            self._require(Capability.QUERY, "items()")
        return [from_item(item, strict=False) for item in await self.backend.items(where)]

    async def get(self, item_id: str) -> Event:
        """Return one item by id; raise `ItemNotFound` if there is none."""
        self._require_started("get")
        self._require(Capability.QUERY, "get()")
        return from_item(await self.backend.get(_check_id(item_id)), strict=False)

    async def lineage(self, item_id: str) -> list[Event]:
        """Return the tree `item_id` belongs to: every item sharing its root, oldest first.

        Each event has its `id`, `parent`, `root`, `name`, `queue`, `tid` and `state`;
        the root's `parent` is None and its `root` its own id. Items the backend no longer
        holds (acked with archive "delete", purged) are missing from the tree.

        Raises:
            ItemNotFound: no item has that id.
        """
        self._require_started("lineage")
        self._require(Capability.LINEAGE, "lineage()")
        item = await self.backend.get(_check_id(item_id))
        tree = await self.backend.items(ItemFilter(root=item.root or item.id))
        return [from_item(member, strict=False) for member in in_creation_order(tree)]

    async def cancel(
        self, *, name: str | None = None, tid: str | None = None, queue: str | None = None
    ) -> int:
        """Delete pending items matching every filter given; return how many."""
        self._require_started("cancel")
        if name is None and tid is None and queue is None:
            raise InvalidEvent("cancel() needs at least one of name=, tid=, queue=")
        self._require(Capability.CANCEL, "cancel()")
        return await self.backend.cancel(_filter(queue, name, tid, None, None))

    async def retry(self, item_id: str) -> None:
        """Move a failed item back to ready, with a fresh count of attempts."""
        self._require_started("retry")
        self._require(Capability.FAILED, "retry()")
        await self.backend.retry(_check_id(item_id))

    async def counts(self) -> dict[str, dict[State, int]]:
        """Return how many items each queue holds in every state, sorted by queue.

        Every subscribed queue is listed, empty ones too (all zeros).
        """
        self._require_started("counts")
        self._require(Capability.QUERY, "counts()")
        counts = await self.backend.counts()
        queues = {queue for queue, _ in await self.backend.subscriptions()} | set(counts)
        return {queue: {state: counts.get(queue, {}).get(state, 0) for state in State}
                for queue in sorted(queues)}

    async def purge(
        self, *, queue: str | None = None, state: State | str = State.FAILED,
        older_than: Duration | None = None,
    ) -> int:
        """Delete finished items, `failed` or `done`, so that they stop piling up.

        Args:
            queue: only this queue's items; every queue's if None.
            state: `"failed"` (the default) or `"done"` (kept by `archive="keep"`).
            older_than: only items that finished more than this long ago ("7 days").

        Returns:
            How many items were deleted.
        """
        self._require_started("purge")
        if queue is not None:
            check_queue(queue)
        chosen = _state(state)
        if chosen not in FINISHED_STATES:
            raise InvalidEvent(f"invalid state {quote(state)} for purge(): expected 'failed' or "
                               "'done' (cancel() deletes pending items)")
        before = None if older_than is None else (
            self.backend.now() - parse_duration(older_than, what="older_than"))
        return await self.backend.purge(queue, chosen, before)

    # -- guards ----------------------------------------------------------------------

    def _require_started(self, what: str) -> None:
        if not self._started:
            raise NotStarted(f"cannot {what}: the app is not started "
                             "(await app.start() or use 'async with app')")

    def _require(self, capability: Capability, what: str) -> None:
        if capability not in self.backend.capabilities:
            raise NotSupported(f"{type(self.backend).__name__} does not support "
                               f"'{capability}', needed for {what}")


def _filter(
    queue: str | None, name: str | None, tid: str | None, state: State | str | None,
    limit: int | None, offset: int = 0,
) -> ItemFilter:
    if queue is not None:
        check_queue(queue)
    if name is not None:
        check_name(name)
    if tid is not None and not isinstance(tid, str):
        raise InvalidEvent(f"invalid tid {quote(tid)}: expected a str")
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise InvalidEvent(f"invalid limit {quote(limit)}: expected an int >= 1")
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise InvalidEvent(f"invalid offset {quote(offset)}: expected an int >= 0")
    return ItemFilter(queue, name, tid, _state(state), limit, offset)


def _state(state: State | str | None) -> State | None:
    if state is None or isinstance(state, State):
        return state
    try:
        return State(state)
    except ValueError:
        choices = ", ".join(s.value for s in State)
        raise InvalidEvent(f"invalid state {quote(state)}: expected one of {choices}") from None


def _check_id(item_id: object) -> str:
    if not isinstance(item_id, str) or not item_id:
        raise InvalidEvent(f"invalid item id {quote(item_id)}: expected a non-empty str")
    return item_id
