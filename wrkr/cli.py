"""The `wrkr` command: run a worker, publish events, inspect and control items.

    wrkr worker MODULE:ATTR             run the app at MODULE:ATTR until SIGINT / SIGTERM
    wrkr publish NAME [--tid T] [--payload JSON] [--when WHEN] [--once-every INTERVAL]
    wrkr items [--queue Q] [--name N] [--tid T] [--state S] [--limit N] [--json]
    wrkr get ID [--json]                one item in full, payload and error history included
    wrkr cancel [--name N] [--tid T] [--queue Q]    delete pending items, print how many
    wrkr retry ID                       move a failed item back to ready
    wrkr queues [--json]                how many items each queue holds, per state

Every command but `worker` talks to the backend named by `--url`, else by the
environment variable `WRKR_URL` (read here, when the command runs; never at import).
`wrkr worker` runs the app its module builds, on that app's own backend; there `--url`
only sets `WRKR_URL` before the module is imported, for a module that builds its app
with `Wrkr.from_url(os.environ.get("WRKR_URL", "memory://"))`.

Exit status: 0 on success, 2 for a usage error, 1 for any other error; an error is one
line on stderr (`wrkr: error: ...`), with the password of any URL replaced by `***`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import json
import logging
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterator, Sequence
from typing import Any, NoReturn

from wrkr import _cli_format as fmt
from wrkr._app import Wrkr
from wrkr._connect import redact
from wrkr._errors import NotSupported, WrkrError
from wrkr._urls import scrub
from wrkr.backend import Capability, State

__all__ = ["main"]

logger = logging.getLogger("wrkr.cli")

Command = Callable[[Wrkr, argparse.Namespace], Awaitable[None]]


class UsageError(Exception):
    """The command line cannot be run as given (exit status 2)."""


class CommandError(Exception):
    """The command ran and failed for a reason outside wrkr's own errors (exit status 1)."""


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line, reported by `main`."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see '{self.prog} --help')")


def main(argv: list[str] | None = None) -> int:
    """Run the `wrkr` command with `argv` (default: `sys.argv[1:]`); return the exit status."""
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = build_parser().parse_args(argv)
        status: int = args.run(args)
        return status
    except UsageError as exc:
        return _fail(str(exc), 2, argv)
    except (WrkrError, CommandError) as exc:
        return _fail(str(exc), 1, argv)
    except KeyboardInterrupt:
        return 130
    except SystemExit as exc:  # --help and --version end the parser this way
        return exc.code if isinstance(exc.code, int) else 0


def _fail(message: str, status: int, argv: Sequence[str]) -> int:
    for text in [*argv, os.environ.get("WRKR_URL", "")]:
        if "://" in text:
            with contextlib.suppress(ValueError):  # not a URL after all
                message = scrub(message, text)
    print(f"wrkr: error: {message}", file=sys.stderr)
    return status


# -- the parser ------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    """Return the parser of the `wrkr` command and its subcommands."""
    parser = _Parser(prog="wrkr", description="Publish, inspect and consume wrkr events.",
                     epilog="The backend is --url URL, else the WRKR_URL environment variable.")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    url = _Parser(add_help=False)
    url.add_argument("--url", help="backend URL (default: the WRKR_URL environment variable)")
    for add in (_add_worker, _add_publish, _add_items, _add_get, _add_cancel, _add_retry,
                _add_queues):
        add(commands, url)
    return parser


Subparsers = Any  # argparse's _SubParsersAction is private


def _command(commands: Subparsers, name: str, url: argparse.ArgumentParser,
             summary: str, details: str = "") -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name, parents=[url], help=summary, description=f"{summary} {details}".strip())
    return parser


def _add_worker(commands: Subparsers, url: argparse.ArgumentParser) -> None:
    parser = _command(commands, "worker", url, "Run the Wrkr app at MODULE:ATTR until "
                      "SIGINT or SIGTERM.", "MODULE is imported from the current directory "
                      "too. The module builds its own app, so --url only sets WRKR_URL "
                      "before the import.")
    parser.add_argument("target", metavar="MODULE:ATTR", help="e.g. examples.welcome_email:app")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"])
    parser.set_defaults(run=_worker)


def _add_publish(commands: Subparsers, url: argparse.ArgumentParser) -> None:
    parser = _command(commands, "publish", url,
                      "Publish an event; print the ids of the items created, one per line.")
    parser.add_argument("name", metavar="NAME", help="the event name, e.g. ourapp.user.added")
    parser.add_argument("--tid", help="the target id")
    parser.add_argument("--payload", type=_json_object, metavar="JSON",
                        help='a JSON object, e.g. \'{"plan": "pro"}\'')
    parser.add_argument("--when", metavar="WHEN", help='"in 2 hours", "7 days" or ISO-8601')
    parser.add_argument("--once-every", metavar="INTERVAL",
                        help="publish only if no item with this name and tid is pending")
    parser.set_defaults(run=_with_app(_publish))


def _add_items(commands: Subparsers, url: argparse.ArgumentParser) -> None:
    parser = _command(commands, "items", url, "List items, oldest due first.")
    _add_filters(parser)
    parser.add_argument("--state", choices=[state.value for state in State])
    parser.add_argument("--limit", type=_positive_int, metavar="N")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.set_defaults(run=_with_app(_items))


def _add_get(commands: Subparsers, url: argparse.ArgumentParser) -> None:
    parser = _command(commands, "get", url, "Show one item, payload and errors included.")
    parser.add_argument("id", metavar="ID")
    parser.add_argument("--json", action="store_true", help="as one JSON object")
    parser.set_defaults(run=_with_app(_get))


