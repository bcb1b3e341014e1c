"""MQTT: wrkr-mqtt beside raw paho, and the MQTT clients wrkr could have used.

`python -m bench mqtt` (needs Mosquitto on 127.0.0.1:1883, configured by
scripts/services/mosquitto.sh, and `.[bench,mqtt]`; aiomqtt and zmqtt are optional).

1. The clients under wrkr's workload (bench/_mqtt_clients.py): QoS 1 publish ->
   receive -> manual ack, COUNT messages of 200 bytes on one persistent session.
2. wrkr end to end on MQTT (publish in batches of 100 -> handler -> PUBACK after the
   handler, one queue, concurrency 100) beside raw paho doing the bare minimum of
   the same: the ratio is what wrkr's envelope, routing and settling cost.
Runs take turns; each keeps its best of REPEAT.
"""

from __future__ import annotations

import asyncio
import importlib.util
import secrets
import time
from collections.abc import Awaitable, Callable

from bench._common import per_second, ratio, table
from bench._mqtt_clients import aiomqtt_auto, paho_threaded, zmqtt_manual
from wrkr import Event, Wrkr
from wrkr_mqtt import MQTTBackend

URL = "mqtt://127.0.0.1:1883"
COUNT = 20_000
REPEAT = 2
BATCH = 100
CONCURRENCY = 100
PAYLOAD = {"payload": "x" * 184}


async def wrkr_end_to_end(count: int) -> float:
    """Publish `count` events in batches while one queue consumes them; return the seconds."""
    backend = MQTTBackend(URL, prefix=f"bench{secrets.token_hex(3)}", session_expiry=600)
    app = Wrkr(backend)
    await app.start()
    done, seen = asyncio.get_running_loop().create_future(), [0]

    async def handle(event: Event) -> None:
        seen[0] += 1
        if seen[0] == count:
            done.set_result(None)

    await app.subscribe("bench", "bench.event", handle, concurrency=CONCURRENCY)
    await app.listen()
    start = time.perf_counter()
    for _ in range(count // BATCH):
        await app.publish([{"name": "bench.event", "payload": PAYLOAD}] * BATCH)
    await done
    elapsed = time.perf_counter() - start
    await app.stop(timeout=5)
    await backend.open()
    await backend.delete_namespace()
    await backend.close()
    return elapsed


async def _best(runs: dict[str, Callable[[int], Awaitable[float]]]) -> dict[str, float]:
    best = dict.fromkeys(runs, float("inf"))
    for _ in range(REPEAT):
        for name, run in runs.items():
            best[name] = min(best[name], await run(COUNT))
    return best


async def run() -> None:
    """Measure the clients, then wrkr beside raw paho, and print both tables."""
    runs: dict[str, Callable[[int], Awaitable[float]]] = {
        "raw paho-mqtt 2 (loop thread, manual acks): baseline": paho_threaded,
        "wrkr-mqtt end to end (paho, acks after the handler)": wrkr_end_to_end,
    }
    if importlib.util.find_spec("aiomqtt"):
        runs["raw aiomqtt 2.x (automatic acks: no manual-ack API)"] = aiomqtt_auto
    if importlib.util.find_spec("zmqtt"):
        runs["raw zmqtt (manual acks)"] = zmqtt_manual
    best = await _best(runs)
    baseline = best["raw paho-mqtt 2 (loop thread, manual acks): baseline"]
    print(f"QoS 1 publish -> receive -> ack, {COUNT:,} messages of 200 bytes, best of {REPEAT}")
    print(table(["run", "messages/s", "vs raw paho"],
                [[name, per_second(COUNT, s), ratio(baseline, s)] for name, s in best.items()]))


def main() -> None:
    """Run the benchmark."""
    asyncio.run(run())


if __name__ == "__main__":
    main()
