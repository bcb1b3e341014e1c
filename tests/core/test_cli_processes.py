"""`wrkr worker --processes N`: N workers under one supervisor, sharing one SQLite file.

The supervisor is run as a user runs it (the installed `wrkr` script), its children are
found in /proc, and everything is awaited on what the processes print.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from tests._waits import until
from tests.core._cli_helpers import WAIT, assert_one_error_line, env, lines_of, run, wait_for
from tests.core._cli_helpers import wrkr_script as installed_wrkr
from wrkr import Wrkr

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="finds the children in /proc")

MODULE = """\
import os

from wrkr import Wrkr

app = Wrkr.from_url(os.environ["WRKR_URL"], name="processes")


@app.on("test.proc.job", queue="test.proc.jobs", concurrency=4)
async def job(event):
    # one write(2) per line: two processes share the pipe, and print() writes piecewise
    os.write(1, f"handled {event.tid} {os.getpid()}\\n".encode())
"""


def children(pid: int) -> set[int]:
    """The live child processes of `pid`, as Linux lists them."""
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        found |= {int(child) for child in (task / "children").read_text().split()}
    return found


def publish(url: str, first: int, count: int) -> None:
    async def go() -> None:
        async with Wrkr.from_url(url) as app:
            await app.publish([{"name": "test.proc.job", "tid": str(n)}
                               for n in range(first, first + count)])
    asyncio.run(go())


async def nothing_left(url: str) -> bool:
    """Tell whether the file holds no item in any state (every item was acked)."""
    async with Wrkr.from_url(url) as app:
        return not any(n for counts in (await app.counts()).values() for n in counts.values())


def handled(lines: object, count: int) -> list[tuple[str, int]]:
    """Read `count` "handled TID PID" lines from the workers' stdout."""
    seen = []
    for _ in range(count):
        _, tid, pid = wait_for(lines, "handled")[-1].split()  # type: ignore[arg-type]
        seen.append((tid, int(pid)))
    return seen


def test_n_processes_share_the_work_a_dead_one_is_restarted_and_a_stop_ends_all(
        tmp_path: Path) -> None:
    module = f"procs_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(MODULE)
    url = f"sqlite:///{tmp_path / 'work.db'}"
    supervisor = subprocess.Popen(
        [installed_wrkr(), "worker", f"{module}:app", "--processes", "2", "--url", url,
         "--stop-timeout", "2"], cwd=tmp_path, env=env(), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert supervisor.stdout is not None
    assert supervisor.stderr is not None
    out, out_reader = lines_of(supervisor.stdout)
    err, err_reader = lines_of(supervisor.stderr)
    try:
        wait_for(err, "workers:  2 processes")
        wait_for(err, "test.proc.job -> ")  # one banner, from the supervisor
        for _ in range(2):
            wait_for(err, "started; Ctrl-C or SIGTERM stops it")
        first = children(supervisor.pid)
        assert len(first) == 2

        publish(url, 0, 100)
        seen = handled(out, 100)
        assert sorted(tid for tid, _ in seen) == sorted(str(n) for n in range(100))
        assert {pid for _, pid in seen} <= first

        # a handled line comes before its ack is stored: wait for the acks, so that the
        # kill below strands nothing (a killed worker's unacked items would come back only
        # when their leases end, which this test is not about)
        asyncio.run(until(lambda: nothing_left(url), "every ack is stored", timeout=WAIT))
        killed = min(first)
        os.kill(killed, signal.SIGKILL)
        assert "exited with status -9" in wait_for(err, f"(pid {killed}) exited")[-1]
        wait_for(err, "started; Ctrl-C or SIGTERM stops it")
        second = children(supervisor.pid)
        assert len(second) == 2
        assert killed not in second
        assert max(first) in second

        publish(url, 100, 50)
        assert sorted(tid for tid, _ in handled(out, 50)) == sorted(
            str(n) for n in range(100, 150))

        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=WAIT) == 0
        for pid in second:
            with pytest.raises(ProcessLookupError):
                os.kill(pid, 0)
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
        for reader, stream in ((out_reader, supervisor.stdout), (err_reader, supervisor.stderr)):
            reader.join(timeout=WAIT)
            stream.close()

    assert asyncio.run(nothing_left(url))


def test_processes_refuse_a_memory_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    module = f"procs_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("WRKR_URL", "memory://")
    status, _, err = run(capsys, "worker", f"{module}:app", "--processes", "2")
    assert status == 2
    assert_one_error_line(err, "--processes 2 needs a backend the processes share",
                          "memory://")


def test_processes_must_be_a_positive_count(capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(capsys, "worker", "x:app", "--processes", "0")
    assert status == 2
    assert "--processes" in err[-1]
    assert "'0'" in err[-1]
