"""A TCP proxy on 127.0.0.1 that a test can cut, to take a real backend away mid-test."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class Proxy:
    """Forwards 127.0.0.1:`port` to `target`; `cut()` closes it and every connection."""

    def __init__(self, loop: asyncio.AbstractEventLoop, server: asyncio.Server) -> None:
        self.loop = loop
        self.server = server
        self.port: int = server.sockets[0].getsockname()[1]
        self.writers: set[asyncio.StreamWriter] = set()

    def cut(self) -> None:
        """Stop accepting and close every open connection; wait until done."""
        asyncio.run_coroutine_threadsafe(self._cut(), self.loop).result(10)

    async def _cut(self) -> None:
        self.server.close()
        for writer in list(self.writers):
            writer.transport.abort()


@contextmanager
def tcp_proxy(target_port: int) -> Iterator[Proxy]:
    """Run a proxy to 127.0.0.1:`target_port` in a thread for the duration of the block."""
    ready: concurrent.futures.Future[Proxy] = concurrent.futures.Future()
    done: list[asyncio.Event] = []

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass
        finally:
            writer.transport.abort()

    async def main() -> None:
        proxy: Proxy

        async def accept(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", target_port)
            proxy.writers |= {writer, up_writer}
            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

        server = await asyncio.start_server(accept, "127.0.0.1", 0)
        proxy = Proxy(asyncio.get_running_loop(), server)
        done.append(asyncio.Event())
        ready.set_result(proxy)
        await done[0].wait()
        await proxy._cut()

    thread = threading.Thread(target=lambda: asyncio.run(main()), daemon=True)
    thread.start()
    proxy = ready.result(10)
    try:
        yield proxy
    finally:
        proxy.loop.call_soon_threadsafe(done[0].set)
        thread.join(10)
