"""Pages the docs build generates from the code, so they cannot drift from it.

A page holds a marker comment; `on_page_markdown` (an MkDocs hook, listed under `hooks:`
in mkdocs.yml) replaces it with Markdown made here:

    <!-- generated: capabilities -->   each installed backend's declared `capabilities`
    <!-- generated: conformance -->    per suite class, the tests each backend runs
    <!-- generated: cli -->            the `wrkr` command's help, from its argparse parser
    <!-- generated: errors -->         the exception tree, from the error classes
    <!-- generated: when-grammar -->   the interval grammar and spellings of `wrkr._when`
    <!-- generated: http-api -->       every operation of wrkr.web's OpenAPI document

The functions are plain (no MkDocs import) so tests/docs can call them too.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import re
import textwrap
from collections.abc import Callable
from importlib.metadata import entry_points
from typing import Any, cast

from backend_conformance_tests import BackendSuite
from wrkr.backend import Backend, Capability

MARKER = re.compile(r"<!-- generated: ([a-z-]+) -->")
YES, NO = "✓", "\N{EN DASH}"


def backends() -> dict[type[Backend], list[str]]:
    """Return every backend registered under `wrkr.backends`, with its URL schemes.

    Loading the entry point imports the backend's package: a backend whose driver is
    missing fails the build rather than vanishing from the table.
    """
    found: dict[type[Backend], list[str]] = {}
    for point in sorted(entry_points(group="wrkr.backends"), key=lambda p: p.name):
        found.setdefault(point.load(), []).append(point.name)
    return dict(sorted(found.items(), key=lambda pair: _order(pair[0])))


def _order(backend: type[Backend]) -> tuple[bool, int, str]:
    # memory first (the default), then by how many capabilities, then by name
    memory = backend.__module__.startswith("wrkr_memory")
    return (not memory, -len(backend.capabilities), backend.__name__)


def capabilities_table() -> str:
    """Return a Markdown table: one row per capability, one column per backend."""
    found = backends()
    head = "| capability | " + " | ".join(_label(cls, schemes) for cls, schemes in found.items())
    rule = "|---|" + "---|" * len(found)
    rows = [f"| [`{cap.value}`](#{cap.value}) | "
            + " | ".join(YES if cap in cls.capabilities else NO for cls in found) + " |"
            for cap in Capability]
    return "\n".join([head + " |", rule, *rows])


def capability_list() -> str:
    """Return a definition list of every capability and what it means (its comment)."""
    source = inspect.getsource(Capability)
    meaning = dict(re.findall(r'^\s+[A-Z_]+ = "([a-z_]+)"\s+#\s*(.+)$', source, re.MULTILINE))
    return "\n".join(f"### `{cap.value}`\n\n`Capability.{cap.name}`: {meaning[cap.value]}.\n"
                     for cap in Capability)


def _label(cls: type[Backend], schemes: list[str]) -> str:
    urls = ", ".join(f"`{scheme}://`" for scheme in schemes)
    return f"{_short(cls)}<br><small>{urls}</small>"


def suite_classes() -> list[type[Any]]:
    """Return the suite classes `BackendSuite` combines, in its order."""
    return [cls for cls in BackendSuite.__mro__[1:]
            if cls.__name__.endswith("Suite") and cls.__name__ != "SuiteBase"
            and cls.__module__.startswith("backend_conformance_tests")]


def _tests(suite: type[Any]) -> Tests:
    return [(name, tuple(getattr(test, "__wrkr_needs__", ())),
             tuple(getattr(test, "__wrkr_without__", ())))
            for name, test in vars(suite).items()
            if name.startswith("test_") and callable(test)]


def conformance_table() -> str:
    """Return, per suite class and backend, how many of its tests run (the rest are skipped).

    A test is skipped exactly when it needs a capability the backend does not declare
    (`backend_conformance_tests.needs`), or is the counterpart of one it declares
    (`without`), so the count follows from the declarations.
    Below the table, what each suite class checks (its docstring's first line).
    """
    found = backends()
    head = "| suite | tests | " + " | ".join(_short(cls) for cls in found) + " |"
    rule = "|---|---|" + "---|" * len(found)
    rows, meanings, every = [], [], []
    for suite in suite_classes():
        tests = _tests(suite)
        every += tests
        cells = [_runs(tests, cls.capabilities) for cls in found]
        rows.append(f"| {suite.__name__} | {len(tests)} | " + " | ".join(cells) + " |")
        doc = (suite.__doc__ or "").strip().splitlines()
        meanings.append(f"`{suite.__name__}`\n:   {doc[0] if doc else ''}\n")
    total = [f"**{_count(every, cls.capabilities)}**" for cls in found]
    rows.append(f"| **all** | **{len(every)}** | " + " | ".join(total) + " |")
    return "\n".join([head, rule, *rows]) + "\n\n" + "\n".join(meanings)


def _short(cls: type[Backend]) -> str:
    return cls.__name__.removesuffix("Backend")


Tests = list[tuple[str, tuple[Capability, ...], tuple[Capability, ...]]]
"""Per test: its name, the capabilities it needs, those it is the counterpart of."""


def _count(tests: Tests, have: frozenset[Capability]) -> int:
    return sum(all(cap in have for cap in needs) and not any(cap in have for cap in unwanted)
               for _, needs, unwanted in tests)


def _runs(tests: Tests, have: frozenset[Capability]) -> str:
    runs = _count(tests, have)
    return YES if runs == len(tests) else f"{runs} of {len(tests)}"


def cli_reference() -> str:
    """Return the `wrkr` command's help and each subcommand's, as argparse prints them."""
    from wrkr.cli import build_parser

    parser = build_parser()
    parts = ["## `wrkr`\n", _help(parser)]
    for name, sub in _subcommands(parser).items():
        parts += [f"## `wrkr {name}`\n", _help(sub)]
    return "\n".join(parts)


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:  # argparse keeps subparsers only here
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _help(parser: argparse.ArgumentParser) -> str:
    formatter = parser.formatter_class
    kind = cast(type[argparse.HelpFormatter], formatter)   # the parser's own, width fixed:
    parser.formatter_class = functools.partial(kind, width=88)  # not the terminal's
    try:
        return f"```text\n{parser.format_help().rstrip()}\n```\n"
    finally:
        parser.formatter_class = formatter


def error_tree() -> str:
    """Return the exception tree under `WrkrError`, from the classes themselves.

    Each public error (exported by `wrkr` or `wrkr.testing`) with its other bases and
    the first line of its docstring; an error added to either module shows up here.
    """
    import wrkr
    import wrkr.testing

    public = {getattr(module, name): f"{module.__name__}.{name}"
              for module in (wrkr, wrkr.testing) for name in module.__all__}
    lines = ["WrkrError"]
    _branch(wrkr.WrkrError, public, "", lines)
    return "```text\n" + "\n".join(lines) + "\n```\n"


def _branch(parent: type[BaseException], public: dict[object, str], indent: str,
            lines: list[str]) -> None:
    children = [child for child in parent.__subclasses__() if child in public]
    for number, child in enumerate(children):
        last = number == len(children) - 1
        others = [base.__name__ for base in child.__bases__ if base is not parent]
        name = child.__name__ + (f"({', '.join(others)})" if others else "")
        summary = (child.__doc__ or "").strip().splitlines()[0].rstrip(".")
        branch = f"{indent}{'└── ' if last else '├── '}{name}"
        lines.append(f"{branch:<42} {summary}")
        _branch(child, public, indent + ("    " if last else "│   "), lines)


def when_grammar() -> str:
    """Return the interval grammar, the unit spellings and the number words of `wrkr._when`."""
    from wrkr import _when

    doc = inspect.getdoc(_when) or ""
    grammar = textwrap.dedent(doc.split("::\n", 1)[1].lstrip("\n").split("\n\n", 1)[0])
    units = "\n".join(f"| {unit} | " + ", ".join(f"`{s}`" for s in spellings) + " |"
                      for unit, spellings in _when._SPELLINGS.items())
    words = ", ".join(f"`{word}`" for word in _when._NUMBER_WORDS)
    return (f"```text\n{grammar}\n```\n\n| unit | spellings |\n|---|---|\n{units}\n\n"
            f"Number words: {words}.\n")


def http_api() -> str:
    """Every operation of the OpenAPI document `wrkr.web` serves, with its statuses."""
    from wrkr.web._openapi import document

    paths = document(token=True)["paths"]
    rows = ["| operation | what | answers | token |", "|---|---|---|---|"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            statuses = ", ".join(sorted(operation["responses"]))
            token = "no" if operation.get("security") == [] else "yes, when set"
            rows.append(f"| `{method.upper()} {path}` | {operation['summary']} | {statuses} "
                        f"| {token} |")
    return "\n".join(rows) + "\n"


GENERATORS: dict[str, Callable[[], str]] = {
    "capabilities": capabilities_table,
    "capability-list": capability_list,
    "conformance": conformance_table,
    "cli": cli_reference,
    "errors": error_tree,
    "when-grammar": when_grammar,
    "http-api": http_api,
}


def render(markdown: str) -> str:
    """Replace every marker in `markdown` by its generated Markdown."""

    def fill(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in GENERATORS:
            raise ValueError(f"unknown generated section {name!r}; known: {sorted(GENERATORS)}")
        return GENERATORS[name]()

    return MARKER.sub(fill, markdown)


def on_page_markdown(markdown: str, **_: Any) -> str:
    """MkDocs hook: fill the page's markers."""
    return render(markdown)

