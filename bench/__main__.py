"""Run wrkr's benchmarks: `python -m bench [core|rabbitmq|postgres|mongodb ...]`.

Each name runs the module `bench.bench_<name>`, which exposes `main()` (a plain or
a coroutine function). With no names, every benchmark module present is run. A
module that is absent, or whose driver is not installed, is skipped with a note;
one that fails is reported and the others still run (the exit status says so).
"""

from __future__ import annotations

import asyncio
import importlib
import importlib.util
import inspect
import sys
import time
import traceback

from bench._common import machine

KNOWN = ("core", "rabbitmq", "mqtt", "postgres", "mongodb", "sqlite", "coordination", "flows",
         "loops")


def run(name: str) -> bool:
    """Run `bench.bench_<name>`; return False only if it was present and failed."""
    module_name = f"bench.bench_{name}"
    if importlib.util.find_spec(module_name) is None:
        print(f"-- skipping {name}: no module {module_name}")
        return True
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        print(f"-- skipping {name}: {exc} (pip install -e '.[bench,{name}]')")
        return True
    print(f"\n== {name} ==")
    start = time.perf_counter()
    try:
        result = module.main()
        if inspect.iscoroutine(result):
            asyncio.run(result)
    except Exception:
        traceback.print_exc()
        print(f"-- {name} FAILED")
        return False
    print(f"-- {name} took {time.perf_counter() - start:.0f}s")
    return True


def main(argv: list[str]) -> int:
    """Run the benchmarks named in `argv` (all known ones by default); return the status."""
    names = argv or list(KNOWN)
    print(f"wrkr benchmarks on {machine()}")
    results = [run(name) for name in names]
    return 0 if all(results) else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
