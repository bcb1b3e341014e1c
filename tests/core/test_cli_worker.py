"""`wrkr worker` and what needs no shared backend: the banner, signals, logging, refusing
a URL the app would ignore, memory:// refused elsewhere, missing extras, --version.

A worker runs on memory://, which lives in its process: its module seeds the store at
import, so that the worker has items to handle when the test signals it.
"""

from __future__ import annotations

import importlib.metadata
import re
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import wrkr
from tests.core._cli_helpers import (
    WAIT,
    assert_one_error_line,
    env,
    lines_of,
    run,
    script,
    wait_for,
    wrkr_script,
)
from wrkr import Wrkr
from wrkr import _cli_format as fmt
from wrkr.cli import main

MODULE = """\
import asyncio
import logging
import os

from wrkr import Wrkr

app = {build}
not_an_app = 42


@app.on("test.cli.slow", queue="test.cli.slow", concurrency=2, timeout="1h30m")
async def slow(event):
    logging.getLogger("pika").info("driver chatter")
    logging.getLogger("pika").warning("driver warning")
    print("handling", event.tid, flush=True)
    await asyncio.sleep(60)


@app.on("test.cli.ping", queue="test.cli.pings")
async def ping(event):
    print("ping", event.tid, flush=True)


async def seed(count):
    async with Wrkr.from_url(app.url) as seeder:
        await seeder.backend.subscribe("test.cli.slow", "test.cli.slow")
        await seeder.publish([{{"name": "test.cli.slow", "tid": str(n)}} for n in range(count)])


if app.url and app.url.startswith("memory://") and os.environ.get("SEED"):
    asyncio.run(seed(int(os.environ["SEED"])))
"""
FROM_URL = 'Wrkr.from_url(os.environ.get("WRKR_URL", "memory://"), name="clitest")'


def write_module(directory: Path, build: str = FROM_URL) -> str:
    name = f"cli_worker_{uuid.uuid4().hex[:8]}"
    (directory / f"{name}.py").write_text(MODULE.format(build=build))
    return name


@pytest.fixture
def worker_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A worker module built from WRKR_URL, in a fresh directory, the current one."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delenv("WRKR_URL", raising=False)
    return write_module(tmp_path)


