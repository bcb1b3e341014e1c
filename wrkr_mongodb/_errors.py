"""Turn the driver's exceptions into `BackendUnavailable`, with no credentials in sight."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator

from pymongo.errors import PyMongoError

from wrkr.backend import BackendUnavailable

UNKNOWN_COMMIT = "UnknownTransactionCommitResult"

_USERINFO = re.compile(r"(mongodb(?:\+srv)?://)[^@/\s]*@")


def redact_url(url: str) -> str:
    """Return `url` with any user name and password replaced by `***`."""
    return _USERINFO.sub(r"\1***@", url)


class ErrorTranslator:
    """Wraps driver errors as `BackendUnavailable` naming the server but no secret.

    Args:
        where: the redacted server address to name in messages.
        secrets: strings (a password) scrubbed from any driver message quoted.
    """

    def __init__(self, where: str, secrets: tuple[str, ...] = ()) -> None:
        self.where = where
        self._secrets = tuple(secret for secret in secrets if secret)

    def scrub(self, text: str) -> str:
        """Return `text` with credentials removed."""
        text = redact_url(text)
        for secret in self._secrets:
            text = text.replace(secret, "***")
        return text

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
