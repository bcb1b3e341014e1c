"""Every code block the docs mark runnable runs, as a reader would run it.

A page marks a block with a comment on the line before its fence:

    <!-- run -->            run the block with `python` in a directory of its own
    <!-- file: NAME -->     write the block to NAME first (a module a run block imports)

Each run block gets a fresh temporary directory holding its page's `file:` blocks, a
process of its own and a timeout; only the memory and SQLite backends are used (no
server), and `WRKR_*` variables of the caller are not passed on.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
TIMEOUT = 60
_BLOCK = re.compile(r"^<!-- (run|file: \S+) -->\n```python[^\n]*\n(.*?)^```", re.DOTALL | re.M)
_SERVER_URLS = re.compile(r"(amqp|mongodb|postgres(ql)?)://")


@dataclass(frozen=True)
class Block:
    page: Path
    line: int
    code: str

    def __str__(self) -> str:
        return f"{self.page.relative_to(DOCS)}:{self.line}"


def page_blocks(page: Path) -> tuple[dict[str, str], list[Block]]:
    """Return a page's `file:` blocks by name and its `run` blocks, in page order."""
    text = page.read_text()
    files: dict[str, str] = {}
    runs: list[Block] = []
    for match in _BLOCK.finditer(text):
        kind, code = match.groups()
        if kind == "run":
            runs.append(Block(page, text.count("\n", 0, match.start()) + 1, code))
        else:
            files[kind.removeprefix("file: ")] = code
    return files, runs


def runnable() -> list[tuple[dict[str, str], Block]]:
    """Return every run block of the docs with the files of its page."""
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        files, runs = page_blocks(page)
        found += [(files, block) for block in runs]
    return found


BLOCKS = runnable()


def test_the_docs_have_runnable_blocks() -> None:
    pages = {block.page.relative_to(DOCS).as_posix() for _, block in BLOCKS}
    assert {"index.md", "tutorial.md", "reference/when.md"} <= pages, pages


@pytest.mark.parametrize(("files", "block"), BLOCKS, ids=[str(b) for _, b in BLOCKS])
def test_runnable_block_runs(files: dict[str, str], block: Block, tmp_path: Path) -> None:
    assert not _SERVER_URLS.search(block.code), f"{block} needs a server: not runnable here"
    for name, code in files.items():
        (tmp_path / name).write_text(code)
    (tmp_path / "block.py").write_text(block.code)
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("WRKR_", "PYTEST_"))}
    env["PYTHONPATH"] = str(tmp_path)
    result = subprocess.run([sys.executable, "-W", "error", "block.py"], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=TIMEOUT,
                            check=False)
    assert result.returncode == 0, f"{block} failed:\n{result.stdout}{result.stderr}"
