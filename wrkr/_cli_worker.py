"""`wrkr worker`: find the app, check it runs where asked, show it, run it, stop it.

A first SIGINT or SIGTERM stops gracefully (running handlers get `--stop-timeout`
seconds, the rest are given back); a second SIGINT stops at once, and the items still
being handled come back to their queues when their leases expire.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import os
import signal
import sys
from typing import NoReturn

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


async def serve(app: Wrkr, url: str | None, stop_timeout: float, *, banner: bool = True) -> None:
    """Run `app` until SIGINT or SIGTERM, however early in its start the signal comes.

    `banner=False` in the children of `--processes`: their supervisor showed it once.
    """
    stopper = _Stopper(app, stop_timeout)
    with signals_routed(stopper.on_signal):
        await app.start()
        try:
            if banner:
                print("\n".join(fmt.banner(app, url or app.url)), file=sys.stderr, flush=True)
            if not stopper.requested.is_set():
                await app.listen()
                logger.info("worker %s started; Ctrl-C or SIGTERM stops it", app.worker_id)
                await stopper.requested.wait()
        finally:
            await app.stop(stop_timeout)
    logger.info("worker %s stopped", app.worker_id)


def _exit_now(status: int) -> NoReturn:
    """Leave without waiting for handler threads (a sync handler cannot be interrupted)."""
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(status)
