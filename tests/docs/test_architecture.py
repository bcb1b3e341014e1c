"""docs/architecture.md names every module of the core and every suite module, and only
modules that exist: a module added, renamed or removed without the page fails here."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = (ROOT / "docs" / "architecture.md").read_text()
LAYOUT = PAGE.split("```\n", 2)[1]   # the first code block: the layout


def modules(package: str) -> set[str]:
    return {path.name for path in (ROOT / package).glob("*.py")}


def test_every_core_module_is_in_the_layout() -> None:
    missing = {name for name in modules("wrkr") if name not in LAYOUT}
    assert not missing, f"docs/architecture.md does not describe wrkr/{sorted(missing)}"


def test_every_module_the_layout_names_exists() -> None:
    named = set(re.findall(r"^  (_?[a-z_]+\.py)", LAYOUT, re.MULTILINE))
    assert named, LAYOUT
    stale = named - modules("wrkr")
    assert not stale, f"docs/architecture.md describes modules that are gone: {sorted(stale)}"


def test_every_backend_package_and_suite_module_is_named() -> None:
    backends = {path.name for path in ROOT.glob("wrkr_*") if (path / "__init__.py").exists()}
    suites = {name.removesuffix(".py") for name in modules("backend_conformance_tests")
              if not name.startswith("_")}
    missing = {name for name in backends | suites if name not in LAYOUT}
    assert not missing, f"docs/architecture.md's layout does not name {sorted(missing)}"
