"""The layout the architecture promises: backends use only the public contract."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = sorted(path for path in ROOT.glob("wrkr_*") if (path / "__init__.py").exists())


def private_imports(package: Path) -> list[str]:
    """Return 'file: module' for each import of a private `wrkr._*` module."""
    found = []
    for source in sorted(package.rglob("*.py")):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            found += [f"{source.relative_to(ROOT)}: {name}" for name in names
                      if name.startswith("wrkr._")]
    return found


def test_there_are_backend_packages_to_check() -> None:
    assert {path.name for path in BACKENDS} >= {"wrkr_memory", "wrkr_postgres"}


@pytest.mark.parametrize("package", BACKENDS, ids=lambda path: path.name)
def test_a_backend_imports_no_private_wrkr_module(package: Path) -> None:
    assert private_imports(package) == [], "use wrkr.backend (or wrkr) instead"


@pytest.mark.parametrize("package", BACKENDS, ids=lambda path: path.name)
def test_every_backend_package_has_the_same_shape(package: Path) -> None:
    files = {path.name for path in package.glob("*.py")}
    assert "_backend.py" in files, "the module that assembles the backend"
    assert files & {"_store.py", "_broker.py"}, "the module that implements the contract"
