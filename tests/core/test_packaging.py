"""What a wheel of wrkr installs: the packages setuptools finds with the pyproject's own config.

A full wheel build needs setuptools >= 77 from the network (build isolation), so this
runs the same discovery that build uses, `find_namespace_packages` on `packages.find`.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from setuptools import find_namespace_packages, find_packages

ROOT = Path(__file__).resolve().parents[2]


def installed_packages() -> set[str]:
    """Return the packages a wheel would hold, as setuptools discovers them."""
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())
    find = config["tool"]["setuptools"]["packages"]["find"]
    finder = find_namespace_packages if find.get("namespaces", True) else find_packages
    found: set[str] = set()
    for where in find.get("where", ["."]):
        found |= set(finder(str(ROOT / where), include=find.get("include", ["*"]),
                            exclude=find.get("exclude", ())))
    return found


def test_the_wheel_holds_no_top_level_examples_package() -> None:
    packages = installed_packages()
    assert not {name for name in packages if name.split(".")[0] == "examples"}


def test_the_wheel_holds_the_core_every_backend_and_the_conformance_suite() -> None:
    assert {"wrkr", "wrkr_memory", "wrkr_rabbitmq", "wrkr_mqtt", "wrkr_postgres", "wrkr_mongodb",
            "backend_conformance_tests"} <= installed_packages()


def test_the_wheel_holds_no_tests_bench_or_docs() -> None:
    assert not {name for name in installed_packages()
                if name.split(".")[0] in {"tests", "bench", "docs", "scripts"}}
