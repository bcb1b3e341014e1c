"""Child processes for the MongoDB process tests (`python -m tests.backends._mongo_processes`).

Roles:
    worker URL QUEUE EVENT        consume QUEUE with a Wrkr app whose handler announces
                                  ``HANDLING <id>`` and then hangs (the test kills it);
                                  the lease is the 2 s handler timeout, no margin.
    once URL EVENT TID            print ``READY``, wait for a line on stdin, publish EVENT
                                  with ``once_every="1 hour"`` and print the created ids.
"""

from __future__ import annotations

import asyncio
import sys

import orjson

from wrkr import Event, Wrkr
from wrkr_mongodb import MongoDBBackend

HANG = 3600.0


async def hanging_worker(url: str, queue: str, event_name: str) -> None:
    """Handle QUEUE's items by announcing them and hanging until killed."""
    async def hang(event: Event) -> None:
        print(f"HANDLING {event.id}", flush=True)
        await asyncio.sleep(HANG)

    async with Wrkr(MongoDBBackend(url), lease="2 seconds") as app:
        await app.subscribe(queue, event_name, hang, timeout="1 hour")
        await app.listen()
        await asyncio.sleep(HANG)


async def once_publisher(url: str, event_name: str, tid: str) -> None:
    """Publish one `once_every` event when told to on stdin; print the ids created."""
    async with Wrkr(MongoDBBackend(url)) as app:
        await app.subscriptions(event_name)  # connected and routes loaded before the start
        print("READY", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        ids = await app.publish({"name": event_name, "tid": tid, "once_every": "1 hour"})
        print(orjson.dumps(ids).decode(), flush=True)


def main(argv: list[str]) -> None:
    """Run the role named by `argv[0]` with the rest as its arguments."""
    roles = {"worker": hanging_worker, "once": once_publisher}
    asyncio.run(roles[argv[0]](*argv[1:]))


if __name__ == "__main__":
    main(sys.argv[1:])
