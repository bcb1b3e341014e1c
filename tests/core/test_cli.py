"""The `wrkr` command, as its user sees it: stdout lines, one-line errors, exit codes.

Most tests call `main([...])` in this process, on a named memory store (`memory://NAME`)
that every call shares; the worker and the no-traceback promise are checked on the
installed `wrkr` script in a subprocess.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import re
import signal
import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path
from typing import IO, Any

import pytest

from wrkr import Fail, State, Wrkr
from wrkr.cli import main
from wrkr_memory import MemoryBackend

EVENT = "test.cli.user.added"
QUEUES = ("test.cli.crm", "test.cli.mail")
FAILING = "test.cli.charges"  # a queue of its own: its consumer sees no other event
ITEM_ID = re.compile(r"[0-9a-f]{32}")
WAIT = 20.0  # seconds: the bound of every wait on a subprocess


@pytest.fixture
def url() -> str:
    """A memory store of this test's own, shared by every `main()` call, both queues subscribed."""
    store = f"memory://test-cli-{uuid.uuid4().hex}"
    asyncio.run(_subscribe(store))
    return store


async def _subscribe(url: str) -> None:
    async with Wrkr.from_url(url) as app:
        for name in QUEUES:
            await app.subscribe(name, "test.cli.#", lambda event: None)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], list[str]]:
    """Run `wrkr *argv` in-process; return the exit status and stdout and stderr lines."""
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out.splitlines(), err.splitlines()


def publish(capsys: pytest.CaptureFixture[str], url: str, *args: str) -> list[str]:
    status, out, err = run(capsys, "publish", EVENT, "--url", url, *args)
    assert status == 0
    assert err == ([] if out else ["wrkr: nothing stored: a pending --once-every item "
                                   "already exists"])
    return out


def assert_one_error_line(err: list[str], *fragments: str) -> None:
    assert len(err) == 1, err
    assert err[0].startswith("wrkr: error: ")
    for fragment in fragments:
        assert fragment in err[0]


# -- publish -----------------------------------------------------------------------------


def test_publish_prints_one_item_id_per_subscribed_queue(capsys: Any, url: str) -> None:
    out = publish(capsys, url, "--tid", "42", "--payload", '{"plan": "pro"}')
    assert len(out) == len(QUEUES)
    assert all(ITEM_ID.fullmatch(line) for line in out)


def test_publish_to_no_subscriber_prints_no_id_and_says_why(capsys: Any, url: str) -> None:
    assert run(capsys, "publish", "test.other.event", "--url", url) == (
        0, [], ["wrkr: nothing stored: no queue is subscribed to 'test.other.event'"])


def test_publish_once_every_skips_a_pending_duplicate(capsys: Any, url: str) -> None:
    assert len(publish(capsys, url, "--tid", "7", "--once-every", "1 hour")) == 2
    assert publish(capsys, url, "--tid", "7", "--once-every", "1 hour") == []


def test_publish_when_schedules_the_items(capsys: Any, url: str) -> None:
    ids = publish(capsys, url, "--when", "in 2 hours")
    status, out, _ = run(capsys, "items", "--url", url, "--state", "scheduled")
    assert status == 0
    assert {line.split()[0] for line in out[1:]} == set(ids)


@pytest.mark.parametrize("payload", ["{not json", "[1, 2]", '"text"'])
def test_a_bad_payload_is_a_usage_error(capsys: Any, url: str, payload: str) -> None:
    status, out, err = run(capsys, "publish", EVENT, "--url", url, "--payload", payload)
    assert (status, out) == (2, [])
    assert_one_error_line(err, "--payload")
    assert run(capsys, "items", "--url", url)[1][1:] == []


def test_a_bad_when_is_reported_with_the_value(capsys: Any, url: str) -> None:
    status, out, err = run(capsys, "publish", EVENT, "--url", url, "--when", "someday")
    assert (status, out) == (1, [])
    assert_one_error_line(err, "someday")


