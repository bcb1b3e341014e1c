"""The connection's URL and opening, and the translation of every driver error into wrkr's.

Passwords are masked in every message: credentials never reach a log line or an error.
Reconnecting is not done here: `BrokerBackend` calls `RabbitMQBroker.connect` again.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pika  # type: ignore[import-untyped]
import pika.exceptions  # type: ignore[import-untyped]
from pika.adapters.utils.connection_workflow import (  # type: ignore[import-untyped]
    AMQPConnectorException,
)
from yarl import URL

from wrkr import BackendUnavailable, InvalidConfig, InvalidEvent
from wrkr.backend import redact, scrub
from wrkr_rabbitmq._client import RabbitMQChannelClosed, RabbitMQConnection

#: What the driver and the socket layer raise when the broker cannot be reached.
DRIVER_ERRORS: tuple[type[BaseException], ...] = (
    pika.exceptions.AMQPError,
    AMQPConnectorException,  # name resolution and socket errors while connecting
    RabbitMQChannelClosed,
    OSError,  # ConnectionError and TimeoutError included
)
#: wrkr's own options, beside pika's query parameters.
OWN_OPTIONS = ("prefix", "queue_type")
PIKA_OPTIONS = tuple(sorted(name.removeprefix("_set_url_") for name in dir(pika.URLParameters)
                            if name.startswith("_set_url_")))
PRECONDITION_FAILED = 406
_TOO_LARGE = re.compile(r"message size (\d+) is larger than configured max size (\d+)")


def broker_url(url: str) -> URL:
    """Return `url` without wrkr's own options, its pika options checked.

    Raises:
        InvalidConfig: an option is unknown or its value unusable; the message names
            it and lists the valid options, the password masked.
    """
    parsed = URL(url)
    stripped = parsed.with_query({k: v for k, v in parsed.query.items() if k not in OWN_OPTIONS})
    try:
        pika.URLParameters(str(stripped))
    except ValueError as exc:
        valid = ", ".join(sorted((*OWN_OPTIONS, *PIKA_OPTIONS)))
        raise InvalidConfig(f"invalid RabbitMQ URL {redact(url)}: {scrub(str(exc), url)}; "
                            f"valid options: {valid}") from None
    return stripped


async def open_connection(url: URL) -> RabbitMQConnection:
    """Open a connection to `url`.

    Raises:
        BackendUnavailable: "could not connect to <url>: <why>", the password masked.
    """
    try:
        return await RabbitMQConnection.connect(str(url))
    except DRIVER_ERRORS as exc:
        raise BackendUnavailable(f"could not connect to {redact(str(url))}: "
                                 f"{scrub(_why(exc), str(url))}") from exc


def _why(exc: BaseException) -> str:
    """Say why a connection failed, in a few words, from the innermost cause pika keeps."""
    cause = _innermost(exc)
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, socket.gaierror):
        return f"cannot resolve the host ({cause.strerror})"
    if isinstance(cause, TimeoutError):
        return "timed out"
    if isinstance(cause, pika.exceptions.ProbableAuthenticationError
                  | pika.exceptions.ProbableAccessDeniedError):
        return f"the broker refused the login or the vhost ({cause})"
    return f"{type(cause).__name__}: {cause}"


def _innermost(exc: BaseException) -> BaseException:
    """Follow pika's wrappers (workflow failures, connector errors) down to the cause."""
    while True:
        inner: Any = (getattr(exc, "exception", None)
                      or (getattr(exc, "exceptions", None) or [None])[-1]
                      or (exc.args[0] if exc.args and isinstance(exc.args[0], BaseException)
                          else None))
        if not isinstance(inner, BaseException):
            return exc
        exc = inner


@contextmanager
def unavailable(action: str, url: URL) -> Iterator[None]:
    """Turn driver errors raised inside into `BackendUnavailable` naming `action`.

    A message the broker refuses for its size becomes `InvalidEvent`: publishing it
    again can never succeed.
    """
    try:
        yield
    except BackendUnavailable:
        raise  # already ours (it is a ConnectionError, hence an OSError, too)
    except DRIVER_ERRORS as exc:
        too_large = _too_large(exc)
        if too_large is not None:
            raise too_large from exc
        raise BackendUnavailable(f"RabbitMQ at {redact(str(url))}: could not {action}: "
                                 f"{_masked(exc, url)}") from exc


def _too_large(exc: BaseException) -> InvalidEvent | None:
    """Return the `InvalidEvent` for a message refused as too large, else None."""
    found = _TOO_LARGE.search(str(exc))
    if not isinstance(exc, RabbitMQChannelClosed) or found is None:
        return None
    size, limit = (int(group) for group in found.groups())
    return InvalidEvent(f"the message is {size} bytes, over the broker's limit of {limit} "
                        "bytes (max_message_size); nothing was published")


def _masked(exc: BaseException, url: URL) -> str:
    """Return the exception as text, the password (if any) masked."""
    return scrub(f"{type(exc).__name__}: {str(exc) or repr(exc.args)}", str(url))
