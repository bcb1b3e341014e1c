"""The `wrkr` command: run a worker, publish events, inspect and control items.

    wrkr worker MODULE:ATTR [--stop-timeout S] [--processes N] [--http HOST:PORT]
                                        run the app until SIGINT / SIGTERM; --http serves
                                        /healthz /readyz /metrics
    wrkr serve [--host H] [--port P] [--token T] [--root-path P]   the HTTP API and dashboard
    wrkr publish NAME [--tid T] [--payload JSON] [--when WHEN] [--once-every INTERVAL]
    wrkr items [--queue Q] [--name N] [--tid T] [--state S] [--limit N] [--offset N] [--json]
    wrkr get ID [--json]                one item in full, payload and error history included
    wrkr cancel [--name N] [--tid T] [--queue Q]    delete pending items, print how many
    wrkr retry ID                       move a failed item back to ready
    wrkr purge [--state failed|done] [--queue Q] [--older-than AGE] [--all]
    wrkr queues [--json]                every queue, subscribed or holding items, per state
    wrkr subscriptions [EVENT] [--json] every (queue, pattern), or those EVENT reaches
    wrkr unsubscribe QUEUE PATTERN      stop routing PATTERN to QUEUE

Every command talks to the backend named by `--url`, else by the environment variable
`WRKR_URL` (read here, when the command runs; never at import), else by `DEFAULT_URL`:
the SQLite file ``wrkr.db`` in the working directory, whose path is printed on stderr,
so that a worker in one terminal and `wrkr publish` in another need no server and no
configuration. A memory:// backend lives inside one process, so only `wrkr worker`
accepts it. `wrkr worker` runs the app its module builds; when a URL is given, that app
must run on it (else the command refuses, saying why): build it with
`Wrkr.from_url(os.environ["WRKR_URL"])`. Without one, `WRKR_URL` is set to the default
before the module is imported, and an app built otherwise runs where it was built.

Exit status: 0 on success, 2 for a usage error, 1 for any other error; an error is one
line on stderr (`wrkr: error: ...`), with the password of any URL replaced by `***`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, NoReturn
from urllib.parse import urlsplit

from wrkr import _cli_format as fmt
from wrkr import _cli_serve as web
from wrkr import _cli_worker as worker
from wrkr._app import Wrkr
from wrkr._cli_worker import CommandError, UsageError
from wrkr._connect import backend_class
from wrkr._errors import InvalidConfig, WrkrError
from wrkr._names import matches
from wrkr._supervisor import CHILD_ENV, supervise
from wrkr._urls import scrub
from wrkr._version import __version__
from wrkr.backend import State

__all__ = ["main"]

Command = Callable[[Wrkr, argparse.Namespace], Awaitable[None]]
Subparsers = Any  # argparse's _SubParsersAction is private
DEFAULT_LIMIT = 50
DEFAULT_URL = "sqlite:///wrkr.db"
"""The backend without --url or WRKR_URL: a file every process started here shares."""


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
                     epilog="The backend is --url URL, else the WRKR_URL environment variable, "
                            f"else {DEFAULT_URL} (wrkr.db in the working directory).")
    parser.add_argument("--version", action="version", version=f"wrkr {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", required=True)
    url = _Parser(add_help=False)
    url.add_argument("--url", help="backend URL (default: the WRKR_URL environment variable, "
                     f"else {DEFAULT_URL})")
    for add in (_add_worker, _add_publish, _add_items, _add_get, _add_cancel, _add_retry,
                _add_purge, _add_queues, _add_subscriptions, _add_unsubscribe):
        add(commands, url)
    web.add_serve(commands, url, _backend_url)
    return parser


def _command(commands: Subparsers, name: str, url: argparse.ArgumentParser,
             summary: str, details: str = "") -> argparse.ArgumentParser:
    parser: argparse.ArgumentParser = commands.add_parser(
        name, parents=[url], help=summary, description=f"{summary} {details}".strip())
    return parser


def _add_worker(commands: Subparsers, url: argparse.ArgumentParser) -> None:
    parser = _command(commands, "worker", url, "Run the Wrkr app at MODULE:ATTR until "
                      "SIGINT or SIGTERM.", "MODULE is imported from the current directory "
                      "too. --url sets WRKR_URL before the import, and the app must then "
                      "run on it. A second Ctrl-C stops at once.")
    parser.add_argument("target", metavar="MODULE:ATTR", help="e.g. examples.welcome_email:app")
    parser.add_argument("--log-level", default="info",
                        choices=["debug", "info", "warning", "error"],
                        help="of the wrkr logger (drivers show warnings only)")
    parser.add_argument("--stop-timeout", type=_seconds, default=10.0, metavar="SECONDS",
                        help="how long a stop waits for running handlers (default: 10)")
    parser.add_argument("--processes", type=_positive_int, default=1, metavar="N",
                        help="run N worker processes under one supervisor, for N cores; "
                             "a child that dies is restarted (default: 1); with --http, "
                             "child K serves on PORT+K-1")
    parser.add_argument("--loop", choices=worker.LOOPS, default="asyncio",
                        help='the event loop (uvloop: pip install "wrkr[uvloop]"; '
                             "default: asyncio)")
    parser.add_argument("--http", metavar="HOST:PORT",
                        help="also serve /healthz, /readyz and /metrics, e.g. 127.0.0.1:9100")
    parser.add_argument("--token", help=f"bearer token for --http (or {web.TOKEN_ENV}); "
                        "needed to listen beyond loopback")
    parser.set_defaults(run=_worker)


def _add_publish(commands: Subparsers, url: argparse.ArgumentParser) -> None:
    parser = _command(commands, "publish", url,
                      "Publish an event; print the ids of the items created, one per line.")
    parser.add_argument("name", metavar="NAME", help="the event name, e.g. ourapp.user.added")
    parser.add_argument("--tid", help="the target id")
    parser.add_argument("--payload", type=_json_object, metavar="JSON",
                        help='a JSON object, e.g. \'{"plan": "pro"}\'')
    parser.add_argument("--when", metavar="WHEN", help='"in 2 hours", "1h30m" or ISO-8601')
    parser.add_argument("--once-every", metavar="INTERVAL",
                        help="publish only if no item with this name and tid is pending")
    parser.set_defaults(run=_with_app(_publish))


def _add_items(commands: Subparsers, url: argparse.ArgumentParser) -> None:
    parser = _command(commands, "items", url, "List items, oldest due first, a page at a time.")
    _add_filters(parser)
    parser.add_argument("--state", choices=[state.value for state in State])
    parser.add_argument("--limit", type=_positive_int, default=DEFAULT_LIMIT, metavar="N",
                        help=f"at most N items (default: {DEFAULT_LIMIT})")
    parser.add_argument("--offset", type=_whole, default=0, metavar="N",
                        help="skip the first N matches (the next page)")
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


def _add_purge(commands: Subparsers, url: argparse.ArgumentParser) -> None:
    parser = _command(commands, "purge", url, "Delete finished items; print how many.",
                      "Pending and processing items are never touched (see cancel).")
    parser.add_argument("--state", choices=["failed", "done"], default="failed",
                        help="which finished items (default: failed)")
    parser.add_argument("--queue", metavar="Q", help="only this queue's")
    parser.add_argument("--older-than", metavar="AGE", help='finished more than AGE ago: "7d"')
    parser.add_argument("--all", action="store_true",
                        help="every queue, any age (needed when neither filter is given)")
    parser.set_defaults(run=_with_app(_purge))


def _add_queues(commands: Subparsers, url: argparse.ArgumentParser) -> None:
    parser = _command(commands, "queues", url, "Count the items of each queue, per state.",
                      "Every subscribed queue is listed, empty ones too.")
    parser.add_argument("--json", action="store_true", help="one JSON object per queue")
    parser.set_defaults(run=_with_app(_queues))


def _add_subscriptions(commands: Subparsers, url: argparse.ArgumentParser) -> None:
    parser = _command(commands, "subscriptions", url, "List the subscriptions as queue and "
                      "pattern.", "With EVENT, only those an event of that name reaches.")
    parser.add_argument("event", metavar="EVENT", nargs="?", help="an event name")
    parser.add_argument("--json", action="store_true", help="one JSON object per line")
    parser.set_defaults(run=_with_app(_subscriptions))


def _add_unsubscribe(commands: Subparsers, url: argparse.ArgumentParser) -> None:
    parser = _command(commands, "unsubscribe", url, "Stop routing PATTERN to QUEUE.",
                      "Items already queued stay.")
    parser.add_argument("queue", metavar="QUEUE")
    parser.add_argument("pattern", metavar="PATTERN")
    parser.set_defaults(run=_with_app(_unsubscribe))


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


def _whole(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a whole number >= 0, got {text!r}")
    return int(text)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected seconds >= 0, got {text!r}")
    return value


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
        _say_default()
        return DEFAULT_URL
    if urlsplit(url).scheme == "memory":
        raise InvalidConfig(
            f"{url!r} lives inside one process, so this command would see an empty store of "
            "its own, not your app's: use a backend that processes share (sqlite://, "
            "postgresql://, amqp://, mongodb://), or inspect a memory app from its own code "
            "(app.items())")
    return url


def _say_default() -> None:
    """Tell, on stderr, which file the default backend is (it depends on where one runs)."""
    path = os.path.join(os.getcwd(), "wrkr.db")
    print(f"wrkr: no --url or WRKR_URL: using {DEFAULT_URL} ({path})", file=sys.stderr,
          flush=True)


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
    # One more than a page tells whether there is a next one.
    events = await app.items(queue=args.queue, name=args.name, tid=args.tid,
                             state=args.state, limit=args.limit + 1, offset=args.offset)
    page = events[:args.limit]
    lines = ([fmt.item_json(event) for event in page] if args.json
             else fmt.table(fmt.ITEM_COLUMNS, [fmt.item_row(event) for event in page]))
    _print_lines(lines)
    if len(events) > args.limit:
        print(f"wrkr: more items: add --offset {args.offset + args.limit} for the next "
              f"{args.limit}", file=sys.stderr)


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


async def _purge(app: Wrkr, args: argparse.Namespace) -> None:
    if args.queue is None and args.older_than is None and not args.all:
        raise UsageError(f"purge of every {args.state} item needs --all "
                         "(or narrow it with --queue, --older-than)")
    print(await app.purge(queue=args.queue, state=args.state, older_than=args.older_than))


async def _queues(app: Wrkr, args: argparse.Namespace) -> None:
    counts = await app.counts()
    if args.json:
        _print_lines([fmt.counts_json(queue, counts[queue]) for queue in counts])
        return
    headers = ["queue", *(state.value for state in State)]
    _print_lines(fmt.table(headers, fmt.counts_rows(counts)))


async def _subscriptions(app: Wrkr, args: argparse.Namespace) -> None:
    pairs = await app.subscriptions()
    if args.event is not None:
        reached = set(await app.subscriptions(args.event))
        pairs = [(queue, pattern) for queue, pattern in pairs
                 if queue in reached and matches(pattern, args.event)]
    if args.json:
        _print_lines([fmt.subscription_json(queue, pattern) for queue, pattern in pairs])
    else:
        _print_lines(fmt.table(["queue", "pattern"], [list(pair) for pair in pairs]))


async def _unsubscribe(app: Wrkr, args: argparse.Namespace) -> None:
    pairs = await app.subscriptions()
    if (args.queue, args.pattern) not in pairs:
        held = [pattern for queue, pattern in pairs if queue == args.queue]
        raise CommandError(f"queue {args.queue!r} is not subscribed to {args.pattern!r}; "
                           f"its patterns: {', '.join(map(repr, held)) or 'none'}")
    await app.unsubscribe(args.queue, args.pattern)
    print(f"unsubscribed {args.queue} from {args.pattern} (items already queued stay)")


def _print_lines(lines: Sequence[str]) -> None:
    for line in lines:
        print(line)


# -- the worker ------------------------------------------------------------------------------


def _worker(args: argparse.Namespace) -> int:
    http = None
    if args.http is not None:
        host, port = web.http_address(args.http)
        token = web.token_of(args.token)
        web.check_bind(host, token, "--http")
        if CHILD_ENV in os.environ:  # child K of --processes serves on PORT+K-1
            port += int(os.environ[CHILD_ENV]) - 1
        if args.processes > 1:
            if token is not None:  # to the children by the environment, not in argv
                os.environ[web.TOKEN_ENV] = token
        else:
            http = (web.open_socket(host, port), token)
    if args.url:
        os.environ["WRKR_URL"] = args.url
    url = os.environ.get("WRKR_URL") or None
    if url is None:  # a module built from WRKR_URL then runs on the default
        os.environ["WRKR_URL"] = DEFAULT_URL
    app = worker.load_app(args.target)
    if url is not None:
        worker.check_backend(app, args.target, url, "--url" if args.url else "WRKR_URL")
    elif app.url == DEFAULT_URL:
        _say_default()
        url = DEFAULT_URL
    worker.configure_logging(args.log_level)
    worker.event_loop_factory(args.loop)  # a missing uvloop is said before anything starts
    if args.processes > 1:
        return _supervise(app, url, args)
    worker.run_on(args.loop, worker.serve(app, url, args.stop_timeout, http,
                                          banner=CHILD_ENV not in os.environ))
    return 0


def _supervise(app: Wrkr, url: str | None, args: argparse.Namespace) -> int:
    if isinstance(app.backend, backend_class("memory://")):
        raise UsageError(f"--processes {args.processes} needs a backend the processes share; "
                         "a memory:// backend lives inside one process (use sqlite:///wrkr.db "
                         "or a server)")
    banner = fmt.banner(app, url or app.url, args.loop)
    banner[2] = f"  workers:  {args.processes} processes (each its own worker id)"
    print("\n".join(banner), file=sys.stderr, flush=True)
    command = [sys.executable, "-m", "wrkr", "worker", args.target, "--log-level",
               args.log_level, "--stop-timeout", str(args.stop_timeout), "--loop", args.loop]
    if args.http is not None:
        command += ["--http", args.http]
    return supervise(command, args.processes, args.stop_timeout)


if __name__ == "__main__":
    sys.exit(main())
