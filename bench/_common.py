"""Helpers the benchmark scripts share: timing, rates, percentiles, memory, tables.

Every figure a benchmark prints is measured in the same run on the same machine,
and compared with a baseline as a ratio; nothing here asserts a speed.
"""

from __future__ import annotations

import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

MB = 1024 * 1024
K = TypeVar("K")


def machine() -> str:
    """Describe this machine in one line: CPU, cores, Python, date."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as info:
            cpu = next(line.split(":", 1)[1].strip() for line in info if "model name" in line)
    except (OSError, StopIteration):
        pass
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()} "
            f"({platform.system()}), {today}")


def best_times(runs: Mapping[K, Callable[[], float]], repeat: int) -> dict[K, float]:
    """Call each of `runs` (which return the seconds they measured) `repeat` times, in turns.

    Returns the least time of each: the run least disturbed by the rest of the
    machine. Taking turns spreads any passing load over every contender alike, so
    ratios between them stay fair on a shared machine.
    """
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(repeat):
        for name, run in runs.items():
            gc.collect()
            best[name] = min(best[name], run())
    return best


def load() -> str:
    """Return the 1-minute load average and core count, such as `load 0.12 on 2 cores`."""
    return f"load {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores"


def timed(run: Callable[[], object]) -> float:
    """Return how many seconds `run()` took."""
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


def percentile(values: Sequence[float], q: float) -> float:
    """Return the `q`-th percentile (0-100) of `values`, linearly interpolated."""
    if not values:
        raise ValueError("percentile() of no values")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def peak_rss_mb() -> float:
    """Return this process's peak resident set size so far, in MiB.

    On Linux this is `VmHWM`, which starts afresh at exec; `ru_maxrss` would not
    do for a child process, as it carries over the parent's peak from the fork.
    """
    try:
        with open("/proc/self/status") as status:
            line = next(line for line in status if line.startswith("VmHWM:"))
        return int(line.split()[1]) / 1024
    except (OSError, StopIteration):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak / 1024 if sys.platform != "darwin" else peak / MB


def rss_mb() -> float:
    """Return this process's current resident set size, in MiB."""
    with open("/proc/self/statm") as statm:
        pages = int(statm.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / MB


def in_subprocess(module: str, *args: str, timeout: float = 300) -> dict[str, Any]:
    """Run `python -m module *args` in a fresh interpreter; return its last line as JSON.

    A fresh process keeps peak-RSS figures free of what earlier measurements allocated.
    """
    done = subprocess.run([sys.executable, "-m", module, *args], capture_output=True,
                          text=True, timeout=timeout, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed:\n{done.stderr.strip()}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """Format rows as a Markdown table, columns padded so it also reads in a terminal."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = ["| " + " | ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) + " |"
             for row in cells]
    lines.insert(1, "|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(lines)


def per_second(count: float, seconds: float) -> str:
    """Format a rate such as `123,456/s`."""
    return f"{count / seconds:,.0f}/s"


def ratio(value: float, baseline: float) -> str:
    """Format `value / baseline` such as `0.42x` (three decimals below 0.1)."""
    share = value / baseline
    return f"{share:.3f}x" if share < 0.1 else f"{share:.2f}x"
