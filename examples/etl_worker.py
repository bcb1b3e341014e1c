"""The ETL worker, rebuilt on wrkr: validate resources, process them, write output.json.

    python -m examples.etl_worker load       publish every resource of INPUT, once
    python -m examples.etl_worker            work until SIGINT / SIGTERM, then stop gracefully

Configuration (environment; the seed's own defaults are not in this repository, so these
are chosen): WORKERS (4) concurrent handlers, INPUT (resources.json), OUTPUT (output.json),
PROCESSING_TIME (0.5 s per resource), DELAY_TIME (1 s before a retry), FAILURE_RATE (0.1,
the share of simulated processing failures), MAX_ATTEMPTS (3), WRKR_URL (memory://).

A resource needs `id`, `name` and an ISO-8601 `creation_date`; an invalid one is parked
as failed with the reason (`wrkr items --state failed`). A processed one is published as
"etl.resource.processed"; the writer, its own queue, adds it to OUTPUT once (by id), so a
redelivery after a stop never writes it twice. SIGTERM stops gracefully: running handlers
finish or are given back, and the next run carries on.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

from wrkr import Event, Fail, Retry, Wrkr

REQUIRED = ("id", "name", "creation_date")
WORKERS = int(os.environ.get("WORKERS", "4"))
INPUT = Path(os.environ.get("INPUT", "resources.json"))
OUTPUT = Path(os.environ.get("OUTPUT", "output.json"))
PROCESSING_TIME = float(os.environ.get("PROCESSING_TIME", "0.5"))
DELAY_TIME = float(os.environ.get("DELAY_TIME", "1"))
FAILURE_RATE = float(os.environ.get("FAILURE_RATE", "0.1"))
MAX_ATTEMPTS = int(os.environ.get("MAX_ATTEMPTS", "3"))

app = Wrkr.from_url(os.environ.get("WRKR_URL", "memory://"), name="etl",
                    retry=Retry(MAX_ATTEMPTS, [f"{DELAY_TIME} seconds"]))


def invalid_reason(resource: dict[str, Any]) -> str | None:
    """Return why `resource` cannot be processed, or None if it is valid."""
    missing = [key for key in REQUIRED if key not in resource]
    if missing:
        return f"missing required key(s) {missing}"
    try:
        datetime.fromisoformat(str(resource["creation_date"]))
    except ValueError:
        return f"invalid creation_date {resource['creation_date']!r}"
    return None


@app.on("etl.resource.received", queue="etl.process", concurrency=WORKERS,
        timeout="1 minute")
async def process(event: Event) -> None:
    """Validate, process (simulated), and publish the result for the writer."""
    resource = event.payload
    reason = invalid_reason(resource)
    if reason is not None:
        raise Fail(reason)
    await asyncio.sleep(PROCESSING_TIME)
    if random.random() < FAILURE_RATE:
        raise RuntimeError("simulated processing failure")
    result = {**resource, "processed": True}
    await app.publish({"name": "etl.resource.processed", "tid": event.tid, "payload": result})


@app.on("etl.resource.processed", queue="etl.output")
def write(event: Event) -> None:
    """Add a processed resource to OUTPUT once (by id); the file is replaced atomically."""
    written = json.loads(OUTPUT.read_text()) if OUTPUT.exists() else []
    if any(entry["id"] == event.payload["id"] for entry in written):
        return  # delivered again after a stop: already written
    staged = OUTPUT.with_suffix(".tmp")
    staged.write_text(json.dumps([*written, event.payload], indent=1))
    staged.replace(OUTPUT)


async def load(resources: list[dict[str, Any]]) -> int:
    """Publish one event per resource (tid: its id, or its position), in one batch."""
    async with app:
        events = [{"name": "etl.resource.received", "tid": str(r.get("id", index)),
                   "payload": r} for index, r in enumerate(resources)]
        await app.publish(events)
    return len(events)


if __name__ == "__main__":
    if sys.argv[1:] == ["load"]:
        print(f"published {asyncio.run(load(json.loads(INPUT.read_text())))} resources")
    else:
        asyncio.run(app.run())
