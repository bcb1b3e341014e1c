"""Serve an ASGI app with uvicorn inside a running event loop, on a socket bound first.

Binding first means a port in use fails at once with the OS's reason, before any app
starts, and that port 0 gives the port chosen. uvicorn's own signal handling is left
out: `wrkr serve` and `wrkr worker` route SIGINT and SIGTERM themselves and stop the
server with `stop()`.
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator

import uvicorn
from starlette.types import ASGIApp

from wrkr.web._guard import is_loopback

__all__ = ["HTTPServer", "bind", "is_loopback"]


def bind(host: str, port: int) -> socket.socket:
    """Return a listening TCP socket on host:port; raise `OSError` saying why not."""
    family, kind, proto, _, address = socket.getaddrinfo(
        host.strip("[]"), port, type=socket.SOCK_STREAM)[0]
    sock = socket.socket(family, kind, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(address)
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


class _QuietServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signals alone."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class HTTPServer:
    """One uvicorn server on a bound socket: `await serve()` until `stop()`."""

    def __init__(self, app: ASGIApp, sock: socket.socket, *, root_path: str = "",
                 log_level: str = "warning") -> None:
        self.sock = sock
        config = uvicorn.Config(app, lifespan="off", log_level=log_level, access_log=False,
                                root_path=root_path, server_header=False)
        self._server = _QuietServer(config)

    @property
    def port(self) -> int:
        """Return the port the socket listens on (the one chosen, when bound to 0)."""
        port: int = self.sock.getsockname()[1]
        return port

    async def serve(self) -> None:
        """Answer requests until `stop()`, then finish the ones under way."""
        try:
            await self._server.serve(sockets=[self.sock])
        finally:
            self.sock.close()

    def stop(self) -> None:
        """Ask the server to stop; `serve()` returns once it has."""
        self._server.should_exit = True
