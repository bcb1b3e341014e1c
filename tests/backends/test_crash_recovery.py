"""A worker killed with SIGKILL mid-handler: its item is handled elsewhere within a lease.

The worker is a real child process on a real server; nothing tells the backend it
died. With a handler timeout of 2 hours, the item must still come back in about one
lease (1 s here), not after the timeout.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import textwrap
import time
from collections.abc import Iterator

import pytest

from tests.conftest import PG_URL, RABBITMQ_URL, new_schema
from wrkr import Event, Wrkr

LEASE = "1 second"
CHILD = textwrap.dedent("""
    import asyncio, sys
    from wrkr import Wrkr

    async def main(url):
        async def handler(event):
            print("started", event.id, flush=True)
            await asyncio.Event().wait()  # works until killed

        async with Wrkr.from_url(url, lease={lease!r}) as app:
            await app.subscribe("crash.q", "crash.job", handler, timeout="2 hours")
            await app.run()

    asyncio.run(main(sys.argv[1]))
""").format(lease=LEASE)


@pytest.fixture(params=["postgresql", "amqp"])
def url(request: pytest.FixtureRequest) -> Iterator[str]:
    """A fresh namespace on each local server."""
    if request.param == "postgresql":
        for schema in new_schema(request):
            yield f"{PG_URL}?schema={schema}"
    else:
        import secrets

        from tests._services import require_service

        require_service("RabbitMQ", 5672)
        yield f"{RABBITMQ_URL}?prefix=wc{secrets.token_hex(4)}"


async def test_a_killed_workers_item_is_handled_by_another_within_about_a_lease(
    url: str,
) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable, "-c", CHILD, url, stdout=asyncio.subprocess.PIPE)
    assert child.stdout is not None
    handled: asyncio.Queue[Event] = asyncio.Queue()

    async def take_over(event: Event) -> None:
        handled.put_nowait(event)

    try:
        async with Wrkr.from_url(url, lease=LEASE) as app:
            await app.subscribe("crash.q", "crash.job", take_over, timeout="2 hours")
            [item_id] = await app.publish({"name": "crash.job"})
            line = await asyncio.wait_for(child.stdout.readline(), 30)
            if not line:  # the child died on its own: say why rather than time out
                raise AssertionError(f"worker exited with {await child.wait()}")
            assert line.split()[0] == b"started"
            child.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            await child.wait()
            await app.listen()
            event = await asyncio.wait_for(handled.get(), 30)
            recovered_in = time.monotonic() - killed_at
    finally:
        if child.returncode is None:
            child.kill()
            await child.wait()
    assert event.attempts == 2  # the killed worker's attempt counts
    assert event.id == item_id or url.startswith("amqp")
    # About one lease (1 s) plus a claim's poll, far below the 2-hour timeout.
    assert recovered_in < 20, f"item came back after {recovered_in:.1f}s"
