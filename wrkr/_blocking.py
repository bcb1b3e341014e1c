"""`BlockingWrkr`: wrkr for code that is not async, such as a Flask or Django view.

It runs an event loop in a daemon thread and a `Wrkr` on that loop; each blocking
method hands its call to the loop and waits for the answer. One `BlockingWrkr` serves
every thread of a web process: the calls of several request threads run side by side.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import os
import threading
import weakref
from collections.abc import Callable, Coroutine, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any, Literal, Self, TypeVar

from wrkr._app import Wrkr
from wrkr._errors import AlreadyStarted, CallTimedOut, InvalidConfig, NotStarted, WrkrError
from wrkr._event import Event
from wrkr._flows import Flow
from wrkr._schedules import Schedule
from wrkr.backend import State

__all__ = ["BlockingWrkr"]

T = TypeVar("T")
_NEW, _OPEN, _CLOSED, _FORKED = "new", "open", "closed", "forked"
_JOIN_TIMEOUT = 10.0  # seconds; the thread is a daemon, so a stuck loop cannot hold the exit


class BlockingWrkr:
    """A blocking facade over a `Wrkr` running in a background thread.

    Build it from a URL (with `Wrkr.from_url` options) or from a `Wrkr` that is not
    started; `start()` it once, or use it as a context manager, and `close()` it when
    done (at interpreter exit at the latest). Calls after `close()` raise `NotStarted`.
    Every method is safe to call from several threads at once.

    Example, a Flask app publishing from its views::

        import os

        from flask import Flask, request
        from wrkr import BlockingWrkr

        events = BlockingWrkr(os.environ["WRKR_URL"]).start()
        app = Flask(__name__)

        @app.post("/users")
        def add_user():
            user = create_user(request.json)
            events.publish({"name": "ourapp.user.added", "tid": str(user.id)})
            return {"id": user.id}, 201

    Args:
        app_or_url: a backend URL such as ``postgresql://...``, or an unstarted `Wrkr`.
        call_timeout: seconds a call waits for its answer before raising `CallTimedOut`
            (None: no limit). A publish that timed out may still have been stored.
        options: `Wrkr.from_url` options (app and backend ones), with a URL only.

    Raises:
        AlreadyStarted: the `Wrkr` given is already running.

    In a process forked after `start()` (gunicorn `--preload`, uwsgi), the parent's
    loop thread does not exist and its connections are the parent's: a facade built
    from a URL starts afresh in the child, with its own thread and connections, on
    its first call there.
    """

    def __init__(
        self, app_or_url: Wrkr | str, /, *, call_timeout: float | None = 30.0,
        **options: Any,
    ) -> None:
        self.app = _app(app_or_url, options)
        self._url = app_or_url if isinstance(app_or_url, str) else None
        self._options = dict(options)
        self.call_timeout = call_timeout
        self._lock = threading.Lock()
        self._state = _NEW
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._calls: set[concurrent.futures.Future[Any]] = set()
        this = weakref.ref(self)
        os.register_at_fork(after_in_child=lambda: _forked(this))

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Self:
        """Start the loop thread and the app on it; return self.

        Raises:
            AlreadyStarted: `start()` was called before.
            NotStarted: the facade was closed (make a new one).
        """
        with self._lock:
            self._check_new()
            loop = asyncio.new_event_loop()
            thread = threading.Thread(target=_serve, args=(loop,), daemon=True,
                                      name=f"wrkr-blocking-{self.app.worker_id}")
            thread.start()
            try:
                asyncio.run_coroutine_threadsafe(self.app.start(), loop).result(self.call_timeout)
            except BaseException:
                _halt(loop, thread)
                raise
            self._loop, self._thread, self._state = loop, thread, _OPEN
        atexit.register(self.close)
        return self

    def close(self, timeout: float = 10.0) -> None:
        """Let calls under way finish, stop the app gracefully, end the thread.

        Idempotent. Waits up to `timeout` seconds for calls under way and as long
        again for the app's own graceful stop.
        """
        with self._lock:
            if self._state != _OPEN:
                self._state = _CLOSED  # (forked: the parent closes its own connections)
                return
            self._state, calls = _CLOSED, set(self._calls)
        atexit.unregister(self.close)
        assert self._loop is not None
        assert self._thread is not None
        concurrent.futures.wait(calls, timeout)
        try:
            stop = asyncio.run_coroutine_threadsafe(self.app.stop(timeout), self._loop)
            stop.result(timeout * 2)
        finally:
            _halt(self._loop, self._thread)

    def __enter__(self) -> Self:
        return self if self._state == _OPEN else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- forwarded calls -------------------------------------------------------------

    def publish(
        self, events: Event | dict[str, Any] | Sequence[Event | dict[str, Any]],
        *, connection: Any = None,
    ) -> list[str]:
        """Publish one event or a batch; return the ids of the items created (`Wrkr.publish`).

        `connection`: the caller's open transaction, on a TRANSACTIONAL backend; on
        PostgreSQL a sync ``psycopg.Connection`` (Django's ``connection.connection``
        inside ``transaction.atomic()``), so the events commit or roll back with it.
        """
        return self._call(self.app.publish, events, connection=connection)

    def items(
        self, *, queue: str | None = None, name: str | None = None, tid: str | None = None,
        state: State | str | None = None, limit: int | None = None,
    ) -> list[Event]:
        """Return the items that match every filter given, oldest due first (`Wrkr.items`)."""
        return self._call(self.app.items, queue=queue, name=name, tid=tid, state=state,
                          limit=limit)

    def get(self, item_id: str) -> Event:
        """Return one item by id; raise `ItemNotFound` if there is none (`Wrkr.get`)."""
        return self._call(self.app.get, item_id)

    def lineage(self, item_id: str) -> list[Event]:
        """Return the tree of items `item_id` belongs to, oldest first (`Wrkr.lineage`)."""
        return self._call(self.app.lineage, item_id)

    def cancel(
        self, *, name: str | None = None, tid: str | None = None, queue: str | None = None
    ) -> int:
        """Delete pending items matching every filter given; return how many (`Wrkr.cancel`)."""
        return self._call(self.app.cancel, name=name, tid=tid, queue=queue)

    def retry(self, item_id: str) -> None:
        """Move a failed item back to ready (`Wrkr.retry`)."""
        self._call(self.app.retry, item_id)

    def subscriptions(self, event_name: str) -> list[str]:
        """Return the queues an event called `event_name` would reach (`Wrkr.subscriptions`)."""
        return self._call(self.app.subscriptions, event_name)

    def schedule(
        self, name: str, *, cron: str | None = None, every: timedelta | float | str | None = None,
        tz: str = "UTC", tid: str | None = None, payload: dict[str, Any] | None = None,
        catch_up: Literal["latest", "all", "none"] = "latest",
    ) -> None:
        """Store or update a recurring schedule (`Wrkr.schedule`); listening apps fire it."""
        self._call(self.app.schedule, name, cron=cron, every=every, tz=tz, tid=tid,
                   payload=payload, catch_up=catch_up)

    def unschedule(self, name: str) -> bool:
        """Remove a schedule; tell whether there was one (`Wrkr.unschedule`)."""
        return self._call(self.app.unschedule, name)

    def schedules(self) -> list[Schedule]:
        """Return every stored schedule, by name (`Wrkr.schedules`)."""
        return self._call(self.app.schedules)

    def start_flow(
        self, name: str, *, steps: Sequence[Sequence[dict[str, Any]]], tid: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> str:
        """Start a flow of steps of parallel jobs; return its id (`Wrkr.start_flow`)."""
        return self._call(self.app.start_flow, name, steps=steps, tid=tid, payload=payload)

    def flow(self, flow_id: str) -> Flow:
        """Return a flow's state, jobs and results (`Wrkr.flow`)."""
        return self._call(self.app.flow, flow_id)

    def cancel_flow(self, flow_id: str) -> Flow:
        """Cancel a running flow (`Wrkr.cancel_flow`)."""
        return self._call(self.app.cancel_flow, flow_id)

    def _call(self, method: Callable[..., Coroutine[Any, Any, T]], *args: Any,
              **kwargs: Any) -> T:
        if threading.current_thread() is self._thread:
            raise WrkrError("BlockingWrkr called from its own event loop: await the Wrkr "
                            "(BlockingWrkr.app) instead")
        if self._state == _FORKED:
            self._start_in_child()
            method = getattr(self.app, method.__name__)
        future = self._submit(method, args, kwargs)
        try:
            return future.result(self.call_timeout)
        except TimeoutError:
            if future.done():  # the call itself raised TimeoutError
                raise
            future.cancel()
            raise CallTimedOut(f"no answer from {method.__name__}() within "
                               f"{self.call_timeout} s") from None
        finally:
            with self._lock:
                self._calls.discard(future)

    def _submit(self, method: Callable[..., Coroutine[Any, Any, T]], args: tuple[Any, ...],
                kwargs: dict[str, Any]) -> concurrent.futures.Future[T]:
        with self._lock:
            if self._state != _OPEN:
                raise NotStarted(f"cannot {method.__name__}: the BlockingWrkr is "
                                 f"{'closed' if self._state == _CLOSED else 'not started'}")
            assert self._loop is not None
            future = asyncio.run_coroutine_threadsafe(method(*args, **kwargs), self._loop)
            self._calls.add(future)
            return future

    def _after_fork(self) -> None:
        """In a forked child: forget the parent's thread, loop and calls (not its app's
        connections: closing them here would close the parent's)."""
        self._lock = threading.Lock()  # another thread may have held it at the fork
        self._calls = set()
        if self._state == _OPEN:
            self._state, self._loop, self._thread = _FORKED, None, None

    def _start_in_child(self) -> None:
        with self._lock:
            if self._state != _FORKED:
                return
            if self._url is None:
                raise NotStarted(
                    "this BlockingWrkr was started before the process forked, from a Wrkr "
                    "object whose connections belong to the parent: build it from a URL "
                    "(BlockingWrkr(url)) to have the child start its own, or start it "
                    "after the fork (gunicorn's post_fork hook)")
            self.app = _app(self._url, dict(self._options))
            self._state = _NEW
        self.start()

    def _check_new(self) -> None:
        if self._state == _OPEN:
            raise AlreadyStarted("the BlockingWrkr is already started")
        if self._state == _CLOSED:
            raise NotStarted("the BlockingWrkr is closed; create a new one")