def _add_cancel(commands: Subparsers, url: argparse.ArgumentParser) -> None:
    parser = _command(commands, "cancel", url,
                      "Delete the pending items matching every filter; print how many.")
    _add_filters(parser)
    parser.set_defaults(run=_with_app(_cancel))


def _add_retry(commands: Subparsers, url: argparse.ArgumentParser) -> None:
    parser = _command(commands, "retry", url, "Move a failed item back to ready.")
    parser.add_argument("id", metavar="ID")
    parser.set_defaults(run=_with_app(_retry))


def _add_queues(commands: Subparsers, url: argparse.ArgumentParser) -> None:
    parser = _command(commands, "queues", url, "Count the items of each queue, per state.")
    parser.add_argument("--json", action="store_true", help="one JSON object per queue")
    parser.set_defaults(run=_with_app(_queues))


def _add_filters(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--queue", metavar="Q")
    parser.add_argument("--name", metavar="NAME", help="an event name (no wildcards)")
    parser.add_argument("--tid", metavar="T")


def _json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"invalid JSON {text!r}: {exc}") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number >= 1, got {text!r}")
    return int(text)


# -- commands on a backend ---------------------------------------------------------------


def _with_app(command: Command) -> Callable[[argparse.Namespace], int]:
    """Wrap `command` to run on a started app whose backend is `--url` or `WRKR_URL`."""

    def run(args: argparse.Namespace) -> int:
        url = _backend_url(args)
        asyncio.run(_on_app(url, command, args))
        return 0

    return run


def _backend_url(args: argparse.Namespace) -> str:
    url: str | None = args.url or os.environ.get("WRKR_URL")
    if not url:
        raise UsageError("no backend: pass --url URL or set WRKR_URL "
                         "(e.g. postgresql://user@host/db)")
    return url


async def _on_app(url: str, command: Command, args: argparse.Namespace) -> None:
    async with Wrkr.from_url(url) as app:
        await command(app, args)


async def _publish(app: Wrkr, args: argparse.Namespace) -> None:
    event = {"name": args.name, "tid": args.tid, "payload": args.payload, "when": args.when,
             "once_every": args.once_every}
    ids = await app.publish({k: v for k, v in event.items() if v is not None})
    for item_id in ids:
        print(item_id)
    if not ids:  # not an error, but a user expecting ids deserves to know why
        why = "a pending --once-every item already exists" if args.once_every else (
            f"no queue is subscribed to {args.name!r}")
        print(f"wrkr: nothing stored: {why}", file=sys.stderr)


async def _items(app: Wrkr, args: argparse.Namespace) -> None:
    events = await app.items(queue=args.queue, name=args.name, tid=args.tid,
                             state=args.state, limit=args.limit)
    lines = ([fmt.item_json(event) for event in events] if args.json
             else fmt.table(fmt.ITEM_COLUMNS, [fmt.item_row(event) for event in events]))
    _print_lines(lines)


async def _get(app: Wrkr, args: argparse.Namespace) -> None:
    event = await app.get(args.id)
    _print_lines([fmt.item_json(event)] if args.json else fmt.item_text(event))


async def _cancel(app: Wrkr, args: argparse.Namespace) -> None:
    if args.name is None and args.tid is None and args.queue is None:
        raise UsageError("cancel needs at least one of --name, --tid, --queue")
    print(await app.cancel(name=args.name, tid=args.tid, queue=args.queue))


async def _retry(app: Wrkr, args: argparse.Namespace) -> None:
    await app.retry(args.id)
    print(f"retried {args.id}")


async def _queues(app: Wrkr, args: argparse.Namespace) -> None:
    if Capability.QUERY not in app.backend.capabilities:
        raise NotSupported(f"{type(app.backend).__name__} does not support "
                           f"'{Capability.QUERY}', needed for 'wrkr queues'")
    counts = await app.backend.counts()
    if args.json:
        _print_lines([fmt.counts_json(queue, counts[queue]) for queue in sorted(counts)])
        return
    headers = ["queue", *(state.value for state in State)]
    _print_lines(fmt.table(headers, fmt.counts_rows(counts)))


def _print_lines(lines: Sequence[str]) -> None:
    for line in lines:
        print(line)


# -- the worker ------------------------------------------------------------------------------


def _worker(args: argparse.Namespace) -> int:
    if args.url:
        os.environ["WRKR_URL"] = args.url
    app = load_app(args.target)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    asyncio.run(_serve(app))
    return 0


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


async def _serve(app: Wrkr) -> None:
    """Run `app` until SIGINT or SIGTERM, however early in its start the signal comes."""
    requested = asyncio.Event()
    with _signals_set(requested):
        await app.start()
        logger.info("worker %s started on %s (WRKR_URL=%s); stop it with Ctrl-C or SIGTERM",
                    app.worker_id, type(app.backend).__name__,
                    redact(os.environ.get("WRKR_URL", "unset")))
        if not requested.is_set():
            await _run_until(app, requested)
    await app.stop()
    logger.info("worker %s stopped", app.worker_id)


async def _run_until(app: Wrkr, requested: asyncio.Event) -> None:
    # app.run() installs its own signal handlers once it runs; until then ours stand in.
    runner = asyncio.create_task(app.run())
    waiter = asyncio.create_task(requested.wait())
    await asyncio.wait({runner, waiter}, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    if not runner.done():
        await app.stop()
    await runner


@contextlib.contextmanager
def _signals_set(event: asyncio.Event) -> Iterator[None]:
    loop = asyncio.get_running_loop()
    installed = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(sig, event.set)
            installed.append(sig)
    try:
        yield
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)


if __name__ == "__main__":
    sys.exit(main())
