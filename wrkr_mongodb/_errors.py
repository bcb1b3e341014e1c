"""Turn the driver's exceptions into `BackendUnavailable`, with no credentials in sight."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from pymongo.errors import PyMongoError

from wrkr.backend import BackendUnavailable, redact, scrub

UNKNOWN_COMMIT = "UnknownTransactionCommitResult"


class MongoDBErrors:
    """Wraps driver errors as `BackendUnavailable` naming the server but no secret.

    Args:
        where: the server and database to name in messages (its password is masked).
        url: the URL as given, whose password is scrubbed from any driver message.
    """

    def __init__(self, where: str, url: str) -> None:
        self.where = redact(where)
        self.url = url

    def scrub(self, text: str) -> str:
        """Return `text` with the URL's password removed."""
        return scrub(text, self.url)

    @contextlib.contextmanager
    def unavailable(self, doing: str) -> Iterator[None]:
        """Raise `BackendUnavailable` for any driver error raised in the block.

        Args:
            doing: what the block does, for the message ("claiming from queue 'q'").
        """
        try:
            yield
        except PyMongoError as exc:
            message = self.scrub(str(exc).splitlines()[0] if str(exc) else "")
            raise BackendUnavailable(
                f"MongoDB at {self.where} failed while {doing}: "
                f"{type(exc).__name__}: {message}{_outcome(exc)}"
            ) from exc


def _outcome(exc: PyMongoError) -> str:
    if not exc.has_error_label(UNKNOWN_COMMIT):
        return ""
    return ("; the outcome is unknown: the connection was lost while the server was "
            "committing, so the batch may be stored whole or not at all, and publishing "
            "again may duplicate it")
