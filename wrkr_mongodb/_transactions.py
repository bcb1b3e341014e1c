"""Running a write in one transaction, retried a bounded number of times.

Only replica sets and sharded clusters have transactions; a standalone server (and the
in-process mock, which has no sessions) keeps the non-transactional path.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pymongo.errors import PyMongoError

from wrkr.backend import Backoff
from wrkr_mongodb._errors import UNKNOWN_COMMIT

TRANSIENT = "TransientTransactionError"
ATTEMPTS = 5
"""Whole transactions tried when one fails with `TransientTransactionError`."""
COMMIT_ATTEMPTS = 3
"""Commits tried while the result is unknown (the driver retries each once itself)."""
BACKOFF = 0.02
"""Seconds, doubled per attempt and jittered: concurrent publishers spread out."""
BACKOFF_MAX = BACKOFF * 2 ** (ATTEMPTS - 2)

T = TypeVar("T")


async def supports_transactions(client: Any) -> bool:
    """Tell whether the server behind `client` runs transactions (one `hello`).

    A replica set member names its set (``setName``); a mongos says ``isdbgrid``.
    The in-process mock implements neither `hello` nor sessions.
    """
    try:
        hello = await client.admin.command("hello")
    except NotImplementedError:
        return False
    return "setName" in hello or hello.get("msg") == "isdbgrid"


async def in_transaction(client: Any, work: Callable[[Any], Awaitable[T]]) -> T:
    """Run `work(session)` in a transaction and commit it, retrying transient failures.

    Args:
        client: an `AsyncMongoClient` whose server supports transactions.
        work: the writes; every operation must be given the session it receives.

    Returns:
        What the committed attempt of `work` returned.

    Raises:
        PyMongoError: the transaction was aborted (nothing of it stored), or, with the
            `UNKNOWN_COMMIT` label, the commit's outcome is unknown.
        Exception: whatever `work` raised; the transaction was aborted first.
    """
    backoff = Backoff(BACKOFF, BACKOFF_MAX)
    async with client.start_session() as session:
        for attempt in range(1, ATTEMPTS + 1):
            await session.start_transaction()
            try:
                result = await work(session)
            except BaseException as exc:
                if session.in_transaction:
                    await session.abort_transaction()  # the driver ignores its errors
                if attempt < ATTEMPTS and _transient(exc):
                    await _back_off(backoff)
                    continue
                raise
            try:
                await _commit(session)
            except PyMongoError as exc:
                if attempt < ATTEMPTS and exc.has_error_label(TRANSIENT):
                    await _back_off(backoff)
                    continue
                raise
            return result
    raise AssertionError("unreachable: the last attempt returns or raises")


async def _commit(session: Any) -> None:
    for attempt in range(1, COMMIT_ATTEMPTS + 1):
        try:
            await session.commit_transaction()
            return
        except PyMongoError as exc:
            if attempt == COMMIT_ATTEMPTS or not exc.has_error_label(UNKNOWN_COMMIT):
                raise


def _transient(exc: BaseException) -> bool:
    return isinstance(exc, PyMongoError) and exc.has_error_label(TRANSIENT)


async def _back_off(backoff: Backoff) -> None:
    await asyncio.sleep(backoff.next() * random.random())
