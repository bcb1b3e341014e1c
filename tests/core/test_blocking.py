"""BlockingWrkr: wrkr from threads that are not async, such as a web server's."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from wrkr import Event, InvalidConfig, InvalidEvent, ItemNotFound, NotStarted, UnknownBackend, Wrkr
from wrkr._blocking import BlockingWrkr
from wrkr._errors import AlreadyStarted
from wrkr_memory import MemoryBackend, MemoryStore

QUEUE = "test.blocking.inbox"
EVENT = "test.blocking.user.added"


def _app(store: MemoryStore | None = None) -> Wrkr:
    """An app whose one route is subscribed at start; nothing consumes, so items stay."""
    app = Wrkr(MemoryBackend(store), name="web")
    app.on(EVENT, queue=QUEUE)(lambda event: None)
    return app


@pytest.fixture
def events() -> Iterator[BlockingWrkr]:
    with BlockingWrkr(_app()) as facade:
        yield facade


def _loop_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("wrkr-blocking-")]


def test_publish_from_many_threads_at_once_creates_every_item(events: BlockingWrkr) -> None:
    threads, per_thread = 8, 25
    barrier = threading.Barrier(threads)

    def publish_some(n: int) -> list[str]:
        barrier.wait(timeout=10)
        return [id_ for i in range(per_thread)
                for id_ in events.publish({"name": EVENT, "tid": f"{n}-{i}"})]

    with ThreadPoolExecutor(threads) as pool:
        ids = [id_ for batch in pool.map(publish_some, range(threads)) for id_ in batch]
    assert len(set(ids)) == threads * per_thread
    assert {event.id for event in events.items(queue=QUEUE)} == set(ids)


def test_inspection_calls_are_forwarded(events: BlockingWrkr) -> None:
    [item_id] = events.publish({"name": EVENT, "tid": "42", "payload": {"plan": "pro"}})
    assert events.subscriptions(EVENT) == [QUEUE]
    assert events.get(item_id).payload == {"plan": "pro"}
    assert [e.tid for e in events.items(tid="42", state="ready")] == ["42"]
    assert events.cancel(name=EVENT, tid="42") == 1
    assert events.items(queue=QUEUE) == []


def test_a_batch_is_published_in_one_call(events: BlockingWrkr) -> None:
    ids = events.publish([{"name": EVENT, "tid": "1"}, {"name": EVENT, "tid": "2"}])
    assert len(ids) == 2


def test_wrkr_errors_reach_the_caller_unchanged(events: BlockingWrkr) -> None:
    with pytest.raises(InvalidEvent, match="bad name"):
        events.publish({"name": "bad name"})
    with pytest.raises(ItemNotFound):
        events.retry("0" * 32)
    assert events.items(queue=QUEUE) == []


def test_calls_after_close_raise_not_started() -> None:
    facade = BlockingWrkr(_app()).start()
    facade.close()
    with pytest.raises(NotStarted, match="closed"):
        facade.publish({"name": EVENT})
    with pytest.raises(NotStarted, match="closed"):
        facade.items()


def test_close_while_threads_publish_keeps_every_item_it_returned() -> None:
    store = MemoryStore()
    facade = BlockingWrkr(_app(store)).start()
    returned: list[str] = []
    some_published = threading.Event()

    def publish_until_closed() -> None:
        with contextlib.suppress(NotStarted):
            while True:
                returned.extend(facade.publish({"name": EVENT}))
                some_published.set()

    with ThreadPoolExecutor(4) as pool:
        running = [pool.submit(publish_until_closed) for _ in range(4)]
        assert some_published.wait(timeout=10)
        facade.close()
        for future in running:
            future.result(timeout=10)
    assert returned
    assert {event.id for event in asyncio.run(_stored(store))} == set(returned)


async def _stored(store: MemoryStore) -> list[Event]:
    async with Wrkr(MemoryBackend(store)) as app:
        return await app.items(queue=QUEUE)


def test_close_is_idempotent_and_ends_the_loop_thread() -> None:
    facade = BlockingWrkr(_app()).start()
    assert _loop_threads()
    facade.close()
    facade.close()
    assert _loop_threads() == []


def test_calls_before_start_raise_not_started() -> None:
    facade = BlockingWrkr(_app())
    with pytest.raises(NotStarted, match="not started"):
        facade.publish({"name": EVENT})


def test_a_facade_starts_once() -> None:
    with BlockingWrkr(_app()) as facade, pytest.raises(AlreadyStarted):
        facade.start()
    with pytest.raises(NotStarted, match="closed"):
        facade.start()


def test_the_context_manager_closes() -> None:
    with BlockingWrkr(_app()) as facade:
        assert facade.publish({"name": EVENT})
    with pytest.raises(NotStarted):
        facade.publish({"name": EVENT})


def test_built_from_a_url_with_app_options() -> None:
    with BlockingWrkr("memory://", name="crm") as facade:
        assert facade.app.worker_id.startswith("crm:")
        assert facade.subscriptions(EVENT) == []


def test_an_unknown_url_fails_at_construction() -> None:
    with pytest.raises(UnknownBackend, match="nosuch"):
        BlockingWrkr("nosuch://host")


def test_options_only_go_with_a_url() -> None:
    with pytest.raises(InvalidConfig, match="options"):
        BlockingWrkr(_app(), name="x")


def test_a_facade_started_before_a_fork_works_in_the_child_with_its_own_thread() -> None:
    import os

    events = BlockingWrkr("memory://", call_timeout=5).start()
    try:
        events.subscriptions("a.b")  # in use in the parent before the fork
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: a publish must answer, not time out
            status = 1
            try:
                os.close(read)
                events.app.backend  # noqa: B018 - the child's app is rebuilt on first call
                ids = events.publish({"name": "a.b"})
                os.write(write, f"ok {len(ids)} {events.app.backend.is_open}".encode())
                status = 0
            except BaseException as exc:  # report, never run the parent's test code on
                os.write(write, f"error {exc!r}".encode())
            finally:
                os._exit(status)
        os.close(write)
        with os.fdopen(read) as answer:
            said = answer.read()
        _, status = os.waitpid(pid, 0)
        assert said == "ok 0 True", said
        assert os.waitstatus_to_exitcode(status) == 0
        assert events.subscriptions("a.b") == []  # the parent's facade still works
    finally:
        events.close()



def test_a_call_that_gets_no_answer_in_time_raises_call_timed_out() -> None:
    from wrkr import CallTimedOut

    release = threading.Event()

    async def stuck(*args: object, **kwargs: object) -> list[str]:
        await asyncio.to_thread(release.wait, 5)
        return []

    events = BlockingWrkr("memory://", call_timeout=0.2).start()
    try:
        events.app.subscriptions = stuck  # type: ignore[method-assign]
        with pytest.raises(CallTimedOut, match=r"no answer from stuck\(\) within 0.2 s"):
            events.subscriptions("a.b")
    finally:
        release.set()
        events.close()


def test_a_blocking_app_left_open_on_sqlite_closes_quietly_at_exit(tmp_path: Path) -> None:
    # its atexit hook closes it while the interpreter shuts down, when no new thread
    # may start (the SQLite connection's close once started one: a traceback at exit)
    script = tmp_path / "left_open.py"
    script.write_text(textwrap.dedent(f"""\
        from wrkr import BlockingWrkr
        app = BlockingWrkr("sqlite:///{tmp_path / 'left.db'}").start()
        print(len(app.publish({{"name": "test.left.open"}})))
        """))
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True,
                          timeout=60, check=False, cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (0, "0\n", "")
