"""The fault harness's child processes and what their logs say (see `bench/_faults_roles.py`)."""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

FOLDERS: list[Path] = []
"""Log folders of the processes started; the harness removes them once a row is made."""
DEADLINE = 300.0
"""The longest any one scenario may run (seconds) before the harness gives up on it."""


class Processes:
    """The worker and publisher processes of one scenario, each logging to its own file."""

    def __init__(self, url: str, lease: str) -> None:
        self.url, self.lease = url, lease
        self.folder = Path(tempfile.mkdtemp(prefix="wrkr-faults-"))
        FOLDERS.append(self.folder)  # removed once the scenario's row is made
        self.workers: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, Path] = {}
        self.kills: list[tuple[Path, float]] = []
        self.started = 0

    def worker(self, queues: list[str], concurrency: int = 8,
               work_ms: str = "5-50") -> subprocess.Popen[bytes]:
        log = self.folder / f"worker-{self.started}.log"
        self.started += 1
        process = self._spawn("worker", str(log), self.url, self.lease, str(concurrency),
                              ",".join(queues), work_ms)
        self.logs[process.pid] = log
        self.workers.append(process)
        return process

    def publisher(self, prefix: str, count: int, batch: int, pace: float,
                  url: str | None = None) -> tuple[subprocess.Popen[bytes], Path]:
        log = self.folder / f"publisher-{prefix}.log"
        process = self._spawn("publisher", str(log), url or self.url, prefix, str(count),
                              str(batch), str(pace))
        return process, log

    def _spawn(self, *args: str) -> subprocess.Popen[bytes]:
        with (Path(args[1]).with_suffix(".err")).open("ab") as errors:  # warnings, for a look
            return subprocess.Popen([sys.executable, "-m", "bench._faults_roles", *args],
                                    stdout=subprocess.DEVNULL, stderr=errors)

    def kill_worker(self, queues: list[str]) -> None:
        """SIGKILL a random worker and start a new one in its place."""
        victim = self.workers.pop(random.randrange(len(self.workers)))
        victim.send_signal(signal.SIGKILL)
        victim.wait()
        self.kills.append((self.logs[victim.pid], time.time()))
        self.worker(queues)

    def done(self) -> list[tuple[str, str]]:
        """Every (tid, queue) a worker finished, once per finish."""
        return [(tid, queue) for log in self.folder.glob("worker-*.log")
                for what, tid, queue, _ in lines_of(log) if what == "done"]

    def stop(self) -> None:
        for process in self.workers:
            process.send_signal(signal.SIGTERM)
        for process in self.workers:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def lines_of(log: Path) -> Iterator[tuple[str, str, str, float]]:
    """Yield a worker log's complete (what, tid, queue, time) lines (none if not yet made)."""
    for line in log.read_text().splitlines() if log.exists() else []:
        parts = line.split()
        if len(parts) in (4, 5):  # a start also says which attempt it is
            yield parts[0], parts[1], parts[2], float(parts[3])


def published(log: Path) -> tuple[set[str], Counter[str], list[float]]:
    """A publisher log's confirmed tids, counts of retries/errors, and confirmation times."""
    confirmed: set[str] = set()
    counts: Counter[str] = Counter()
    times: list[float] = []
    prefix = log.stem.removeprefix("publisher-")
    for line in log.read_text().splitlines() if log.exists() else []:
        parts = line.split()
        if parts[0] == "ok" and len(parts) == 4:
            first, count = int(parts[1]), int(parts[2])
            confirmed.update(f"{prefix}{i}" for i in range(first, first + count))
            times.append(float(parts[3]))
        elif parts[0] in ("retry", "error"):
            counts[parts[0]] += 1
        elif parts[0] == "rss":
            counts["rss"] = int(parts[1])
    return confirmed, counts, times


def wait_until(condition: Callable[[], bool], timeout: float = DEADLINE,
               every: float = 0.5) -> bool:
    """Poll `condition` (the children's logs have nothing to await) until true or timeout."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(every)
    return True


def peak_rss_kib(pid: int) -> int:
    """The peak resident set size of a live process (VmHWM), in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return 0
