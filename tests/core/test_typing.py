"""`mypy --strict` accepts the handlers wrkr can call and rejects the others."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

USER_CODE = '''
from collections.abc import Awaitable, Callable

from wrkr import Event, Wrkr

app = Wrkr()


@app.on("a.b", queue="q")
async def good(event: Event) -> None: ...


@app.on("a.b", queue="q")
async def good_with_ack(event: Event, ack: Callable[[], Awaitable[None]]) -> None: ...


@app.on("a.b", queue="q")
def good_sync(event: Event) -> None: ...


@app.on("a.b", queue="q")  # BAD
async def wrong(event: int, x: str, y: str) -> None: ...


@app.on("a.b", queue="q")  # BAD
def wrong_type(event: str) -> None: ...


reveal_type(good)
'''


def test_mypy_strict_rejects_a_handler_with_the_wrong_signature(tmp_path: Path) -> None:
    source = tmp_path / "user_module.py"
    source.write_text(USER_CODE)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(source)],
        capture_output=True, text=True, timeout=300, check=False)
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    bad_lines = {number for number, line in enumerate(USER_CODE.splitlines(), 1)
                 if line.endswith("# BAD")}
    assert {int(line.split(":")[1]) for line in errors} == bad_lines, result.stdout
    # The decorator keeps the handler's own type.
    assert 'Revealed type is "def (event: wrkr._event.Event) -> typing.Coroutine' in result.stdout
