"""The one exception tree of wrkr.

    WrkrError
    ├── InvalidEvent(ValueError)       a bad name, tid, payload, pattern or queue
    ├── InvalidWhen(ValueError)        a `when`, interval or duration that cannot be read
    ├── InvalidConfig(ValueError)      a bad option or URL of an app, backend or subscription
    ├── NotStarted(RuntimeError)       used before `start()` or after `stop()`
    ├── AlreadyStarted(RuntimeError)   `start()` called twice
    ├── NotSupported(NotImplementedError)  the backend lacks a capability
    ├── ItemNotFound(LookupError)      no such item (or not in the state asked for)
    ├── LeaseLost                      the item's lease expired and someone else may hold it
    ├── BackendUnavailable(ConnectionError)  the backend could not be reached; nothing was stored
    └── UnknownBackend(ValueError)     no backend is registered for a URL's scheme

`Fail` is not an error of wrkr's: handlers raise it to park an item as failed.
"""

from __future__ import annotations


class WrkrError(Exception):
    """Root of every error wrkr raises."""


class InvalidEvent(WrkrError, ValueError):
    """An event, pattern or queue name is malformed; the message names the bad value."""


class InvalidWhen(WrkrError, ValueError):
    """A `when`, `once_every`, timeout or backoff value could not be understood."""


class InvalidConfig(WrkrError, ValueError):
    """An option, URL or setting cannot be used; the message names it and the valid ones."""


class NotStarted(WrkrError, RuntimeError):
    """The app (or backend) is not running: call `start()` or use `async with`."""


class AlreadyStarted(WrkrError, RuntimeError):
    """`start()` was called on an app that is already running."""


class NotSupported(WrkrError, NotImplementedError):
    """The backend does not offer a capability; the message names it."""


class ItemNotFound(WrkrError, LookupError):
    """No item has the given id (or it is not in the state the operation needs)."""


class LeaseLost(WrkrError):
    """The delivery's lease expired; the item may now be held by another worker."""


class BackendUnavailable(WrkrError, ConnectionError):
    """The backend could not be reached or refused the operation; nothing was stored."""


class UnknownBackend(WrkrError, ValueError):
    """No installed backend handles the URL's scheme."""


class CallTimedOut(WrkrError, TimeoutError):
    """A blocking call got no answer in time (it may still have taken effect)."""


class Fail(Exception):
    """Raise from a handler to park the item as failed at once, without retries."""

    def __init__(self, reason: str = "failed by handler") -> None:
        super().__init__(reason)
        self.reason = reason


_QUOTE_LIMIT = 500


def quote(value: object) -> str:
    """Return `repr(value)` cut to a few hundred characters, for error messages.

    A typo beside a 5 MB payload must not make a 5-million-character message.
    """
    text = repr(value)
    if len(text) <= _QUOTE_LIMIT:
        return text
    return f"{text[:_QUOTE_LIMIT]}... ({len(text):,} characters)"
