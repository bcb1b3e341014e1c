"""`wrkr worker`: find the app, check it runs where asked, show it, run it, stop it.

A first SIGINT or SIGTERM stops gracefully (running handlers get `--stop-timeout`
seconds, the rest are given back); a second SIGINT stops at once, and the items still
being handled come back to their queues when their leases expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Callable, Coroutine
from typing import Any, NoReturn

from wrkr import _cli_format as fmt
from wrkr._app import Wrkr
from wrkr._connect import backend_class
from wrkr._errors import InvalidConfig
from wrkr._event import Event
from wrkr._hooks import Handled, Observer
from wrkr._signals import signals_routed
from wrkr._urls import redact

__all__ = ["CommandError", "UsageError", "check_backend", "configure_logging", "load_app",
           "serve"]

logger = logging.getLogger("wrkr.worker")

# Loggers of the drivers wrkr uses: chatty at INFO, so a worker shows their warnings only.
DRIVER_LOGGERS = ("pika", "psycopg", "psycopg.pool", "pymongo", "aiormq", "aio_pika")


class UsageError(Exception):
    """The command line cannot be run as given (exit status 2)."""


class CommandError(Exception):
    """The command ran and failed for a reason outside wrkr's own errors (exit status 1)."""


def load_app(target: str) -> Wrkr:
    """Import `MODULE:ATTR` (from the current directory too) and return its `Wrkr` app."""
    module_name, _, attr = target.partition(":")
    if not module_name or not attr:
        raise UsageError(f"invalid app {target!r}: expected MODULE:ATTR, "
                         "e.g. examples.welcome_email:app")
    if os.getcwd() not in sys.path and "" not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        found: object = importlib.import_module(module_name)
    except ImportError as exc:
        raise CommandError(f"cannot import {module_name!r}: {exc}") from exc
    for part in attr.split("."):
        if not hasattr(found, part):
            raise CommandError(f"{module_name!r} has no attribute {attr!r}")
        found = getattr(found, part)
    if not isinstance(found, Wrkr):
        raise CommandError(f"{target!r} is a {type(found).__name__}, not a wrkr.Wrkr")
    return found


def check_backend(app: Wrkr, target: str, url: str, source: str) -> None:
    """Refuse to run `app` elsewhere than at `url`, which `source` (--url, WRKR_URL) named.

    The module builds its app itself, so the URL reaches it only through its own code:
    running it on another backend while the user believes it runs at `url` would lose
    their work silently.
    """
    if app.url == url or (app.url is None and isinstance(app.backend, backend_class(url))):
        return
    built = type(app.backend).__name__ + (f" at {redact(app.url)}" if app.url else "")
    raise InvalidConfig(
        f"{source} names {redact(url)}, but {target} builds its app on {built}; "
        f"build it with Wrkr.from_url(os.environ['WRKR_URL']) so that {source} reaches it, "
        f"or run without {source}")


def configure_logging(level: str) -> None:
    """Show the `wrkr` logger at `level` on stderr; leave other loggers to the module."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger("wrkr")
    root.setLevel(level.upper())
    root.addHandler(handler)
    root.propagate = False
    for name in DRIVER_LOGGERS:
        driver = logging.getLogger(name)
        if driver.level == logging.NOTSET:
            driver.setLevel(logging.WARNING)


class _Running(Observer):
    """The items whose handlers run now: what a stop waits for."""

    def __init__(self) -> None:
        self.ids: set[str | None] = set()

    def started(self, event: Event) -> None:
        self.ids.add(event.id)

    def handled(self, report: Handled) -> None:
        self.ids.discard(report.event.id)


class _Stopper:
    """What the signals do: ask for a graceful stop, then, on a second SIGINT, exit."""

    def __init__(self, app: Wrkr, timeout: float) -> None:
        self.requested = asyncio.Event()
        self.running = _Running()
        self.timeout = timeout
        app.observe(self.running)

    def on_signal(self, sig: signal.Signals) -> None:
        count = len(self.running.ids)
        if not self.requested.is_set():
            self.requested.set()
            logger.info("%s received: stopping, waiting up to %gs for %d running "
                        "handler(s); press Ctrl-C again to stop at once", sig.name,
                        self.timeout, count)
        elif sig is signal.SIGINT:
            logger.warning("SIGINT again: stopping at once; the %d item(s) being handled "
                           "come back to their queues when their leases expire", count)
            _exit_now(130)
        else:
            logger.info("%s received: already stopping", sig.name)


async def serve(app: Wrkr, url: str | None, stop_timeout: float,
                http: tuple[socket.socket, str | None] | None = None, *,
                banner: bool = True) -> None:
    """Run `app` until SIGINT or SIGTERM, however early in its start the signal comes.

    With `http` (a bound socket and a token), serve the app's `/healthz`, `/readyz` and
    `/metrics` on it meanwhile: from before the start (not ready yet) to after the stop.
    `banner=False` in the children of `--processes`: their supervisor showed it once.
    """
    async with contextlib.AsyncExitStack() as stack:
        if http is not None:
            from wrkr._cli_serve import listening
            from wrkr.web import probes
            from wrkr.web._server import HTTPServer

            sock, token = http
            probe = probes(app, token, loopback_only=token is None)
            await stack.enter_async_context(listening(HTTPServer(probe, sock)))
            logger.info("serving /healthz, /readyz and /metrics on %s:%d",
                        *sock.getsockname()[:2])
        await _run(app, url, stop_timeout, banner)


async def _run(app: Wrkr, url: str | None, stop_timeout: float, banner: bool) -> None:
    stopper = _Stopper(app, stop_timeout)
    with signals_routed(stopper.on_signal):
        await app.start()
        try:
            if banner:
                loop = type(asyncio.get_running_loop()).__module__.split(".")[0]
                print("\n".join(fmt.banner(app, url or app.url, loop)), file=sys.stderr,
                      flush=True)
            if not stopper.requested.is_set():
                await app.listen()
                logger.info("worker %s started; Ctrl-C or SIGTERM stops it", app.worker_id)
                await stopper.requested.wait()
        finally:
            await app.stop(stop_timeout)
    logger.info("worker %s stopped", app.worker_id)


LOOPS = ("asyncio", "uvloop")


def event_loop_factory(name: str) -> Callable[[], asyncio.AbstractEventLoop] | None:
    """Return what builds the event loop `name` (None: asyncio's own).

    uvloop (libuv under asyncio's API) is optional: measured beside the default in
    bench/README.md, it is not worth a dependency for everyone.

    Raises:
        CommandError: `name` is uvloop and it is not installed; says what to install.
    """
    if name == "asyncio":
        return None
    try:
        import uvloop
    except ImportError as exc:
        raise CommandError('--loop uvloop needs uvloop: pip install "wrkr[uvloop]"') from exc
    factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    return factory


def run_on(loop: str, main: Coroutine[Any, Any, None]) -> None:
    """Run `main` to its end on a new event loop of kind `loop` (see `LOOPS`)."""
    factory = event_loop_factory(loop)
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main)


def _exit_now(status: int) -> NoReturn:
    """Leave without waiting for handler threads (a sync handler cannot be interrupted)."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(status)
