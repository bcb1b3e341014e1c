"""`wrkr serve` and the worker's `--http`: where to listen, whether that is safe, serving.

Both refuse an address other than loopback (127.0.0.0/8, ::1, localhost) without a
token: whoever reaches the port could read payloads, publish, retry and cancel. The
token comes from `--token` or the `WRKR_TOKEN` environment variable (which keeps it out
of the process list). `wrkr.web` is imported only here, so the CLI runs without the
``wrkr[web]`` extra until one of these is asked for.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
from collections.abc import AsyncIterator, Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from wrkr._app import Wrkr
from wrkr._cli_worker import CommandError, UsageError
from wrkr._signals import signals_routed

if TYPE_CHECKING:
    import socket

    from wrkr.web._server import HTTPServer

__all__ = ["add_serve", "check_bind", "http_address", "listening", "open_socket", "serve",
           "token_of"]

TOKEN_ENV = "WRKR_TOKEN"


def add_serve(commands: Any, url: argparse.ArgumentParser,
              backend_url: Callable[[argparse.Namespace], str]) -> None:
    """Add `wrkr serve` to the subcommands; `backend_url` reads --url as the others do."""
    summary = "Serve the HTTP API, /metrics and the dashboard until SIGINT or SIGTERM."
    parser: argparse.ArgumentParser = commands.add_parser(
        "serve", parents=[url], help=summary,
        description=f"{summary} Listening beyond loopback needs a token.")
    parser.add_argument("--host", default="127.0.0.1", help="default: 127.0.0.1")
    parser.add_argument("--port", type=_port, default=8080, help="default: 8080")
    parser.add_argument("--token", help="every request but /healthz and /readyz needs "
                        f"'Authorization: Bearer T' (default: ${TOKEN_ENV})")
    parser.add_argument("--root-path", default="", metavar="PREFIX",
                        help="the path prefix a proxy serves it under, e.g. /wrkr")
    parser.set_defaults(run=lambda args: _serve_command(args, backend_url))


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"expected a port from 0 to 65535, got {text!r}")
    return int(text)


def _serve_command(args: argparse.Namespace,
                   backend_url: Callable[[argparse.Namespace], str]) -> int:
    token = token_of(args.token)
    check_bind(args.host, token)
    root_path = args.root_path.rstrip("/")
    if root_path and not root_path.startswith("/"):
        raise UsageError(f"invalid --root-path {args.root_path!r}: expected a path like /wrkr")
    url = backend_url(args)
    sock = open_socket(args.host, args.port)
    asyncio.run(serve(url, sock, token, root_path))
    return 0


def http_address(text: str) -> tuple[str, int]:
    """Read `HOST:PORT` (`[::1]:9100` for IPv6); raise `UsageError` naming the bad part."""
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise UsageError(f"invalid --http {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9100")
    return host.strip("[]"), int(port)


def token_of(given: str | None) -> str | None:
    """Return the token: `--token`, else `WRKR_TOKEN`, else None."""
    return given or os.environ.get(TOKEN_ENV) or None


def check_bind(host: str, token: str | None, option: str = "--host") -> None:
    """Refuse (exit 2) to listen beyond loopback without a token, saying why in one line."""
    web = _web()
    if token is None and not web.is_loopback(host):
        raise UsageError(
            f"refusing to listen on {option} {host} without a token: anyone who can reach "
            f"it could read, publish, retry and cancel items; pass --token T (or set "
            f"{TOKEN_ENV}), or listen on 127.0.0.1")


def open_socket(host: str, port: int) -> socket.socket:
    """Bind host:port now, so that a port in use fails before any app starts."""
    try:
        sock: socket.socket = _web().bind(host, port)
        return sock
    except OSError as exc:
        raise CommandError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc


@contextlib.asynccontextmanager
async def listening(server: HTTPServer) -> AsyncIterator[None]:
    """Serve HTTP in the background for the duration of the block."""
    task = asyncio.create_task(server.serve())
    try:
        yield
    finally:
        server.stop()
        await task


async def serve(url: str, sock: socket.socket, token: str | None, root_path: str) -> None:
    """Run `wrkr serve`: start the app at `url`, serve its API until SIGINT or SIGTERM."""
    from wrkr.web import asgi
    from wrkr.web._server import HTTPServer

    stop = asyncio.Event()
    async with Wrkr.from_url(url) as app:
        server = HTTPServer(asgi(app, token=token, loopback_only=token is None), sock,
                            root_path=root_path)
        with signals_routed(lambda sig: stop.set()):
            async with listening(server):
                host, port = sock.getsockname()[:2]
                shown = f"[{host}]" if ":" in host else host
                print(f"wrkr serve: http://{shown}:{port}{root_path}/ (dashboard; API under "
                      "/v1, /metrics, /healthz, /readyz); Ctrl-C stops", file=sys.stderr,
                      flush=True)
                await stop.wait()


def _web() -> ModuleType:
    try:
        from wrkr.web import _server
    except ImportError as exc:
        raise CommandError(str(exc)) from exc
    return _server
