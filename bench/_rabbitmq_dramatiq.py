"""Dramatiq on RabbitMQ doing wrkr's workload, in a process of its own (its broker is global).

`python -m bench._rabbitmq_dramatiq COUNT [confirm|noconfirm]` prints one JSON line:
{"seconds": ...}, the time from the first `send` to the last actor run, persistent
messages, a worker of 8 threads in the same process (Dramatiq's default prefetch: 2
per thread), with publisher confirms (`confirm_delivery=True`, wrkr's guarantee) or
without (Dramatiq's default: a send may be lost without anyone knowing).
"""

from __future__ import annotations

import json
import secrets
import sys
import threading
import time

import dramatiq
from dramatiq.brokers.rabbitmq import RabbitmqBroker

URL = "amqp://guest:guest@127.0.0.1:5672/"
PAYLOAD = "x" * 184


def run(count: int, confirm: bool) -> float:
    """Send `count` messages to an actor while a worker runs them; return the seconds."""
    broker = RabbitmqBroker(url=URL, confirm_delivery=confirm)
    dramatiq.set_broker(broker)
    queue = f"bench_dramatiq_{secrets.token_hex(3)}"
    done, lock, seen = threading.Event(), threading.Lock(), [0]

    @dramatiq.actor(queue_name=queue, max_retries=0)
    def handle(payload: str) -> None:
        with lock:
            seen[0] += 1
            if seen[0] == count:
                done.set()

    worker = dramatiq.Worker(broker, worker_threads=8)
    worker.start()
    start = time.perf_counter()
    for _ in range(count):
        handle.send(PAYLOAD)
    done.wait(timeout=600)
    elapsed = time.perf_counter() - start
    worker.stop()
    for name in (queue, f"{queue}.DQ", f"{queue}.XQ"):
        broker.channel.queue_delete(name)
    broker.close()
    return elapsed


if __name__ == "__main__":
    print(json.dumps({"seconds": run(int(sys.argv[1]), sys.argv[2:3] != ["noconfirm"])}))
