"""One sqlite3 connection on a thread of its own, and sqlite3's errors wrapped.

sqlite3 blocks, so its calls leave the event loop. Each `SQLiteThread` owns one
connection, opened and used only on its thread, and runs one whole primitive there
per call (BEGIN IMMEDIATE, the statements, COMMIT): one hop to the thread and one back
per claim, renewal batch, settlement batch or publish batch. aiosqlite runs the same
design (a thread per connection) but hops once per statement and per fetch, three to
five hops for a claim, each a switch between threads; it would also be a third
dependency.

Locks: every write transaction starts with BEGIN IMMEDIATE, which takes the file's
write lock first or waits for it (sqlite's busy timeout), so no transaction ever fails
half-way on a lock another process holds. A lock held past the timeout becomes
`BackendUnavailable`, never sqlite3's "database is locked".
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from typing import Any, NoReturn, TypeVar

from wrkr.backend import BackendUnavailable, NotStarted

T = TypeVar("T")
Job = tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any], asyncio.AbstractEventLoop]
_LOCKED = ("database is locked", "database table is locked", "database is busy")


@contextlib.contextmanager
def immediate(conn: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """Run the block in a BEGIN IMMEDIATE transaction: committed, or rolled back on error."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield conn
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def unavailable(exc: sqlite3.Error, path: str, busy_timeout: float) -> NoReturn:
    """Raise `BackendUnavailable` for a sqlite3 error, saying what it means for wrkr."""
    text = str(exc).strip() or type(exc).__name__
    if any(text.startswith(locked) for locked in _LOCKED):
        raise BackendUnavailable(
            f"SQLite file {path} stayed locked by another connection for more than "
            f"{busy_timeout:g}s (busy_timeout); nothing was changed") from None
    raise BackendUnavailable(f"SQLite file {path} failed: {text}") from None


def _close(conn: sqlite3.Connection) -> None:
    """The job that ends the thread (never called: the thread sees it and stops)."""


def _deliver(future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
    if future.done():  # the caller was cancelled; the work itself is finished or undone
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class SQLiteThread:
    """Runs functions of a `sqlite3.Connection` on the one thread that owns it.

    Args:
        path: the database file.
        busy_timeout: seconds a statement waits for another connection's lock.
        setup: run on the new connection first (pragmas, migrations).
    """

    def __init__(self, path: str, busy_timeout: float,
                 setup: Callable[[sqlite3.Connection], None]) -> None:
        self.path, self.busy_timeout, self._setup = path, busy_timeout, setup
        self._jobs: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    async def open(self) -> None:
        """Start the thread, connect and run `setup`; raise `BackendUnavailable` if it fails."""
        loop = asyncio.get_running_loop()
        ready: asyncio.Future[None] = loop.create_future()
        self._thread = threading.Thread(target=self._serve, args=(loop, ready),
                                        name=f"wrkr-sqlite:{self.path}", daemon=True)
        self._thread.start()
        try:
            await ready
        except BaseException:  # failed, or cancelled: a thread that did connect closes
            self._thread = None
            self._jobs.put(None)
            raise

    async def close(self) -> None:
        """Close the connection once the calls queued before are done (idempotent)."""
        thread, self._thread = self._thread, None
        if thread is None:
            return
        # The thread says when its connection is closed. (Not `to_thread(thread.join)`:
        # that starts an executor thread, which fails once the interpreter is exiting,
        # where a BlockingWrkr left open is closed by its atexit hook.)
        loop = asyncio.get_running_loop()
        closed: asyncio.Future[None] = loop.create_future()
        self._jobs.put((_close, closed, loop))
        await closed

    @property
    def is_open(self) -> bool:
        """Tell whether the thread and its connection are up."""
        return self._thread is not None

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Run `work(connection)` on the thread and return its result.

        Raises:
            NotStarted: the connection is closed.
            BackendUnavailable: sqlite3 failed (nothing was changed: each write runs
                in a transaction that is rolled back on error).
        """
        if self._thread is None:
            raise NotStarted("SQLiteBackend is not open: start the app (or `await "
                             "backend.open()`) first")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._jobs.put((work, future, loop))
        return await future

    def _serve(self, loop: asyncio.AbstractEventLoop, ready: asyncio.Future[None]) -> None:
        try:
            conn = self._connect()
        except BaseException as exc:  # reported to open(), which raises it
            with contextlib.suppress(RuntimeError):  # open()'s loop closed meanwhile
                loop.call_soon_threadsafe(_deliver, ready, None, exc)
            return
        try:
            loop.call_soon_threadsafe(_deliver, ready, None, None)
        except RuntimeError:  # open()'s loop closed meanwhile: nobody will use it
            conn.close()
            return
        closing: Job | None = None
        try:
            while (job := self._jobs.get()) is not None:
                work, future, job_loop = job
                if work is _close:
                    closing = job
                    break
                result, error = self._call(conn, work)
                with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
                    job_loop.call_soon_threadsafe(_deliver, future, result, error)
        finally:
            conn.close()
            if closing is not None:
                with contextlib.suppress(RuntimeError):
                    closing[2].call_soon_threadsafe(_deliver, closing[1], None, None)

    def _connect(self) -> sqlite3.Connection:
        conn = None
        try:
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None,
                                   check_same_thread=True, cached_statements=64)
            self._setup(conn)
        except sqlite3.Error as exc:
            if conn is not None:
                conn.close()
            unavailable(exc, self.path, self.busy_timeout)
        return conn

    def _call(self, conn: sqlite3.Connection,
              work: Callable[[sqlite3.Connection], Any]) -> tuple[Any, BaseException | None]:
        try:
            return work(conn), None
        except sqlite3.Error as exc:
            try:
                unavailable(exc, self.path, self.busy_timeout)
            except BackendUnavailable as wrapped:
                return None, wrapped
        except BaseException as exc:  # a wrkr error raised inside `work`
            return None, exc
