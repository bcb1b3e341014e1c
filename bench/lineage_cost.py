"""What lineage and tracing cost on the memory backend's publish / handle path.

Counts CPU instructions per event with callgrind (the machine is shared: instruction
counts do not move with its load, wall-clock times do by ±20 %), for a checkout without
lineage (`--base`, e.g. made by ``git archive <commit> | tar -x -C /tmp/base``) and this
one, with OpenTelemetry's import blocked and with its API present but no SDK:

    python -m bench.lineage_cost --base /tmp/base

Each figure is (instructions of N2 events - instructions of N1 events) / (N2 - N1), so
start-up cancels out. Workloads, from `bench_core`: one queue in batches of 100, one
queue one event per publish, and a handler that publishes one child per event.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
WORKLOADS = ("batch100", "batch1", "child")
SIZES = (1_000, 4_000)


def run_one(source: Path, otel: bool, workload: str, count: int) -> None:
    """Run one workload of `count` events once, with wrkr from `source` (callgrind counts)."""
    if not otel:
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]  # as if not installed
    sys.path.insert(0, str(source))
    import wrkr
    from bench import bench_core

    assert Path(wrkr.__file__).is_relative_to(source), wrkr.__file__

    if workload == "child":
        asyncio.run(_child(count))
    else:
        asyncio.run(bench_core.wrkr_end_to_end(count, 1, 100 if workload == "batch100" else 1))


async def _child(count: int) -> None:
    from wrkr import Event, Wrkr
    from wrkr_memory import MemoryBackend

    done, seen = asyncio.Event(), 0
    async with Wrkr(MemoryBackend()) as app:
        async def first(event: Event) -> None:
            await app.publish({"name": "b", "tid": event.tid})

        async def second(event: Event) -> None:
            nonlocal seen
            seen += 1
            if seen == count:
                done.set()

        await app.subscribe("q.a", "a", first)
        await app.subscribe("q.b", "b", second)
        await app.listen()
        for first_tid in range(0, count, 100):
            await app.publish([{"name": "a", "tid": str(tid)}
                               for tid in range(first_tid, first_tid + 100)])
        await asyncio.wait_for(done.wait(), 600)


def instructions(source: Path, otel: bool, workload: str, count: int) -> int:
    """Return the instructions callgrind counts for one run of `workload` in `source`."""
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         __file__, "--one", str(source), "otel" if otel else "none", workload, str(count)],
        cwd=source, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", result.stderr)
    assert found, result.stderr
    return int(found.group(1))


def main() -> None:
    """Print instructions per event: the base, lineage, lineage with the OpenTelemetry API."""
    if sys.argv[1:2] == ["--one"]:  # a child run under callgrind
        source, otel, workload, count = sys.argv[2:6]
        run_one(Path(source), otel == "otel", workload, int(count))
        return
    parser = argparse.ArgumentParser(prog="python -m bench.lineage_cost")
    parser.add_argument("--base", type=Path, required=True, help="a checkout without lineage")
    args = parser.parse_args()
    variants = {"base": (args.base, False), "lineage": (HERE, False),
                "lineage, otel API, no SDK": (HERE, True)}
    jobs = [(name, workload, count) for name in variants for workload in WORKLOADS
            for count in SIZES]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        counted = dict(zip(jobs, pool.map(
            lambda job: instructions(*variants[job[0]], job[1], job[2]), jobs), strict=True))
    for workload in WORKLOADS:
        per = {name: (counted[name, workload, SIZES[1]] - counted[name, workload, SIZES[0]])
               / (SIZES[1] - SIZES[0]) for name in variants}
        print(f"{workload:9}", "  ".join(
            f"{name} {value / 1e3:.1f}k ({value / per['base']:.3f}x)"
            for name, value in per.items()))


if __name__ == "__main__":
    main()
