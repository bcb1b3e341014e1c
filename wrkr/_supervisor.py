"""`wrkr worker --processes N`: N worker processes under one supervisor, for many cores.

One Python process runs one event loop on one core; handlers that compute, and the
core's own per-item work, stop scaling there. The supervisor starts N copies of the
same `wrkr worker` command as child processes (fresh interpreters, not forks: a fork
of a process holding connections, threads or a running loop is unsafe), each with its
own connections, all consuming the same queues, so the backend shares the work out.

- A first SIGINT or SIGTERM is passed on to every child as SIGTERM: each stops
  gracefully, as a lone worker does; the supervisor waits for them and exits 0 if all
  stopped cleanly. A second SIGINT kills the children at once (exit 130); their items
  come back when their leases end.
- A child that exits while nobody asked it to is restarted, after 1 s doubling up to
  30 s if it keeps dying young (a backend that is down); one that ran a minute starts
  again at once.
- On Linux a child gets SIGTERM if the supervisor itself dies (PR_SET_PDEATHSIG), so a
  killed supervisor leaves no orphaned workers behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Sequence

from wrkr._signals import signals_routed

__all__ = ["CHILD_ENV", "supervise"]

logger = logging.getLogger("wrkr.worker")

CHILD_ENV = "WRKR_WORKER_PROCESS"
"""Set in each child to its number (1..N): the child shows no banner of its own."""

RESTART_MIN, RESTART_MAX = 1.0, 30.0  # seconds before restarting a child that died young
RAN_LONG_ENOUGH = 60.0  # seconds: a child that ran this long is restarted at once
KILL_AFTER = 10.0  # seconds past the children's own stop timeout before they are killed


class _Supervisor:
    def __init__(self, command: Sequence[str], processes: int, stop_timeout: float) -> None:
        self.command = list(command)
        self.processes = processes
        self.stop_timeout = stop_timeout
        self.stopping = asyncio.Event()
        self.children: dict[int, asyncio.subprocess.Process] = {}

    def on_signal(self, sig: signal.Signals) -> None:
        if not self.stopping.is_set():
            self.stopping.set()
            logger.info("%s received: stopping %d worker process(es), each waiting up to "
                        "%gs for its running handlers; press Ctrl-C again to stop at once",
                        sig.name, len(self.children), self.stop_timeout)
            self._send(signal.SIGTERM)
        elif sig is signal.SIGINT:
            logger.warning("SIGINT again: killing the worker processes; the items they were "
                           "handling come back to their queues when their leases expire")
            self._send(signal.SIGKILL)
            for stream in (sys.stdout, sys.stderr):
                stream.flush()
            os._exit(130)
        else:
            logger.info("%s received: already stopping", sig.name)

    def _send(self, sig: signal.Signals) -> None:
        for child in self.children.values():
            if child.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(sig)

    async def run(self) -> int:
        with signals_routed(self.on_signal):
            statuses = await asyncio.gather(*(self._keep(number)
                                              for number in range(1, self.processes + 1)))
        return 0 if all(status == 0 for status in statuses) else 1

    async def _keep(self, number: int) -> int:
        """Run child `number` until a stop is asked; restart it whenever it dies before."""
        pause = RESTART_MIN
        while True:
            started = time.monotonic()
            child = await asyncio.create_subprocess_exec(
                *self.command, env={**os.environ, CHILD_ENV: str(number)},
                preexec_fn=_die_with_parent)
            self.children[number] = child
            if self.stopping.is_set():  # the stop came while it was starting
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signal.SIGTERM)
            status = await self._wait(child)
            if self.stopping.is_set():
                return status
            ran = time.monotonic() - started
            pause = 0.0 if ran >= RAN_LONG_ENOUGH else pause
            logger.warning("worker process %d (pid %d) exited with status %d after %.1fs; "
                           "starting it again in %.0fs", number, child.pid, status, ran, pause)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(pause):
                    await self.stopping.wait()
            if self.stopping.is_set():
                return 0
            pause = min(max(pause * 2, RESTART_MIN), RESTART_MAX)

    async def _wait(self, child: asyncio.subprocess.Process) -> int:
        """Wait for `child`; once stopping, give it its stop timeout, then kill it."""
        waiting = asyncio.ensure_future(child.wait())
        stop = asyncio.ensure_future(self.stopping.wait())
        try:
            await asyncio.wait({waiting, stop}, return_when=asyncio.FIRST_COMPLETED)
            if not waiting.done():
                try:
                    async with asyncio.timeout(self.stop_timeout + KILL_AFTER):
                        await asyncio.shield(waiting)
                except TimeoutError:
                    logger.warning("worker process pid %d did not stop in time: killing it",
                                   child.pid)
                    with contextlib.suppress(ProcessLookupError):
                        child.kill()
            return await waiting
        finally:
            stop.cancel()


def _die_with_parent() -> None:
    """In the child, before exec: ask Linux for SIGTERM when the supervisor dies."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            pr_set_pdeathsig = 1
            ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def supervise(command: Sequence[str], processes: int, stop_timeout: float) -> int:
    """Run `processes` copies of `command` until SIGINT or SIGTERM; return the exit status."""
    return asyncio.run(_Supervisor(command, processes, stop_timeout).run())
