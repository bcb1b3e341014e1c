"""`wrkr worker --processes N`: the same backlog drained by 1 and by 2 worker processes.

Run: `python -m bench.bench_processes [--url URL] [--count N] [--cpu-ms MS] [--rounds R]`.
Each handler burns `cpu_ms` of CPU (a stand-in for real work: parsing, rendering), so the
event loop of one process, on one core, is what limits one worker. The backlog is
published first, then `wrkr worker --processes K` is started and timed until the backend
holds no item (the workers' start-up, about 0.5 s, is inside the time); turns alternate
between K = 1 and K = 2 in one sitting.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wrkr import Wrkr

MODULE = """\
import os, time
from wrkr import Wrkr

app = Wrkr.from_url(os.environ["WRKR_URL"], name="bench-processes")
CPU = float(os.environ["BENCH_CPU_MS"]) / 1000


@app.on("bench.processes.job", queue="bench.processes.jobs", concurrency=8)
async def job(event):
    end = time.thread_time() + CPU
    while time.thread_time() < end:
        pass
"""


async def backlog(url: str, count: int) -> None:
    async with Wrkr.from_url(url) as app:
        await app.purge(state="failed")
        await app.subscribe("bench.processes.jobs", "bench.processes.job", lambda event: None)
        for first in range(0, count, 500):
            await app.publish([{"name": "bench.processes.job", "tid": str(n)}
                               for n in range(first, min(count, first + 500))])


async def until_drained(url: str) -> None:
    """Ask the backend every 50 ms (one connection) until the queue holds nothing."""
    async with Wrkr.from_url(url) as app:
        while True:  # another process empties it: only asking tells
            counts = await app.counts()
            if not sum(counts.get("bench.processes.jobs", {}).values()):
                return
            await asyncio.sleep(0.05)


def drain(url: str, count: int, processes: int, cpu_ms: float, where: Path) -> float:
    """Publish `count` items, then time `processes` workers until none is left."""
    asyncio.run(backlog(url, count))
    env = {**os.environ, "WRKR_URL": url, "BENCH_CPU_MS": str(cpu_ms),
           "PYTHONPATH": os.pathsep.join([str(where), str(Path(__file__).parents[1])])}
    started = time.perf_counter()
    worker = subprocess.Popen([sys.executable, "-m", "wrkr", "worker", "bench_module:app",
                               "--processes", str(processes), "--log-level", "warning"],
                              cwd=where, env=env, stderr=subprocess.DEVNULL)
    try:
        asyncio.run(until_drained(url))
        return time.perf_counter() - started
    finally:
        worker.send_signal(signal.SIGTERM)
        worker.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url", default="postgresql://postgres@127.0.0.1:5432/test"
                                         "?schema=wrkr_bench_processes")
    parser.add_argument("--count", type=int, default=6000)
    parser.add_argument("--cpu-ms", type=float, default=1.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        where = Path(tmp)
        (where / "bench_module.py").write_text(MODULE)
        seen: dict[int, list[float]] = {1: [], 2: []}
        for _ in range(args.rounds):
            for processes in (1, 2):
                seconds = drain(args.url, args.count, processes, args.cpu_ms, where)
                seen[processes].append(args.count / seconds)
                print(f"{processes} process(es): {args.count / seconds:,.0f} items/s",
                      flush=True)
    best = {k: max(v) for k, v in seen.items()}
    print(f"\n{args.count:,} items, {args.cpu_ms:g} ms CPU each, {os.cpu_count()} cores: "
          f"1 process {best[1]:,.0f}/s, 2 processes {best[2]:,.0f}/s "
          f"({best[2] / best[1]:.2f}x)")


if __name__ == "__main__":
    main()
