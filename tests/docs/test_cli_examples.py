"""Every `wrkr ...` command the docs show parses with the real command's parser, so a page
cannot show a subcommand or an option that does not exist (or lost an argument)."""

from __future__ import annotations

import contextlib
import io
import re
import shlex
from pathlib import Path

import pytest

from wrkr._cli_worker import UsageError
from wrkr.cli import build_parser

DOCS = Path(__file__).resolve().parents[2] / "docs"
_FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.DOTALL | re.MULTILINE)
_COMMAND = re.compile(r"(?:^|[\s/=])wrkr((?:\s+-{1,2}[a-z]|\s+[a-z]).*)$")
_SHELLS = {"", "bash", "console", "ini", "sh", "text"}
_INLINE = re.compile(r"`wrkr ([a-z][^`]*)`")


def commands() -> list[tuple[str, str]]:
    """Return (page:line, arguments) for every `wrkr` command line in a shell-ish block."""
    found = []
    for page in sorted(DOCS.rglob("*.md")):
        text = page.read_text()
        for fence in _FENCE.finditer(text):
            if fence.group(1) not in _SHELLS:
                continue
            first = text.count("\n", 0, fence.start()) + 2
            for offset, line in enumerate(fence.group(2).splitlines()):
                match = _COMMAND.search(line.split(" #")[0].split("&&")[0])
                if match:
                    where = f"{page.relative_to(DOCS)}:{first + offset}"
                    found.append((where, match.group(1).strip()))
        found += inline(page, _FENCE.sub("", text))
    return found


def inline(page: Path, prose: str) -> list[tuple[str, str]]:
    """Return the complete commands in a page's inline code: `wrkr get ID`, not `wrkr worker`.

    A mention of a bare subcommand, one with "..." for its values, or one ending in an
    option without its value is prose, not a command line.
    """
    found = []
    for match in _INLINE.finditer(prose):
        words = match.group(1).split()
        if len(words) < 2 or "..." in match.group(1) or words[-1].startswith("-"):
            continue
        found.append((f"{page.relative_to(DOCS)} (`wrkr {match.group(1)}`)", match.group(1)))
    return found


COMMANDS = commands()


def test_the_docs_show_the_main_commands() -> None:
    shown = {shlex.split(args)[0] for _, args in COMMANDS}
    assert {"worker", "publish", "items", "get", "retry", "queues", "--version"} <= shown


@pytest.mark.parametrize(("where", "args"), COMMANDS, ids=[where for where, _ in COMMANDS])
def test_the_command_parses(where: str, args: str) -> None:
    argv = [word.strip("[]") for word in shlex.split(args)]   # [EVENT]: an optional argument
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            build_parser().parse_args(argv)
    except UsageError as exc:
        pytest.fail(f"{where}: wrkr {args}: {exc}")
    except SystemExit as exc:  # --version, --help
        if exc.code not in (0, None):
            pytest.fail(f"{where}: wrkr {args} exited {exc.code}")
