"""RabbitMQ: wrkr-rabbitmq beside the raw clients and Dramatiq, and delayed-delivery lateness.

`python -m bench rabbitmq` (needs the broker on 127.0.0.1:5672 and `.[bench,rabbitmq]`).

1. Events/second end to end (publish -> handler -> ack; persistent, publisher confirms),
   one process, COUNT events of 200 bytes published in batches of 100 while consumed:
   wrkr on RabbitMQ; the raw clients doing the same by hand (pika's asyncio adapter,
   which wrkr uses, then aiormq and aio-pika, which it could have used); Dramatiq
   with `confirm_delivery=True` (wrkr's guarantee) and without (its default). Runs
   take turns; each keeps its best of REPEAT.
2. Publishing alone (nothing consumes): events/second in batches of 100 and of 10
   (each batch one AMQP transaction) and one by one (each with a publisher confirm).
3. Lateness (handled minus due) of 1,000 events delayed 1 s, and of the 2,000 short
   ones (1-5 s) in a mix of 10,000 whose other 8,000 wait 1 minute to 1 hour (left
   pending: they show that long delays hold nothing back).
4. Queue types (`python -m bench.bench_rabbitmq queue_types` runs this part alone):
   wrkr on quorum queues (the default) against classic ones, taking turns in one
   process: end to end and publishing as in 1 and 2, lateness at 1 s as in 3, and a
   crash: CRASH_QUEUE items wait in a queue, a raw pika consumer takes CRASH_HELD of
   them unacked and closes its connection (to the broker, a dead worker), then wrkr
   drains the queue: how long the redelivered items waited, and the whole drain.
"""

from __future__ import annotations

import asyncio
import functools
import random
import secrets
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any

import pika  # type: ignore[import-untyped]

from bench._common import best_times, in_subprocess, load, per_second, percentile, ratio, table
from bench._rabbitmq_clients import RAW_CLIENTS
from wrkr import Event, Wrkr
from wrkr_rabbitmq import RabbitMQBackend

URL = "amqp://guest:guest@127.0.0.1:5672/"
COUNT = 10_000
REPEAT = 2
BATCH = 100
CONCURRENCY = 100
PAYLOAD = {"payload": "x" * 184}
QUEUE_TYPES = ("quorum", "classic")
TYPE_REPEAT = 5
CRASH_QUEUE = 20_000
CRASH_HELD = 100


def _app(queue_type: str = "quorum") -> tuple[Wrkr, RabbitMQBackend]:
    backend = RabbitMQBackend(URL, prefix=f"bench{secrets.token_hex(3)}", queue_type=queue_type)
    return Wrkr(backend), backend


async def _drop(app: Wrkr, backend: RabbitMQBackend) -> None:
    """Stop the app, then delete its namespace."""
    await app.stop(timeout=5)
    await backend.open()
    await backend.delete_namespace()
    await backend.close()


async def wrkr_end_to_end(count: int, queue_type: str = "quorum") -> float:
    """Publish `count` events in batches while one queue consumes them; return the seconds."""
    app, backend = _app(queue_type)
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
    await _drop(app, backend)
    return elapsed


