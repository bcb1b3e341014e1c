"""What the CLI tests share: running `wrkr` in-process or as the user does, bounded waits."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO, Any

import pytest

import wrkr
from wrkr.cli import main

WAIT = 20.0  # seconds: the bound of every wait on a subprocess
ROOT = Path(wrkr.__file__).resolve().parents[1]  # this checkout, whatever the cwd


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, list[str], list[str]]:
    """Run `wrkr *argv` in-process; return the exit status and stdout and stderr lines."""
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out.splitlines(), err.splitlines()


def assert_one_error_line(err: list[str], *fragments: str) -> None:
    assert len(err) == 1, err
    assert err[0].startswith("wrkr: error: ")
    for fragment in fragments:
        assert fragment in err[0], err[0]


def env(**extra: str) -> dict[str, str]:
    """The environment of a `wrkr` subprocess: this checkout first on the path, unbuffered."""
    path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")]))
    return {**os.environ, "PYTHONPATH": path, "PYTHONUNBUFFERED": "1", **extra}


def wrkr_script() -> str:
    script = Path(sys.executable).with_name("wrkr")
    if not script.exists():
        pytest.fail(f"the wrkr console script is not installed at {script}: pip install -e .")
    return str(script)


def script(*argv: str, cwd: Path, **kwargs: Any) -> subprocess.CompletedProcess[str]:
    """Run the installed `wrkr` script as a user would, bounded by WAIT."""
    return subprocess.run([wrkr_script(), *argv], capture_output=True, text=True,
                          timeout=WAIT, cwd=cwd, env=env(), check=False, **kwargs)


def lines_of(stream: IO[str]) -> tuple[queue.Queue[str], threading.Thread]:
    """Read `stream` in a thread, line by line, so that waits on it can be bounded.

    Returns the lines as they come and the thread, which ends at the end of the stream.
    """
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stream:
            lines.put(line)

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    return lines, reader


def wait_for(lines: queue.Queue[str], text: str) -> list[str]:
    """Return the lines read up to the first one containing `text` (within WAIT seconds)."""
    seen: list[str] = []
    while not seen or text not in seen[-1]:
        seen.append(lines.get(timeout=WAIT))
    return seen