def test_a_bad_event_name_is_reported(capsys: Any, url: str) -> None:
    status, _, err = run(capsys, "publish", "bad name", "--url", url)
    assert status == 1
    assert_one_error_line(err, "bad name")


# -- items / get -------------------------------------------------------------------------


def test_items_prints_a_table_with_a_header(capsys: Any, url: str) -> None:
    ids = publish(capsys, url, "--tid", "42")
    status, out, _ = run(capsys, "items", "--url", url)
    assert status == 0
    assert out[0].split() == ["id", "queue", "name", "tid", "state", "due", "attempts"]
    rows = sorted(line.split() for line in out[1:])
    assert [row[:5] for row in rows] == sorted(
        [id_, q, EVENT, "42", "ready"] for id_, q in zip(ids, QUEUES, strict=True))
    assert [row[6] for row in rows] == ["0", "0"]


def test_items_filters_and_limits(capsys: Any, url: str) -> None:
    publish(capsys, url, "--tid", "1")
    publish(capsys, url, "--tid", "2")
    _, out, _ = run(capsys, "items", "--url", url, "--queue", QUEUES[0], "--tid", "2")
    assert [line.split()[3] for line in out[1:]] == ["2"]
    _, out, _ = run(capsys, "items", "--url", url, "--limit", "3")
    assert len(out[1:]) == 3


def test_items_json_prints_one_object_per_line(capsys: Any, url: str) -> None:
    publish(capsys, url, "--tid", "42", "--payload", '{"text": "héllo", "n": [1, {"a": null}]}')
    status, out, _ = run(capsys, "items", "--url", url, "--json")
    assert status == 0
    rows = [json.loads(line) for line in out]
    assert sorted(row["queue"] for row in rows) == sorted(QUEUES)
    assert all(row["payload"] == {"text": "héllo", "n": [1, {"a": None}]} for row in rows)
    assert all(row["state"] == "ready" and row["errors"] == [] for row in rows)


@pytest.mark.parametrize(("option", "value"), [("--limit", "0"), ("--state", "lost")])
def test_a_bad_items_filter_is_a_usage_error(capsys: Any, url: str, option: str,
                                             value: str) -> None:
    status, out, err = run(capsys, "items", "--url", url, option, value)
    assert (status, out) == (2, [])
    assert_one_error_line(err, option)


def test_get_shows_every_field_with_payload_and_errors(capsys: Any, url: str) -> None:
    item_id = _failed_item(url)
    status, out, _ = run(capsys, "get", item_id, "--url", url)
    assert status == 0
    fields = dict(line.split(":", 1) for line in out if not line.startswith("  "))
    assert fields["id"].strip() == item_id
    assert fields["state"].strip() == "failed"
    assert json.loads(fields["payload"]) == {"plan": "pro"}
    assert re.fullmatch(r"  attempt 1 at \S+Z: Fail: card declined", out[-1])


def test_get_json_holds_the_error_history(capsys: Any, url: str) -> None:
    item_id = _failed_item(url)
    status, out, _ = run(capsys, "get", item_id, "--url", url, "--json")
    assert status == 0
    [line] = out
    item = json.loads(line)
    assert (item["id"], item["state"], item["payload"]) == (item_id, "failed", {"plan": "pro"})
    assert [(e["attempt"], e["type"], e["message"]) for e in item["errors"]] == [
        (1, "Fail", "card declined")]


def test_get_an_unknown_id_is_an_error(capsys: Any, url: str) -> None:
    status, out, err = run(capsys, "get", "f" * 32, "--url", url)
    assert (status, out) == (1, [])
    assert_one_error_line(err, "f" * 32)


# -- cancel / retry / queues ---------------------------------------------------------------


def test_cancel_prints_how_many_items_it_deleted(capsys: Any, url: str) -> None:
    publish(capsys, url, "--tid", "1")
    publish(capsys, url, "--tid", "2")
    assert run(capsys, "cancel", "--url", url, "--tid", "1") == (0, ["2"], [])
    assert run(capsys, "cancel", "--url", url, "--tid", "1") == (0, ["0"], [])
    assert len(run(capsys, "items", "--url", url)[1][1:]) == 2


