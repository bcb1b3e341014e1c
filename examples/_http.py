"""Just enough HTTP/1.1 on asyncio streams for the examples' fake services and probes.

One request per connection, JSON bodies, no dependency: the examples run on the base
install. Not a web framework; `wrkr.web` serves the real API.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

Route = Callable[[str, str, Any], Awaitable[tuple[int, Any]]]
"""`route(method, path, body) -> (status, body)`: a server's one handler."""

_REASONS = {200: "OK", 404: "Not Found", 422: "Unprocessable Content",
            503: "Service Unavailable"}


async def serve(route: Route, port: int = 0) -> asyncio.Server:
    """Serve `route` on 127.0.0.1:`port` (0: any free port; see `port_of`)."""

    async def one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, path, _ = (await reader.readline()).decode().split(" ", 2)
            length = 0
            while (line := (await reader.readline()).strip()) != b"":
                name, _, value = line.decode().partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            body = orjson.loads(await reader.readexactly(length)) if length else None
            status, answer = await route(method, path, body)
            data = orjson.dumps(answer)
            writer.write(f"HTTP/1.1 {status} {_REASONS.get(status, '-')}\r\nContent-Type: "
                         f"application/json\r\nContent-Length: {len(data)}\r\n"
                         "Connection: close\r\n\r\n".encode() + data)
            await writer.drain()
        finally:
            writer.close()

    return await asyncio.start_server(one, "127.0.0.1", port)


def port_of(server: asyncio.Server) -> int:
    """Return the port a server listens on."""
    return int(server.sockets[0].getsockname()[1])


async def call(url: str, body: Any = None, *, method: str = "POST",
               timeout: float = 10.0) -> tuple[int, Any]:
    """Send one request with a JSON body to `url` ("http://host:port/path"); return
    the status and the decoded JSON answer (None if empty)."""
    host_port, _, path = url.removeprefix("http://").partition("/")
    host, _, port = host_port.partition(":")
    data = b"" if body is None else orjson.dumps(body)
    async with asyncio.timeout(timeout):
        reader, writer = await asyncio.open_connection(host, int(port or 80))
        try:
            writer.write(f"{method} /{path} HTTP/1.1\r\nHost: {host_port}\r\nContent-Type: "
                         f"application/json\r\nContent-Length: {len(data)}\r\n"
                         "Connection: close\r\n\r\n".encode() + data)
            await writer.drain()
            status = int((await reader.readline()).split()[1])
            while (await reader.readline()).strip() != b"":
                pass
            answer = await reader.read()
        finally:
            writer.close()
    return status, orjson.loads(answer) if answer else None
