"""Core benchmark: wrkr on the memory backend against plain asyncio, in one run.

Prints three tables (Markdown, so they paste into bench/README.md):

1. End to end, publish -> handler -> ack with 200-byte payloads: wrkr with 1 queue
   and with 4 queues (fan-out; every handler call counts), publishing one event per
   call and in batches, beside two baselines on the same machine in the same run: a
   raw `asyncio.Queue` producer/consumer, and the same with a stdlib-JSON encode and
   decode of the payload (the issue's "JSON baseline"); an orjson one is shown too,
   as wrkr's codec is orjson. Ratios are wrkr / baseline; contenders take turns.
2. The payload codec on its own: stdlib json, orjson, msgspec, and wrkr's own
   `encode_payload` / `decode_payload` (orjson plus its checks).
3. Scheduled items (100k and 1M, each size in a fresh process so peak RSS is its
   own): the enqueue rate, the RSS with all of them pending, and the time to deliver
   the first `DUE_SLICE` once a `ManualClock` is advanced past them (no real waiting).

Run: ``python -m bench core``; ``python -m bench.bench_core --profile`` prints a
cProfile of the one-queue end-to-end path instead.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import json
import pstats
import sys
import time
from collections.abc import Callable, Coroutine
from datetime import timedelta
from typing import Any

import orjson

from bench._common import (
    best_times,
    in_subprocess,
    load,
    peak_rss_mb,
    per_second,
    ratio,
    rss_mb,
    table,
    timed,
)
from wrkr import Event, Wrkr
from wrkr._event import decode_payload, encode_payload
from wrkr_memory import ManualClock, MemoryBackend

EVENT = "bench.user.added"
PAYLOAD_SIZE = 200
BASELINE_EVENTS = 100_000
QUEUE_BOUND = 1_000
WRKR_CALLS = 20_000
BATCH = 100
CODEC_OPS = 50_000
SCHEDULED_SIZES = (100_000, 1_000_000)
SCHEDULED_BATCH = 1_000
DUE_SLICE = 10_000
REPEAT = 3
RAW = "asyncio.Queue (raw baseline)"
JSON_BASELINE = "asyncio.Queue + json dumps/loads (JSON baseline)"
ORJSON_BASELINE = "asyncio.Queue + orjson dumps/loads"
PUBLISH_ONLY = f"(wrkr memory, publish only, batches of {BATCH}: events/s)"

Codec = tuple[Callable[[Any], bytes], Callable[[bytes], Any]]


def make_payload(size: int = PAYLOAD_SIZE) -> dict[str, Any]:
    """Return a realistic payload dict whose JSON encoding is exactly `size` bytes."""
    payload: dict[str, Any] = {
        "user_id": 1234567, "email": "someone@example.com", "plan": "pro",
        "signed_up": "2025-01-31T12:00:00+00:00", "tags": ["trial", "newsletter"],
        "score": 0.75, "note": "",
    }
    payload["note"] = "x" * (size - len(orjson.dumps(payload)))
    assert len(orjson.dumps(payload)) == size
    return payload


PAYLOAD = make_payload()


# -- end to end: baselines ----------------------------------------------------------


async def raw_queue(count: int, codec: str | None = None) -> float:
    """Time `count` payloads through an `asyncio.Queue`, encoded and decoded by `codec`.

    The queue is bounded, so producer and consumer take turns as they would in a
    service, and no more than `QUEUE_BOUND` payloads are alive at once.
    """
    encode, decode = CODECS[codec] if codec else (None, None)
    queue: asyncio.Queue[Any] = asyncio.Queue(QUEUE_BOUND)

    async def consume() -> None:
        for _ in range(count):
            item = await queue.get()
            if decode:
                decode(item)

    start = time.perf_counter()
    consumer = asyncio.create_task(consume())
    for _ in range(count):
        await queue.put(encode(PAYLOAD) if encode else PAYLOAD)
    await consumer
    return time.perf_counter() - start


# -- end to end: wrkr ---------------------------------------------------------------


async def wrkr_end_to_end(count: int, queues: int, batch: int) -> float:
    """Time `count` events published (`batch` per call) until every handler call ran."""
    events = [{"name": EVENT, "tid": str(i), "payload": PAYLOAD} for i in range(count)]
    target = count * queues
    handled = 0
    done = asyncio.Event()

    async def handler(event: Event) -> None:
        nonlocal handled
        handled += 1
        if handled == target:
            done.set()

    async with Wrkr(MemoryBackend()) as app:
        for number in range(queues):
            await app.subscribe(f"bench.queue{number}", EVENT, handler)
        await app.listen()
        start = time.perf_counter()
        if batch == 1:
            for event in events:
                await app.publish(event)
        else:
            for first in range(0, count, batch):
                await app.publish(events[first:first + batch])
        await asyncio.wait_for(done.wait(), timeout=120)
        return time.perf_counter() - start


async def wrkr_publish_only(count: int, batch: int) -> float:
    """Time publishing `count` events to one subscribed queue, with no consumer."""
    events = [{"name": EVENT, "tid": str(i), "payload": PAYLOAD} for i in range(count)]
    async with Wrkr(MemoryBackend()) as app:
        await app.subscribe("bench.unconsumed", EVENT, lambda event: None)
        start = time.perf_counter()
        for first in range(0, count, batch):
            await app.publish(events[first:first + batch])
        return time.perf_counter() - start


def in_fresh_loop(
    make: Callable[..., Coroutine[Any, Any, float]], *args: Any
) -> Callable[[], float]:
    """Return a run that times `make(*args)` in an event loop of its own."""
    return lambda: asyncio.run(make(*args))


def contenders() -> dict[str, tuple[int, Callable[[], float]]]:
    """Return the end-to-end runs by label: (handler calls, run)."""
    n = BASELINE_EVENTS
    runs = {
        RAW: (n, in_fresh_loop(raw_queue, n)),
        JSON_BASELINE: (n, in_fresh_loop(raw_queue, n, "json (stdlib)")),
        ORJSON_BASELINE: (n, in_fresh_loop(raw_queue, n, "orjson")),
    }
    for queues in (1, 4):
        events = WRKR_CALLS // queues
        for batch in (1, BATCH):
            how = "one per publish()" if batch == 1 else f"batches of {batch}"
            label = f"wrkr memory, {queues} queue{'s' * (queues > 1)}, {how}"
            runs[label] = (events * queues, in_fresh_loop(wrkr_end_to_end, events, queues, batch))
    runs[PUBLISH_ONLY] = (WRKR_CALLS, in_fresh_loop(wrkr_publish_only, WRKR_CALLS, BATCH))
    return runs


def end_to_end() -> None:
    """Print the end-to-end table: baselines first, then wrkr as ratios of them."""
    runs = contenders()
    best = best_times({label: run for label, (_, run) in runs.items()}, REPEAT)
    rates = {label: runs[label][0] / seconds for label, seconds in best.items()}
    rows = [[label, f"{runs[label][0]:,}", f"{rate:,.0f}/s", ratio(rate, rates[RAW]),
             ratio(rate, rates[JSON_BASELINE])] for label, rate in rates.items()]
    print(f"\nEnd to end, publish -> handler -> ack, {PAYLOAD_SIZE}-byte payloads; baselines "
          f"through an asyncio.Queue(maxsize={QUEUE_BOUND:,}); "
          f"best of {REPEAT}, taking turns; rate = handler calls per second "
          f"({load()}):\n")
    print(table(["path", "handler calls", "rate", "vs raw", "vs JSON baseline"], rows))


# -- payload codec ------------------------------------------------------------------


def _codecs() -> dict[str, Codec]:
    found: dict[str, Codec] = {
        "json (stdlib)": (lambda value: json.dumps(value).encode(), json.loads),
        "orjson": (orjson.dumps, orjson.loads),
    }
    try:
        import msgspec
    except ImportError:
        print("(msgspec is not installed: pip install msgspec to compare it)")
    else:
        encoder, decoder = msgspec.json.Encoder(), msgspec.json.Decoder()
        found["msgspec (Encoder/Decoder)"] = (encoder.encode, decoder.decode)
    found["wrkr encode_payload/decode_payload"] = (encode_payload, decode_payload)
    return found


CODECS = _codecs()
"""The payload codecs compared, by name: (encode, decode)."""


def codec_runs(name: str) -> dict[tuple[str, str], Callable[[], float]]:
    """Return timed loops of `CODEC_OPS` encodes, decodes and round trips with one codec."""
    encode, decode = CODECS[name]
    payload, data, ops = PAYLOAD, encode(PAYLOAD), range(CODEC_OPS)
    assert decode(data) == payload

    def encoding() -> None:
        for _ in ops:
            encode(payload)

    def decoding() -> None:
        for _ in ops:
            decode(data)

    def round_trip() -> None:
        for _ in ops:
            decode(encode(payload))

    return {(name, "encode"): lambda: timed(encoding), (name, "decode"): lambda: timed(decoding),
            (name, "both"): lambda: timed(round_trip)}


def codec_table() -> None:
    """Print the payload codec table, ratios against the stdlib json module."""
    runs = {key: run for name in CODECS for key, run in codec_runs(name).items()}
    rate = {key: CODEC_OPS / seconds for key, seconds in best_times(runs, REPEAT).items()}
    base = rate["json (stdlib)", "both"]
    rows = [[name, f"{rate[name, 'encode']:,.0f}/s", f"{rate[name, 'decode']:,.0f}/s",
             f"{rate[name, 'both']:,.0f}/s", ratio(rate[name, "both"], base)] for name in CODECS]
    print(f"\nPayload codec, the {PAYLOAD_SIZE}-byte payload (best of {REPEAT}, taking turns, "
          f"{CODEC_OPS:,} ops each; {load()}):\n")
    print(table(["codec", "encode", "decode", "encode+decode", "vs json"], rows))


# -- scheduled items ----------------------------------------------------------------


def _offset(i: int, count: int) -> timedelta:
    """Return item `i`'s delay: an hour plus a distinct millisecond, shuffled over `count`.

    Multiplying by a prime that does not divide `count` permutes 0..count-1, so due
    times arrive out of order (the heap does real work) and the first `DUE_SLICE`
    milliseconds hold exactly `DUE_SLICE` items, spread over the whole publication.
    """
    return timedelta(hours=1, milliseconds=i * 7919 % count)


async def scheduled(count: int) -> dict[str, float]:
    """Schedule `count` items, then advance the clock past the first `DUE_SLICE` and drain."""
    clock = ManualClock()
    handled = 0
    first, done = asyncio.Event(), asyncio.Event()

    async def handler(event: Event) -> None:
        nonlocal handled
        handled += 1
        first.set()
        if handled == DUE_SLICE:
            done.set()

    start_rss = rss_mb()
    async with Wrkr(MemoryBackend(clock=clock)) as app:
        await app.subscribe("bench.scheduled", EVENT, handler)
        await app.listen()
        start = time.perf_counter()
        for low in range(0, count, SCHEDULED_BATCH):
            await app.publish([{"name": EVENT, "tid": str(i), "payload": PAYLOAD,
                                "when": _offset(i, count)}
                               for i in range(low, min(low + SCHEDULED_BATCH, count))])
        enqueue = time.perf_counter() - start
        await asyncio.sleep(0.1)
        early = handled
        gc.collect()
        pending_rss = rss_mb()
        start = time.perf_counter()
        clock.advance(timedelta(hours=1, milliseconds=DUE_SLICE - 1))
        await asyncio.wait_for(first.wait(), timeout=60)
        latency = time.perf_counter() - start
        await asyncio.wait_for(done.wait(), timeout=600)
        deliver = time.perf_counter() - start
        await asyncio.sleep(0.1)
        extra = handled - DUE_SLICE
    return {"count": count, "enqueue_s": enqueue, "early": early + extra,
            "start_rss": start_rss, "pending_rss": pending_rss, "first_s": latency,
            "deliver_s": deliver, "peak_rss": peak_rss_mb()}


def scheduled_table() -> None:
    """Print the scheduled-items table, each size measured in a fresh interpreter."""
    rows = []
    for count in SCHEDULED_SIZES:
        got = in_subprocess("bench.bench_core", "--scheduled", str(count), timeout=900)
        per_item = (got["pending_rss"] - got["start_rss"]) * 1024 * 1024 / count
        rows.append([
            f"{count:,}", per_second(count, got["enqueue_s"]), f"{got['enqueue_s']:,.1f} s",
            f"{got['pending_rss']:,.0f} MB ({per_item:,.0f} B/item)",
            f"{got['first_s'] * 1000:,.1f} ms", f"{got['deliver_s']:,.2f} s",
            per_second(DUE_SLICE, got["deliver_s"]), f"{got['peak_rss']:,.0f} MB",
            f"{got['early']:.0f}",
        ])
    print(f"\nScheduled items, {PAYLOAD_SIZE}-byte payloads, due 1 h + a shuffled ms each, "
          f"published through app.publish in batches of {SCHEDULED_BATCH:,}; then "
          f"ManualClock.advance() past the first {DUE_SLICE:,} (no real waiting) and "
          f"a 1-queue consumer drains them; one fresh process per size ({load()}):\n")
    print(table(["items", "enqueue rate", "enqueue time", "RSS, all pending",
                 "first delivery", f"deliver {DUE_SLICE:,} due", "delivery rate",
                 "peak RSS", "delivered early/extra"], rows))


# -- profile --------------------------------------------------------------------------


def profile(count: int = 20_000, top: int = 25) -> None:
    """Print the `top` functions by own time on the one-queue end-to-end path."""
    profiler = cProfile.Profile()
    profiler.enable()
    asyncio.run(wrkr_end_to_end(count, queues=1, batch=BATCH))
    profiler.disable()
    print(f"\ncProfile, wrkr memory, 1 queue, {count:,} events in batches of {BATCH}:\n")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main() -> None:
    """Run the whole core benchmark (about two minutes on two cores)."""
    end_to_end()
    codec_table()
    scheduled_table()


def _cli(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bench_core")
    parser.add_argument("--scheduled", type=int, metavar="N",
                        help="measure N scheduled items only, print them as JSON (child mode)")
    parser.add_argument("--profile", action="store_true",
                        help="print a cProfile of the one-queue end-to-end path instead")
    args = parser.parse_args(argv)
    if args.scheduled:
        print(json.dumps(asyncio.run(scheduled(args.scheduled))))
    elif args.profile:
        profile()
    else:
        main()


if __name__ == "__main__":
    _cli(sys.argv[1:])