def test_cancel_without_a_filter_is_a_usage_error(capsys: Any, url: str) -> None:
    publish(capsys, url)
    status, out, err = run(capsys, "cancel", "--url", url)
    assert (status, out) == (2, [])
    assert_one_error_line(err, "--name", "--tid", "--queue")
    assert len(run(capsys, "items", "--url", url)[1][1:]) == 2


def test_retry_moves_a_failed_item_back_to_ready(capsys: Any, url: str) -> None:
    item_id = _failed_item(url)
    assert run(capsys, "retry", item_id, "--url", url) == (0, [f"retried {item_id}"], [])
    _, out, _ = run(capsys, "items", "--url", url, "--state", "ready", "--queue", FAILING)
    assert [line.split()[0] for line in out[1:]] == [item_id]


def test_retry_of_an_item_that_is_not_failed_is_an_error(capsys: Any, url: str) -> None:
    [item_id, _] = publish(capsys, url)
    status, _, err = run(capsys, "retry", item_id, "--url", url)
    assert status == 1
    assert_one_error_line(err, item_id)


def test_queues_counts_items_per_queue_and_state(capsys: Any, url: str) -> None:
    publish(capsys, url)
    publish(capsys, url, "--when", "1 day")
    status, out, _ = run(capsys, "queues", "--url", url)
    assert status == 0
    assert out[0].split() == ["queue", *(state.value for state in State)]
    assert [line.split() for line in out[1:]] == [
        [name, "1", "1", "0", "0", "0"] for name in sorted(QUEUES)]


def test_queues_json(capsys: Any, url: str) -> None:
    publish(capsys, url, "--when", "1 day")
    _, out, _ = run(capsys, "queues", "--url", url, "--json")
    assert [json.loads(line) for line in out] == [
        {"queue": name, "scheduled": 1, "ready": 0, "processing": 0, "done": 0, "failed": 0}
        for name in sorted(QUEUES)]


class _NoQueryBackend(MemoryBackend):
    capabilities = frozenset()


