"""The fault harness's child processes: workers and publishers (``python -m bench._faults_roles``).

Both write what they did unbuffered (`os.write`), one line per fact, so a SIGKILL loses
nothing they wrote:

    worker LOG URL LEASE CONCURRENCY QUEUES WORK_MS
        handles EVENT on each comma-separated queue; logs ``start <tid> <queue> <time>
        <attempt>`` before and ``done <tid> <queue> <time>`` after the handler's work (WORK_MS is
        ``low-high`` milliseconds, uniformly), until SIGTERM.
    publisher LOG URL PREFIX COUNT BATCH PACE
        publishes COUNT events with tids PREFIX0, PREFIX1, ... in batches of BATCH, PACE
        seconds apart; logs ``ok <first> <n> <time>`` once a batch is confirmed. On
        `BackendUnavailable` it tries the same batch again (``retry <time>``); any other
        error is logged (``error <time> <what>``) and tried again too. At the end it logs
        ``rss <peak KiB>`` and ``end``.
"""

from __future__ import annotations

import asyncio
import os
import random
import resource
import sys
import time
from pathlib import Path

EVENT = "faults.job"


def _writer(log: Path) -> int:
    return os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)


async def worker(log: str, url: str, lease: str, concurrency: str, queues: str,
                 work_ms: str) -> None:
    """Handle events until SIGTERM, logging each start and finish unbuffered."""
    from wrkr import Event, Wrkr

    fd = _writer(Path(log))
    low, high = (float(ms) / 1000 for ms in work_ms.split("-"))

    async def handler(event: Event) -> None:
        os.write(fd, f"start {event.tid} {event.queue} {time.time():.6f} {event.attempts}\n"
                 .encode())
        if high:
            await asyncio.sleep(random.uniform(low, high))
        os.write(fd, f"done {event.tid} {event.queue} {time.time():.6f}\n".encode())

    app = Wrkr.from_url(url, lease=lease)
    async with app:
        for queue in queues.split(","):
            await app.subscribe(queue, EVENT, handler, concurrency=int(concurrency))
        await app.run()


async def publisher(log: str, url: str, prefix: str, count: str, batch: str,
                    pace: str) -> None:
    """Publish COUNT events in batches, each tried until confirmed."""
    from wrkr import BackendUnavailable, Wrkr

    fd = _writer(Path(log))
    total, size, gap = int(count), int(batch), float(pace)
    async with Wrkr.from_url(url) as app:
        for first in range(0, total, size):
            events = [{"name": EVENT, "tid": f"{prefix}{i}"}
                      for i in range(first, min(first + size, total))]
            while True:
                try:
                    await app.publish(events)
                    break
                except BackendUnavailable:
                    os.write(fd, f"retry {time.time():.6f}\n".encode())
                except Exception as exc:  # counted by the harness: it should not happen
                    what = f"{type(exc).__name__}: {exc}".replace("\n", " ")[:300]
                    os.write(fd, f"error {time.time():.6f} {what}\n".encode())
                await asyncio.sleep(0.1)
            os.write(fd, f"ok {first} {len(events)} {time.time():.6f}\n".encode())
            if gap:
                await asyncio.sleep(gap)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    os.write(fd, f"rss {peak}\nend\n".encode())


def main(argv: list[str]) -> None:
    """Run the role named by `argv[0]` with the rest as its arguments."""
    roles = {"worker": worker, "publisher": publisher}
    asyncio.run(roles[argv[0]](*argv[1:]))


if __name__ == "__main__":
    main(sys.argv[1:])