async def wrkr_publish_only(count: int, batch: int, queue_type: str = "quorum") -> float:
    """Publish `count` events in batches of `batch` to one queue, unconsumed; return the seconds."""
    app, backend = _app(queue_type)
    await app.start()
    await app.subscribe("bench", "bench.event", lambda _event: None)
    start = time.perf_counter()
    for _ in range(count // batch):
        await app.publish([{"name": "bench.event", "payload": PAYLOAD}] * batch)
    elapsed = time.perf_counter() - start
    await _drop(app, backend)
    return elapsed


async def lateness(delays: list[float], wait_for: int,
                   queue_type: str = "quorum") -> list[float]:
    """Publish one event per delay (seconds); return the lateness of the first `wait_for`."""
    app, backend = _app(queue_type)
    await app.start()
    late: list[float] = []
    done = asyncio.get_running_loop().create_future()

    async def handle(event: Event) -> None:
        assert isinstance(event.when, datetime)
        late.append((datetime.now(UTC) - event.when).total_seconds())
        if len(late) == wait_for:
            done.set_result(None)

    await app.subscribe("late", "late.event", handle, concurrency=CONCURRENCY)
    await app.listen()
    for start in range(0, len(delays), BATCH):
        now = datetime.now(UTC)  # per batch: publishing 10,000 takes a while
        await app.publish([{"name": "late.event", "when": now + timedelta(seconds=d)}
                           for d in delays[start:start + BATCH]])
    async with asyncio.timeout(max(d for d in delays if d < 60) + 60):
        await done
    await _drop(app, backend)
    return late


def _run(coroutine: Callable[[int], Coroutine[Any, Any, float]]) -> Callable[[], float]:
    return lambda: asyncio.run(coroutine(COUNT))


def _publish_run(count: int, batch: int) -> Callable[[], float]:
    return lambda: asyncio.run(wrkr_publish_only(count, batch))


def _dramatiq(mode: str) -> Callable[[], float]:
    return lambda: float(in_subprocess("bench._rabbitmq_dramatiq", str(COUNT), mode,
                                       timeout=900)["seconds"])


def throughput() -> None:
    """Print events/second end to end for wrkr, the raw clients and Dramatiq, with ratios."""
    runs: dict[str, Callable[[], float]] = {"wrkr-rabbitmq": _run(wrkr_end_to_end)}
    runs.update({f"raw {name}": _run(client) for name, client in RAW_CLIENTS.items()})
    runs["Dramatiq (confirm_delivery)"] = _dramatiq("confirm")
    runs["Dramatiq (no confirms, its default)"] = _dramatiq("noconfirm")
    best = best_times(runs, REPEAT)
    raw, dramatiq = best["raw pika (asyncio adapter)"], best["Dramatiq (confirm_delivery)"]
    rows = [(name, per_second(COUNT, seconds), ratio(raw, seconds), ratio(dramatiq, seconds))
            for name, seconds in best.items()]
    print(f"\nend to end, {COUNT:,} persistent confirmed events, best of {REPEAT} ({load()})")
    print(table(["", "events/s", "x raw pika", "x Dramatiq"], rows))


def publishing() -> None:
    """Print events/second published (not consumed) by batch size."""
    sizes = {"batches of 100 (a transaction each)": (COUNT, BATCH),
             "batches of 10 (a transaction each)": (COUNT // 2, 10),
             "one by one (a confirm each)": (COUNT // 5, 1)}
    best = best_times({label: _publish_run(*size) for label, size in sizes.items()}, REPEAT)
    rows = [(label, per_second(sizes[label][0], seconds)) for label, seconds in best.items()]
    print(f"\npublishing only, persistent, best of {REPEAT} ({load()})")
    print(table(["", "events/s"], rows))


def delays_report() -> None:
    """Print p50/p99 lateness for 1 s delays and for a 1 s ... 1 h mix."""
    rng = random.Random(7)
    one = asyncio.run(lateness([1.0] * 1000, 1000))
    mix = [rng.uniform(1, 5) for _ in range(2000)] + [
        rng.uniform(60, 3600) for _ in range(8000)]
    rng.shuffle(mix)
    mixed = asyncio.run(lateness(mix, 2000))
    rows = [(label, f"{percentile(values, 50) * 1000:.0f} ms",
             f"{percentile(values, 99) * 1000:.0f} ms", f"{min(values) * 1000:.0f} ms")
            for label, values in (("1,000 events, 1 s", one),
                                  ("2,000 of 1-5 s among 8,000 of 1 min-1 h", mixed))]
    print("\nlateness (handled minus due; min < 0 would be early)")
    print(table(["", "p50", "p99", "min"], rows))


def _consume_and_die(queue: str, held: int) -> None:
    """Take `held` messages unacked with raw pika, then close: the broker gives them back."""
    connection = pika.BlockingConnection(pika.URLParameters(URL))
    channel = connection.channel()
    channel.basic_qos(prefetch_count=held)
    for taken, (_method, _properties, body) in enumerate(
            channel.consume(queue, inactivity_timeout=30), start=1):
        if body is None:
            raise RuntimeError(f"only {taken - 1} of {held} messages arrived")
        if taken == held:
            break
    connection.close()


async def crash_recovery(queue_type: str) -> tuple[float, float, int]:
    """Return (seconds until the redelivered items were handled, seconds to drain, and the
    last position among handled items of a redelivered one), after a consumer died."""
    app, backend = _app(queue_type)
    await app.start()
    handled: dict[str, tuple[int, float]] = {}
    done = asyncio.get_running_loop().create_future()

    async def handle(event: Event) -> None:
        handled[str(event.id)] = (len(handled), time.perf_counter())
        if len(handled) == CRASH_QUEUE and not done.done():
            done.set_result(None)

    await app.subscribe("crash", "crash.event", handle, concurrency=CONCURRENCY)
    ids: list[str] = []
    for _ in range(CRASH_QUEUE // BATCH):
        ids += await app.publish([{"name": "crash.event", "payload": PAYLOAD}] * BATCH)
    await asyncio.to_thread(_consume_and_die, backend.topology.queue("crash"), CRASH_HELD)
    start = time.perf_counter()
    await app.listen()
    async with asyncio.timeout(600):
        await done
    crashed = [handled[item_id] for item_id in ids[:CRASH_HELD]]
    await _drop(app, backend)
    drained = max(at for _, at in handled.values()) - start
    return max(at for _, at in crashed) - start, drained, max(pos for pos, _ in crashed)


def _typed(run: Callable[[str], Coroutine[Any, Any, float]]) -> dict[str, Callable[[], float]]:
    return {kind: functools.partial(_run_typed, run, kind) for kind in QUEUE_TYPES}


def _run_typed(run: Callable[[str], Coroutine[Any, Any, float]], kind: str) -> float:
    return asyncio.run(run(kind))


def _cost_rows() -> list[tuple[str, str, str, str]]:
    """Measure end to end and publishing on each queue type, in turns."""
    parts: dict[str, tuple[int, Callable[[str], Coroutine[Any, Any, float]]]] = {
        "end to end": (COUNT, lambda kind: wrkr_end_to_end(COUNT, kind)),
        "publishing, batches of 100": (COUNT, lambda kind: wrkr_publish_only(COUNT, BATCH, kind)),
        "publishing, one by one": (COUNT // 5, lambda kind: wrkr_publish_only(COUNT // 5, 1, kind)),
    }
    runs = {(label, kind): run for label, (_, work) in parts.items()
            for kind, run in _typed(work).items()}
    best = best_times(runs, TYPE_REPEAT)
    return [(label, per_second(count, best[label, "quorum"]),
             per_second(count, best[label, "classic"]),
             ratio(best[label, "classic"], best[label, "quorum"]))
            for label, (count, _) in parts.items()]


def queue_types() -> None:
    """Print what quorum queues cost against classic ones, and what they gain after a crash."""
    print(f"\nquorum against classic queues, best of {TYPE_REPEAT}, in turns ({load()})")
    print(table(["", "quorum", "classic", "quorum / classic"], _cost_rows()))
    late = {kind: asyncio.run(lateness([1.0] * 1000, 1000, kind)) for kind in QUEUE_TYPES}
    print(table(["1,000 events delayed 1 s", "p50", "p99"],
                [(kind, f"{percentile(v, 50) * 1000:.0f} ms", f"{percentile(v, 99) * 1000:.0f} ms")
                 for kind, v in late.items()]))
    rows = []
    for kind in QUEUE_TYPES:
        waited, drained, last = asyncio.run(crash_recovery(kind))
        rows.append((kind, f"{waited:.2f} s", f"{last:,}", f"{drained:.2f} s"))
    print(f"\na consumer dies holding {CRASH_HELD} of {CRASH_QUEUE:,} queued items")
    print(table(["", "its items handled after", "last one's position", "queue drained after"],
                rows))


SINGLES = 1_000
CONCURRENT_PUBLISHERS = 50


def raw_single_publishes(count: int) -> float:
    """Publish `count` persistent messages with pika, each waiting for its confirm."""
    queue = f"bench.raw.{secrets.token_hex(3)}"
    with pika.BlockingConnection(pika.URLParameters(URL)) as connection:
        channel = connection.channel()
        channel.queue_declare(queue, durable=True, arguments={"x-queue-type": "quorum"})
        channel.confirm_delivery()
        body, properties = b"x" * 200, pika.BasicProperties(delivery_mode=2)
        start = time.perf_counter()
        for _ in range(count):
            channel.basic_publish("", queue, body, properties, mandatory=True)
        elapsed = time.perf_counter() - start
        channel.queue_delete(queue)
    return elapsed


async def wrkr_single_publishes(count: int, publishers: int = 1) -> float:
    """Publish `count` events with `publish()`, one event each, from `publishers` tasks."""
    app, backend = _app()
    await app.start()
    await app.subscribe("bench", "bench.event", lambda _event: None)

    async def publisher(events: int) -> None:
        for _ in range(events):
            await app.publish({"name": "bench.event", "payload": PAYLOAD})

    start = time.perf_counter()
    await asyncio.gather(*(publisher(count // publishers) for _ in range(publishers)))
    elapsed = time.perf_counter() - start
    await _drop(app, backend)
    return elapsed


def single_publishes() -> None:
    """Print issue 16's single-publish goals: wrkr beside raw pika, and concurrent publishers."""
    runs = {"raw pika, confirmed one by one": lambda: raw_single_publishes(SINGLES),
            "wrkr publish(), one event each": lambda: asyncio.run(
                wrkr_single_publishes(SINGLES)),
            f"wrkr, {CONCURRENT_PUBLISHERS} concurrent publishers": lambda: asyncio.run(
                wrkr_single_publishes(SINGLES, CONCURRENT_PUBLISHERS))}
    best = best_times(runs, TYPE_REPEAT)
    rates = {label: SINGLES / seconds for label, seconds in best.items()}
    raw, serial = rates["raw pika, confirmed one by one"], rates["wrkr publish(), one event each"]
    print(f"\nsingle publishes, {SINGLES:,} events of 200 bytes to a quorum queue, best of "
          f"{TYPE_REPEAT} in turns ({load()})")
    print(table(["", "events/s", "ratio", "goal"], [
        ("raw pika, confirmed one by one", f"{raw:,.0f}", "1.00x", ""),
        ("wrkr publish(), one event each", f"{serial:,.0f}", ratio(serial, raw),
         ">= 0.8x raw"),
        (f"wrkr, {CONCURRENT_PUBLISHERS} concurrent publishers",
         f"{rates[f'wrkr, {CONCURRENT_PUBLISHERS} concurrent publishers']:,.0f}",
         ratio(rates[f"wrkr, {CONCURRENT_PUBLISHERS} concurrent publishers"], serial)
         + " of serial", "confirms shared")]))


PARTS: dict[str, Callable[[], None]] = {"throughput": throughput, "publishing": publishing,
                                        "singles": single_publishes,
                                        "delays": delays_report, "queue_types": queue_types}


def main(parts: list[str] | None = None) -> None:
    """Run the parts named (every part by default)."""
    for part in parts or PARTS:
        PARTS[part]()


if __name__ == "__main__":
    main(sys.argv[1:])