def test_queues_needs_a_backend_that_can_query(
    capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(Wrkr, "from_url", classmethod(lambda cls, url: cls(_NoQueryBackend())))
    status, out, err = run(capsys, "queues", "--url", "memory://")
    assert (status, out) == (1, [])
    assert_one_error_line(err, "_NoQueryBackend does not support 'query'", "wrkr queues")


async def _fail_one(url: str) -> str:
    """Publish to FAILING only, let a handler raise `Fail`; return the failed item's id."""
    async with Wrkr.from_url(url) as app:

        def refuse(event: object) -> None:
            raise Fail("card declined")

        await app.subscribe(FAILING, "test.failing.charge", refuse)
        [item_id] = await app.publish({"name": "test.failing.charge", "payload": {"plan": "pro"}})
        await app.listen()
        async with asyncio.timeout(WAIT):
            # Polling: the backend's state changes raise no signal a test could await.
            while (await app.get(item_id)).state is not State.FAILED:  # noqa: ASYNC110
                await asyncio.sleep(0.01)
        return item_id


def _failed_item(url: str) -> str:
    return asyncio.run(_fail_one(url))


# -- the backend URL ---------------------------------------------------------------------


def test_wrkr_url_names_the_backend_when_url_is_not_given(
    capsys: Any, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WRKR_URL", url)
    status, out, _ = run(capsys, "publish", EVENT)
    assert (status, len(out)) == (0, 2)


def test_no_url_at_all_is_a_usage_error(capsys: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("WRKR_URL", raising=False)
    status, out, err = run(capsys, "items")
    assert (status, out) == (2, [])
    assert_one_error_line(err, "--url", "WRKR_URL")


def test_a_password_in_the_url_is_never_printed(capsys: Any) -> None:
    status, out, err = run(capsys, "queues", "--url", "nosuch://admin:s3cret@db.example/x")
    assert (status, out) == (1, [])
    assert_one_error_line(err, "nosuch://admin:***@db.example/x")
    assert "s3cret" not in err[0]


def test_help_exits_zero(capsys: Any) -> None:
    assert main(["--help"]) == 0
    assert "publish" in capsys.readouterr().out


def test_no_command_is_a_usage_error(capsys: Any) -> None:
    status, _, err = run(capsys)
    assert status == 2
    assert_one_error_line(err)


# -- worker: finding the app ---------------------------------------------------------------


@pytest.fixture
def worker_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A worker module in a fresh directory, the current one; return its name."""
    name = f"cli_worker_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{name}.py").write_text(textwrap.dedent("""\
        import os

        from wrkr import Wrkr

        app = Wrkr.from_url(os.environ.get("WRKR_URL", "memory://"), name="clitest")
        not_an_app = 42


        @app.on("test.cli.ping", queue="test.cli.pings")
        async def ping(event):
            print("ping", event.tid, flush=True)
        """))
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    return name


@pytest.mark.parametrize(
    ("target", "status", "fragment"),
    [
        ("no_colon_here", 2, "MODULE:ATTR"),
        ("test_cli_no_such_module:app", 1, "cannot import 'test_cli_no_such_module'"),
        ("{module}:missing", 1, "has no attribute 'missing'"),
        ("{module}:not_an_app", 1, "is a int, not a wrkr.Wrkr"),
    ],
)
def test_a_worker_target_that_is_not_an_app_is_reported(
    capsys: Any, worker_module: str, target: str, status: int, fragment: str
) -> None:
    code, out, err = run(capsys, "worker", target.format(module=worker_module))
    assert (code, out) == (status, [])
    assert_one_error_line(err, fragment)


# -- the installed script --------------------------------------------------------------------


def wrkr_script() -> str:
    script = Path(sys.executable).with_name("wrkr")
    if not script.exists():
        pytest.fail(f"the wrkr console script is not installed at {script}: pip install -e .")
    return str(script)


def lines_of(stream: IO[str]) -> queue.Queue[str]:
    """Read `stream` in a thread, line by line, so that waits on it can be bounded."""
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    return lines


def wait_for(lines: queue.Queue[str], text: str) -> list[str]:
    """Return the lines read up to the first one containing `text` (within WAIT seconds)."""
    seen: list[str] = []
    while not seen or text not in seen[-1]:
        seen.append(lines.get(timeout=WAIT))
    return seen


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_worker_stops_gracefully_on_a_signal(worker_module: str, sig: int) -> None:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen([wrkr_script(), "worker", f"{worker_module}:app", "--url",
                           "memory://"], stderr=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True, env=env) as proc:
        try:
            assert proc.stderr is not None
            err = lines_of(proc.stderr)
            assert "worker clitest:" in wait_for(err, "started")[-1]
            proc.send_signal(sig)
            assert proc.wait(timeout=WAIT) == 0
            rest = wait_for(err, "stopped")
        finally:
            proc.kill()
    assert not any("Traceback" in line for line in rest)


def test_the_script_reports_an_error_in_one_line_without_traceback(tmp_path: Path) -> None:
    done = subprocess.run(
        [wrkr_script(), "publish", EVENT, "--url", "nosuch://u:pw1234@host/db"],
        capture_output=True, text=True, timeout=WAIT, cwd=tmp_path, check=False)
    assert (done.returncode, done.stdout) == (1, "")
    assert_one_error_line(done.stderr.splitlines(), "nosuch://u:***@host/db")
    assert "pw1234" not in done.stderr


def test_the_script_reports_a_missing_worker_module_in_one_line(tmp_path: Path) -> None:
    done = subprocess.run([wrkr_script(), "worker", "test_cli_no_such_module:app"],
                          capture_output=True, text=True, timeout=WAIT, cwd=tmp_path,
                          check=False)
    assert done.returncode == 1
    assert_one_error_line(done.stderr.splitlines(), "cannot import")