def _app(app_or_url: Wrkr | str, options: dict[str, Any]) -> Wrkr:
    if isinstance(app_or_url, str):
        return Wrkr.from_url(app_or_url, **options)
    if not isinstance(app_or_url, Wrkr):
        raise InvalidConfig(f"expected a backend URL or a wrkr.Wrkr, got {app_or_url!r}")
    if options:
        raise InvalidConfig(f"options {sorted(options)} apply to a URL, not to an existing "
                            "Wrkr")
    return app_or_url


def _forked(facade: weakref.ref[BlockingWrkr]) -> None:
    live = facade()
    if live is not None:
        live._after_fork()


def _serve(loop: asyncio.AbstractEventLoop) -> None:
    """Run `loop` in this thread until stopped, then finish its tasks and close it."""
    asyncio.set_event_loop(loop)
    try:
        loop.run_forever()
    finally:
        tasks = asyncio.all_tasks(loop)
        for task in tasks:
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.run_until_complete(loop.shutdown_asyncgens())
        loop.run_until_complete(loop.shutdown_default_executor())
        loop.close()


def _halt(loop: asyncio.AbstractEventLoop, thread: threading.Thread) -> None:
    loop.call_soon_threadsafe(loop.stop)
    thread.join(_JOIN_TIMEOUT)
