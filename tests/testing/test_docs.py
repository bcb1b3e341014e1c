"""docs/testing.md's examples (the pytest fixture, FastAPI, Flask, Django) run as a user
would run them.

Each example's files are written out as they appear and run by pytest in a process of
their own (Django's settings, for one, are global to a process).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
_NAMED_BLOCK = re.compile(r"<!-- file: (\S+) -->\n```python\n(.*?)```", re.DOTALL)


def docs_files(heading: str) -> dict[str, str]:
    """Return the named blocks of one section of docs/testing.md."""
    text = (ROOT / "docs" / "testing.md").read_text()
    section = text.split(f"## {heading}", 1)[1].split("\n## ", 1)[0]
    return dict(_NAMED_BLOCK.findall(section))


def run_pytest(files: dict[str, str], where: Path) -> subprocess.CompletedProcess[str]:
    for name, code in files.items():
        (where / name).write_text(code)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("WRKR_", "PYTEST_"))}
    env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-W", "error",
         "-o", "asyncio_default_fixture_loop_scope=function"],
        cwd=where, env=env, capture_output=True, text=True, timeout=100, check=False)


def test_the_pytest_fixture_example_passes(tmp_path: Path) -> None:
    files = docs_files("With pytest: the `wrkr_harness` fixture")
    assert sorted(files) == ["conftest.py", "signup.py", "test_signup.py"]
    result = run_pytest(files, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


@pytest.mark.parametrize("heading", ["FastAPI", "Flask", "Django"])
def test_the_framework_example_passes(heading: str, tmp_path: Path) -> None:
    files = docs_files(heading)
    assert len(files) == 2
    result = run_pytest(files, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


def test_the_fixture_without_an_app_says_what_to_define(tmp_path: Path) -> None:
    files = {"conftest.py": 'pytest_plugins = ["wrkr.testing.pytest_plugin"]\n',
             "test_it.py": "import pytest\n\n\n@pytest.mark.asyncio\n"
                           "async def test_it(wrkr_harness):\n    pass\n"}
    result = run_pytest(files, tmp_path)
    assert result.returncode != 0
    assert "wrkr_harness needs a `wrkr_app` fixture" in result.stdout + result.stderr
