"""What one id per queue copy costs a broker publisher: CPU instructions per event.

Counts the publishing process's instructions with callgrind (the machine is shared:
instruction counts do not move with its load, wall-clock times do by ±40 %), for a
checkout from before (`--base`, e.g. made by ``git archive main | tar -x -C /tmp/base``)
and this one:

    python -m bench.broker_publish_cost --base /tmp/base [rabbitmq] [mqtt]

Each figure is (instructions of N2 events - instructions of N1 events) / (N2 - N1), so
start-up cancels out. Workloads: events published one per `publish()` and in batches of
100, to one subscribed queue that nothing consumes. The broker's own work (the get or
the marker a publish now sends) is not counted: it runs in another process.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import re
import secrets
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parents[1]
URLS = {"rabbitmq": "amqp://guest:guest@127.0.0.1:5672/", "mqtt": "mqtt://127.0.0.1:1883"}
WORKLOADS = {"one per publish()": (1, (100, 400)), "batches of 100": (100, (1_000, 4_000))}


def run_one(source: Path, broker: str, batch: int, count: int) -> None:
    """Publish `count` events in batches of `batch` with wrkr from `source`."""
    sys.path.insert(0, str(source))
    from wrkr import Wrkr

    async def main() -> None:
        app = Wrkr.from_url(f"{URLS[broker]}?prefix=cost{secrets.token_hex(3)}")
        async with app:
            await app.subscribe("cost", "cost.event", lambda _event: None)
            events = [{"name": "cost.event", "payload": {"payload": "x" * 184}}] * batch
            for _ in range(count // batch):
                await app.publish(events if batch > 1 else events[0])
            await app.backend.delete_namespace()  # type: ignore[attr-defined]

    asyncio.run(main())


def instructions(source: Path, broker: str, batch: int, count: int) -> int:
    """Return the instructions callgrind counts for one run in `source`."""
    result = subprocess.run(
        ["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable,
         __file__, "--one", str(source), broker, str(batch), str(count)],
        cwd=source, capture_output=True, text=True, check=True)
    found = re.search(r"Collected : (\d+)", result.stderr)
    assert found, result.stderr
    return int(found.group(1))


def main() -> None:
    """Print instructions per event, before and after, per broker and workload."""
    if sys.argv[1:2] == ["--one"]:  # a child run under callgrind
        source, broker, batch, count = sys.argv[2:6]
        run_one(Path(source), broker, int(batch), int(count))
        return
    parser = argparse.ArgumentParser(prog="python -m bench.broker_publish_cost")
    parser.add_argument("--base", type=Path, required=True, help="a checkout from before")
    parser.add_argument("brokers", nargs="*", help=f"of {', '.join(URLS)} (default: both)")
    args = parser.parse_args()
    args.brokers = args.brokers or list(URLS)
    if unknown := set(args.brokers) - set(URLS):
        parser.error(f"unknown broker {', '.join(sorted(unknown))}: choose from {list(URLS)}")
    trees = {"before": args.base, "after": HERE}
    jobs = [(tree, broker, workload, count) for tree in trees for broker in args.brokers
            for workload, (_, sizes) in WORKLOADS.items() for count in sizes]
    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        counted = dict(zip(jobs, pool.map(lambda job: instructions(
            trees[job[0]], job[1], WORKLOADS[job[2]][0], job[3]), jobs), strict=True))
    for broker in args.brokers:
        for workload, (_, (small, large)) in WORKLOADS.items():
            per = {tree: (counted[tree, broker, workload, large]
                          - counted[tree, broker, workload, small]) / (large - small)
                   for tree in trees}
            print(f"{broker:8} {workload:18} before {per['before'] / 1e3:7.1f}k  "
                  f"after {per['after'] / 1e3:7.1f}k  ({per['after'] / per['before']:.3f}x)")


if __name__ == "__main__":
    main()
