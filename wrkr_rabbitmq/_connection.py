"""One AMQP connection per backend, opened on demand, reopened after it drops.

Every driver exception is turned into `BackendUnavailable` here, with the URL's
password masked: credentials never reach a log line or an error message.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager

import pika.exceptions  # type: ignore[import-untyped]
from yarl import URL

from wrkr._errors import BackendUnavailable
from wrkr.backend import redact, scrub
from wrkr_rabbitmq._client import RabbitMQChannel, RabbitMQChannelClosed, RabbitMQConnection

logger = logging.getLogger("wrkr.rabbitmq")

#: What the driver and the socket layer raise when the broker cannot be reached.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPError,
    RabbitMQChannelClosed,
    OSError,  # ConnectionError and TimeoutError included
)


@contextmanager
def unavailable(action: str, url: URL) -> Iterator[None]:
    """Turn driver errors raised inside into `BackendUnavailable` naming `action`."""
    try:
        yield
    except BackendUnavailable:
        raise  # already ours (it is a ConnectionError, hence an OSError, too)
    except DRIVER_ERRORS as exc:
        raise BackendUnavailable(f"RabbitMQ at {redact(str(url))}: could not {action}: "
                                 f"{_masked(exc, url)}") from exc


def _masked(exc: BaseException, url: URL) -> str:
    """Return the exception as text, the password (if any) masked."""
    return scrub(f"{type(exc).__name__}: {str(exc) or repr(exc.args)}", str(url))


class RabbitMQConnector:
    """Hands out channels on one shared connection, reconnecting when it has dropped."""

    def __init__(self, url: URL) -> None:
        self.url = url
        self._connection: RabbitMQConnection | None = None
        self._lock = asyncio.Lock()
        self.closed = False

    @property
    def is_connected(self) -> bool:
        """Tell whether the connection is open right now."""
        return self._connection is not None and not self._connection.is_closed

    async def connection(self) -> RabbitMQConnection:
        """Return the open connection, opening a new one if needed.

        Raises:
            BackendUnavailable: the broker cannot be reached.
        """
        async with self._lock:
            if self.closed:
                raise BackendUnavailable("the RabbitMQ backend is closed")
            if self._connection is None or self._connection.is_closed:
                with unavailable("connect", self.url):
                    self._connection = await RabbitMQConnection.connect(str(self.url))
            return self._connection

    async def channel(self, *, prefetch: int | None = None,
                      transactional: bool = False) -> RabbitMQChannel:
        """Return a new channel with publisher confirms, or transactions if `transactional`
        (and QoS `prefetch` if given).

        Raises:
            BackendUnavailable: the broker cannot be reached.
        """
        connection = await self.connection()
        with unavailable("open a channel", self.url):
            channel = await connection.channel(transactional=transactional)
            if prefetch is not None:
                await channel.qos(prefetch)
            return channel

    async def drop(self) -> None:
        """Close the connection now, as a dying process would: unacked messages return."""
        connection, self._connection = self._connection, None
        if connection is not None and not connection.is_closed:
            with unavailable("close the connection", self.url):
                await connection.close()

    async def close(self) -> None:
        """Close for good; later calls raise `BackendUnavailable`. Idempotent."""
        self.closed = True
        try:
            await self.drop()
        except BackendUnavailable as exc:
            logger.debug("closing the RabbitMQ connection: %s", exc)


async def reconnect_delay(attempt: int) -> None:
    """Wait before reconnecting: 0.1 s doubling to 2 s, so a restarting broker is not hammered."""
    await asyncio.sleep(min(2.0, 0.1 * 2**attempt))