class Worker:
    """A `wrkr worker` process, its stdout and stderr read line by line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        assert proc.stderr is not None
        self.proc = proc
        self.out, out_reader = lines_of(proc.stdout)
        self.err, err_reader = lines_of(proc.stderr)
        self.readers = (out_reader, err_reader)

    def end(self) -> None:
        """Kill the process if it still runs, read its output to the end, close the pipes."""
        self.proc.kill()
        self.proc.wait()
        for reader in self.readers:
            reader.join(timeout=WAIT)
        for stream in (self.proc.stdout, self.proc.stderr):
            assert stream is not None
            stream.close()

    def handling(self, count: int) -> None:
        """Wait until `count` handlers have started."""
        for _ in range(count):
            wait_for(self.out, "handling")


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Any]:
    """Start `wrkr worker MODULE:app ...` in tmp_path with `seed` items; kill it after."""
    started: list[Worker] = []

    def start(module: str, *args: str, seed: int = 0) -> Worker:
        proc = subprocess.Popen(
            [wrkr_script(), "worker", f"{module}:app", "--url", f"memory://{module}", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
            env=env(SEED=str(seed)))
        started.append(Worker(proc))
        return started[-1]

    yield start
    for worker in started:
        worker.end()


# -- finding the app, and the URL it runs on ----------------------------------------------


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


def test_the_worker_refuses_a_url_its_module_ignores(
    capsys: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    module = write_module(tmp_path, build='Wrkr(name="clitest")')
    code, out, err = run(capsys, "worker", f"{module}:app", "--url",
                         "postgresql://u:s3cret@127.0.0.1:5432/db")
    assert (code, out) == (1, [])
    assert_one_error_line(err, "--url names postgresql://u:***@127.0.0.1:5432/db",
                          "builds its app on MemoryBackend", "Wrkr.from_url(os.environ")
    assert "s3cret" not in err[0]


def test_the_worker_refuses_a_wrkr_url_its_module_ignores(
    capsys: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    module = write_module(tmp_path, build='Wrkr.from_url("memory://fixed")')
    monkeypatch.setenv("WRKR_URL", "memory://other")
    code, _, err = run(capsys, "worker", f"{module}:app")
    assert code == 1
    assert_one_error_line(err, "WRKR_URL names memory://other",
                          "MemoryBackend at memory://fixed")


# -- running, the banner, signals ---------------------------------------------------------


def test_the_banner_shows_app_worker_backend_and_every_route(
    worker_module: str, start_worker: Any
) -> None:
    worker = start_worker(worker_module)
    banner = "".join(wait_for(worker.err, "started"))
    assert re.search(r"app: +clitest\n", banner)
    assert re.search(r"worker: +clitest:[0-9a-f-]{36}\n", banner)
    assert f"MemoryBackend  memory://{worker_module}\n" in banner
    assert (f"    test.cli.slow\n      test.cli.slow -> {worker_module}.slow  "
            "(concurrency 2, timeout 1h30m)\n") in banner


def test_the_worker_runs_its_handlers_on_uvloop_when_asked(
    worker_module: str, start_worker: Any
) -> None:
    worker = start_worker(worker_module, "--loop", "uvloop", seed=1)
    assert "  loop:     uvloop\n" in "".join(wait_for(worker.err, "started"))
    worker.handling(1)  # the handler ran: on that loop, as the banner says
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(timeout=WAIT) == 0


def test_the_banner_says_the_default_loop_is_asyncios(
    worker_module: str, start_worker: Any
) -> None:
    worker = start_worker(worker_module)
    assert "  loop:     asyncio\n" in "".join(wait_for(worker.err, "started"))


WITHOUT_UVLOOP = textwrap.dedent("""\
    import sys
    sys.modules["uvloop"] = None  # as if the uvloop extra were not installed
    from wrkr.cli import main
    sys.exit(main(sys.argv[1:]))
    """)


def test_uvloop_missing_names_the_pip_install_before_anything_starts(
    worker_module: str, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_UVLOOP, "worker", f"{worker_module}:app", "--url",
         "memory://", "--loop", "uvloop"],
        capture_output=True, text=True, timeout=WAIT, cwd=tmp_path, env=env(), check=False)
    assert (done.returncode, done.stdout) == (1, "")
    assert_one_error_line(done.stderr.splitlines(), 'pip install "wrkr[uvloop]"')


def test_the_banner_masks_the_password_of_the_url() -> None:
    lines = fmt.banner(Wrkr(name="x"), "postgresql://u:s3cret@db.example/app")
    assert "  backend:  MemoryBackend  postgresql://u:***@db.example/app" in lines
    assert not any("s3cret" in line for line in lines)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_the_worker_stops_gracefully_on_a_signal(
    worker_module: str, start_worker: Any, sig: int
) -> None:
    worker = start_worker(worker_module)
    assert "worker clitest:" in wait_for(worker.err, "started")[-1]
    worker.proc.send_signal(sig)
    assert worker.proc.wait(timeout=WAIT) == 0
    rest = wait_for(worker.err, "stopped")
    assert f"{signal.Signals(sig).name} received: stopping" in "".join(rest)
    assert not any("Traceback" in line for line in rest)


def test_a_stop_says_how_many_handlers_it_waits_for(
    worker_module: str, start_worker: Any
) -> None:
    worker = start_worker(worker_module, "--stop-timeout", "0.2", seed=2)
    worker.handling(2)
    worker.proc.send_signal(signal.SIGTERM)
    said = wait_for(worker.err, "received")[-1]
    assert "SIGTERM received: stopping, waiting up to 0.2s for 2 running handler(s)" in said
    assert worker.proc.wait(timeout=WAIT) == 0


def test_stop_timeout_bounds_the_wait_for_running_handlers(
    worker_module: str, start_worker: Any
) -> None:
    worker = start_worker(worker_module, "--stop-timeout", "0.5", seed=1)
    worker.handling(1)
    signalled = time.monotonic()
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(timeout=WAIT) == 0
    assert time.monotonic() - signalled < 8.0  # the handler sleeps 60 s; the default waits 10


def test_a_second_sigint_stops_at_once(worker_module: str, start_worker: Any) -> None:
    worker = start_worker(worker_module, "--stop-timeout", "60", seed=2)
    worker.handling(2)
    worker.proc.send_signal(signal.SIGINT)
    wait_for(worker.err, "press Ctrl-C again")
    worker.proc.send_signal(signal.SIGINT)
    assert worker.proc.wait(timeout=WAIT) == 130
    said = "".join(wait_for(worker.err, "at once"))
    assert "the 2 item(s) being handled come back to their queues when their leases expire" in said


def test_the_worker_shows_driver_warnings_but_not_their_chatter(
    worker_module: str, start_worker: Any
) -> None:
    worker = start_worker(worker_module, "--stop-timeout", "0", seed=1)
    worker.handling(1)
    worker.proc.send_signal(signal.SIGTERM)
    assert worker.proc.wait(timeout=WAIT) == 0
    logged = "".join(wait_for(worker.err, "stopped"))
    assert "driver warning" in logged
    assert "driver chatter" not in logged


@pytest.mark.parametrize("value", ["-1", "soon", "inf"])
def test_a_bad_stop_timeout_is_a_usage_error(capsys: Any, value: str) -> None:
    status, _, err = run(capsys, "worker", "x:app", "--stop-timeout", value)
    assert status == 2
    assert_one_error_line(err, "--stop-timeout", repr(value))


# -- memory:// outside the worker ---------------------------------------------------------


@pytest.mark.parametrize("argv", [
    ["publish", "test.a"], ["items"], ["get", "f" * 32], ["cancel", "--tid", "1"],
    ["retry", "f" * 32], ["purge", "--all"], ["queues"], ["subscriptions"],
    ["unsubscribe", "test.q", "test.a"],
])
def test_memory_is_refused_outside_the_worker_saying_why(capsys: Any, argv: list[str]) -> None:
    status, out, err = run(capsys, *argv, "--url", "memory://")
    assert (status, out) == (1, [])
    assert_one_error_line(err, "'memory://' lives inside one process", "postgresql://")


def test_memory_from_wrkr_url_is_refused_too(
    capsys: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WRKR_URL", "memory://shop")
    status, _, err = run(capsys, "publish", "test.a")
    assert status == 1
    assert_one_error_line(err, "'memory://shop' lives inside one process")


# -- errors in one line ---------------------------------------------------------------------


def test_no_url_at_all_uses_wrkr_db_in_the_working_directory_and_says_so(
    capsys: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("WRKR_URL", raising=False)
    monkeypatch.chdir(tmp_path)
    status, out, err = run(capsys, "subscriptions")
    assert (status, out) == (0, ["queue  pattern"])
    assert err == [f"wrkr: no --url or WRKR_URL: using sqlite:///wrkr.db ({tmp_path / 'wrkr.db'})"]
    assert (tmp_path / "wrkr.db").is_file()


def test_a_password_in_the_url_is_never_printed(capsys: Any) -> None:
    status, out, err = run(capsys, "queues", "--url", "nosuch://admin:s3cret@db.example/x")
    assert (status, out) == (1, [])
    assert_one_error_line(err, "nosuch://admin:***@db.example/x")
    assert "s3cret" not in err[0]


def test_help_exits_zero(capsys: Any) -> None:
    assert main(["--help"]) == 0
    assert "subscriptions" in capsys.readouterr().out


def test_no_command_is_a_usage_error(capsys: Any) -> None:
    status, _, err = run(capsys)
    assert status == 2
    assert_one_error_line(err)


def test_the_script_reports_an_error_in_one_line_without_traceback(tmp_path: Path) -> None:
    done = script("publish", "test.a", "--url", "nosuch://u:pw1234@host/db", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (1, "")
    assert_one_error_line(done.stderr.splitlines(), "nosuch://u:***@host/db")
    assert "pw1234" not in done.stderr


def test_the_script_reports_a_missing_worker_module_in_one_line(tmp_path: Path) -> None:
    done = script("worker", "test_cli_no_such_module:app", cwd=tmp_path)
    assert done.returncode == 1
    assert_one_error_line(done.stderr.splitlines(), "cannot import")


WITHOUT_PYMONGO = textwrap.dedent("""\
    import sys
    sys.modules["pymongo"] = None  # as if the mongodb extra were not installed
    from wrkr.cli import main
    sys.exit(main(sys.argv[1:]))
    """)


def test_a_missing_extra_names_the_pip_install_to_run(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-c", WITHOUT_PYMONGO, "items", "--url", "mongodb://u:pw@db/x"],
        capture_output=True, text=True, timeout=WAIT, cwd=tmp_path, env=env(), check=False)
    assert (done.returncode, done.stdout) == (1, "")
    assert_one_error_line(done.stderr.splitlines(), "mongodb:// needs the 'mongodb' extra",
                          'pip install "wrkr[mongodb]"')


# -- the version ----------------------------------------------------------------------------


def test_version_is_the_package_version(capsys: Any) -> None:
    assert run(capsys, "--version") == (0, [f"wrkr {wrkr.__version__}"], [])
    assert wrkr.__version__ == importlib.metadata.version("wrkr")


def test_python_dash_m_wrkr_prints_the_version(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "wrkr", "--version"], capture_output=True,
                          text=True, timeout=WAIT, cwd=tmp_path, env=env(), check=False)
    assert (done.returncode, done.stdout, done.stderr) == (0, f"wrkr {wrkr.__version__}\n", "")
