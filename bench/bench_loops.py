"""uvloop beside asyncio's own event loop, on the workloads of the other benchmarks.

`python -m bench loops` (needs `.[bench,uvloop]`; PostgreSQL and RabbitMQ on 127.0.0.1
for their rows, which are left out with a note when the server is not there).

Each workload runs on a fresh loop of each kind, the kinds taking turns REPEAT times,
best kept; the ratio is uvloop's rate over asyncio's in the same run. What
`wrkr worker --loop uvloop` would buy a worker of that kind.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop

from bench import bench_core, bench_postgres, bench_rabbitmq
from bench._common import best_times, load, machine, ratio, table
from wrkr import WrkrError

REPEAT = 3
MEMORY_EVENTS = 20_000
SERVER_EVENTS = 5_000
LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop] | None] = {
    "asyncio": None, "uvloop": uvloop.new_event_loop}


def _seconds(count: int, rate: float) -> float:
    return count / rate


def workloads() -> dict[str, tuple[int, Callable[[], Coroutine[Any, Any, float]]]]:
    """Name -> (events, a coroutine factory returning the seconds they took)."""
    async def memory() -> float:
        return await bench_core.wrkr_end_to_end(MEMORY_EVENTS, 1, bench_core.BATCH)

    async def json_queue() -> float:
        return await bench_core.raw_queue(MEMORY_EVENTS, "json (stdlib)")

    async def postgres() -> float:
        return _seconds(SERVER_EVENTS, await bench_postgres.bench_wrkr(SERVER_EVENTS))

    async def rabbitmq() -> float:
        return await bench_rabbitmq.wrkr_end_to_end(SERVER_EVENTS)

    return {"wrkr memory, end to end": (MEMORY_EVENTS, memory),
            "asyncio.Queue + JSON (no wrkr)": (MEMORY_EVENTS, json_queue),
            "wrkr PostgreSQL, end to end": (SERVER_EVENTS, postgres),
            "wrkr RabbitMQ, end to end": (SERVER_EVENTS, rabbitmq)}


def _on(factory: Callable[[], asyncio.AbstractEventLoop] | None,
        make: Callable[[], Coroutine[Any, Any, float]]) -> Callable[[], float]:
    def run() -> float:
        with asyncio.Runner(loop_factory=factory) as runner:
            return runner.run(make())
    return run


def main() -> None:
    print(machine(), "-", load())
    rows = []
    for name, (count, make) in workloads().items():
        try:
            best = best_times({kind: _on(factory, make) for kind, factory in LOOPS.items()},
                              REPEAT)
        except (OSError, WrkrError) as exc:  # the server of that row is not running here
            print(f"-- {name}: left out ({exc})")
            continue
        rates = {kind: count / seconds for kind, seconds in best.items()}
        rows.append((name, f"{rates['asyncio']:,.0f}/s", f"{rates['uvloop']:,.0f}/s",
                     ratio(rates["uvloop"], rates["asyncio"])))
    print(table(("workload", "asyncio", "uvloop", "uvloop / asyncio"), rows))


if __name__ == "__main__":
    main()
