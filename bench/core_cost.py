"""Instructions per handler call on the memory backend's publish -> handler -> ack path.

The machine is shared, so seconds move by ±20 % between runs; callgrind's instruction
counts do not. Each figure is (instructions of the larger run - those of the smaller)
/ (difference in handler calls), so start-up and imports cancel out. The workloads are
`bench_core.wrkr_end_to_end`'s, taken from each tree measured (so an older checkout,
e.g. made by ``git archive <commit> | tar -x -C /tmp/old``, runs its own):

    python -m bench.core_cost                    # this tree
    python -m bench.core_cost --base /tmp/old    # and an older one, as ratios
    python -m bench.core_cost --profile batch1   # a callgrind.out file to annotate

`--without-otel` blocks OpenTelemetry's import, as if it were not installed (with it
installed and no SDK, tracing costs a little per publish and per handler). Runs use
``PYTHONHASHSEED=0`` and the interpreter running this script.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import re
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
# name -> (queues, events per publish, events in the small run, in the large run)
WORKLOADS = {
    "batch1": (1, 1, 1_000, 4_000),  # 1 queue, one event per publish()
    "4q-batch100": (4, 100, 300, 1_200),  # 4 queues, batches of 100
}


def run_one(source: Path, workload: str, events: int, otel: bool) -> None:
    """Run `events` events of `workload` once, with wrkr from `source`."""
    if not otel:
        sys.modules["opentelemetry"] = None  # type: ignore[assignment]  # as if not installed
    sys.path.insert(0, str(source))
    import wrkr
    from bench import bench_core

    assert Path(wrkr.__file__).is_relative_to(source), wrkr.__file__
    queues, batch, _, _ = WORKLOADS[workload]
    asyncio.run(bench_core.wrkr_end_to_end(events, queues, batch))


OTEL = True  # False: OpenTelemetry's import blocked (--without-otel)


def _command(source: Path, workload: str, events: int, out: str) -> list[str]:
    return ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable,
            __file__, "--one", str(source), workload, str(events), "otel" if OTEL else "none"]


def instructions(source: Path, workload: str, events: int) -> int:
    """Return the instructions callgrind counts for one run of `workload` in `source`."""
    result = subprocess.run(_command(source, workload, events, "/dev/null"), cwd=source,
                            capture_output=True, text=True, check=True,
                            env={**os.environ, "PYTHONHASHSEED": "0"})
    found = re.search(r"Collected : (\d+)", result.stderr)
    assert found, result.stderr
    return int(found.group(1))


def per_call(source: Path, workload: str, pool: concurrent.futures.Executor) -> float:
    """Return the instructions per handler call of `workload` in `source`."""
    queues, _, small, large = WORKLOADS[workload]
    low, high = pool.map(lambda events: instructions(source, workload, events), (small, large))
    return (high - low) / ((large - small) * queues)


def main() -> None:
    """Print instructions per handler call for each workload (and as a ratio to --base)."""
    if sys.argv[1:2] == ["--one"]:  # a child run under callgrind
        source, workload, events, otel = sys.argv[2:6]
        run_one(Path(source), workload, int(events), otel == "otel")
        return
    parser = argparse.ArgumentParser(prog="python -m bench.core_cost")
    parser.add_argument("--base", type=Path, help="an older checkout to compare with")
    parser.add_argument("--profile", choices=WORKLOADS, help="write callgrind.out.<workload>")
    parser.add_argument("--without-otel", action="store_true",
                        help="block OpenTelemetry's import (as if not installed)")
    args = parser.parse_args()
    global OTEL  # read by _command, in the pool's threads
    OTEL = not args.without_otel
    if args.profile:
        out = f"callgrind.out.{args.profile}"
        subprocess.run(_command(HERE, args.profile, WORKLOADS[args.profile][3], str(HERE / out)),
                       cwd=HERE, check=True, env={**os.environ, "PYTHONHASHSEED": "0"})
        print(f"wrote {out}: callgrind_annotate {out}")
        return
    trees = {"this tree": HERE} | ({"base": args.base} if args.base else {})
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        for workload in WORKLOADS:
            counted = {name: per_call(source, workload, pool) for name, source in trees.items()}
            line = "  ".join(f"{name} {value / 1e3:.1f}k" for name, value in counted.items())
            if args.base:
                line += f"  this/base {counted['this tree'] / counted['base']:.3f}"
            print(f"{workload:12} {line}", flush=True)


if __name__ == "__main__":
    main()
