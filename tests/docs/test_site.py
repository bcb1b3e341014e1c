"""The site builds strictly, its generated pages say what the code declares, and a broken
link fails the build (so `make docs` in `make test` keeps the docs true)."""

from __future__ import annotations

import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from backend_conformance_tests import BackendSuite
from wrkr.backend import Capability
from wrkr.cli import build_parser

ROOT = Path(__file__).resolve().parents[2]
BACKENDS = ["Memory", "SQLite", "Postgres", "MongoDB", "RabbitMQ", "MQTT"]


def generated() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generated", ROOT / "docs/hooks/generated.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build(config: Path, site: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict",
         "--config-file", str(config), "--site-dir", str(site)],
        cwd=config.parent, capture_output=True, text=True, timeout=300, check=False)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("site")
    result = build(ROOT / "mkdocs.yml", out)
    assert result.returncode == 0, result.stdout + result.stderr
    return out


def test_capability_table_has_every_backend_and_capability_as_declared() -> None:
    table = generated().capabilities_table().splitlines()
    header, rows = table[0], table[2:]
    assert all(name in header for name in BACKENDS), header
    assert len(rows) == len(Capability)
    backends = list(generated().backends())
    for row, capability in zip(rows, Capability, strict=True):
        cells = [cell.strip() for cell in row.strip("|").split("|")][1:]
        assert f"`{capability.value}`" in row
        assert cells == [generated().YES if capability in cls.capabilities else generated().NO
                         for cls in backends]


def test_conformance_table_counts_every_suite_test() -> None:
    *rows, total = generated().conformance_table().split("\n\n")[0].splitlines()[2:]
    suites = generated().suite_classes()
    assert len(rows) == len(suites)
    tests = len([name for name in dir(BackendSuite) if name.startswith("test_")])
    assert sum(int(row.split("|")[2]) for row in rows) == tests
    # Memory has every capability that matters here, so it runs all but the counterparts
    # (`without`) of those: the tests of what a backend lacking one promises instead.
    counterparts = len([name for name in dir(BackendSuite) if name.startswith("test_")
                        and getattr(getattr(BackendSuite, name), "__wrkr_without__", ())])
    assert counterparts >= 1
    memory_runs_the_rest = f"| **all** | **{tests}** | **{tests - counterparts}** |"
    assert total.startswith(memory_runs_the_rest), total


def test_cli_reference_shows_every_subcommand() -> None:
    text = generated().cli_reference()
    commands = generated()._subcommands(build_parser())
    assert {"worker", "publish", "items", "retry"} <= set(commands)
    for name, parser in commands.items():
        assert f"## `wrkr {name}`" in text
        assert parser.format_usage().split()[1] in text


def test_error_tree_shows_every_public_error_under_wrkr_error() -> None:
    import wrkr
    import wrkr.testing

    tree = generated().error_tree()
    errors = [name for module in (wrkr, wrkr.testing) for name in module.__all__
              if isinstance(getattr(module, name), type)
              and issubclass(getattr(module, name), wrkr.WrkrError) and name != "WrkrError"]
    assert len(errors) >= 14, errors
    assert [name for name in errors if f"── {name}" not in tree] == []
    assert "── Fail" not in tree       # handlers raise it; it is not a WrkrError


def test_unknown_marker_fails_loudly() -> None:
    with pytest.raises(ValueError, match="nope"):
        generated().render("<!-- generated: nope -->")


def test_site_builds_strictly_with_generated_pages_and_api(site: Path) -> None:
    capabilities = (site / "reference/capabilities.html").read_text()
    assert all(name in capabilities for name in BACKENDS)
    assert "<!-- generated" not in capabilities
    api = (site / "reference/api.html").read_text()
    assert "Build an app whose backend is chosen by the URL" in api   # Wrkr.from_url's docstring
    cli = (site / "reference/cli.html").read_text()
    assert "--stop-timeout" in cli


BROKEN = {  # what a page says -> what the failed build must name
    "See [the missing page](no-such-page.md).": "no-such-page.md",
    "See [a missing section](tutorial.md#no-such-section).": "no-such-section",
    "See [a missing API][wrkr.NoSuchThing].": "wrkr.NoSuchThing",
}


def test_a_broken_link_anchor_or_reference_fails_the_build(tmp_path: Path) -> None:
    shutil.copy(ROOT / "mkdocs.yml", tmp_path / "mkdocs.yml")
    shutil.copytree(ROOT / "docs", tmp_path / "docs")
    page = tmp_path / "docs" / "index.md"
    page.write_text(page.read_text() + "".join(f"\n{line}\n" for line in BROKEN))
    result = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert result.returncode != 0
    output = result.stdout + result.stderr
    assert [name for name in BROKEN.values() if name not in output] == [], output


def test_the_readme_links_to_files_that_exist_and_its_quick_start_is_short() -> None:
    text = (ROOT / "README.md").read_text()
    targets = re.findall(r"\]\(([^)#]+)(?:#[^)]*)?\)", text)
    local = [target for target in targets if "://" not in target]
    assert len(local) > 10, local
    missing = [target for target in local if not (ROOT / target).exists()]
    assert not missing, missing      # paths as they will be from the repository's root
    quick_start = text.split("## Quick start", 1)[1].split("```python\n", 1)[1].split("```")[0]
    assert len(quick_start.splitlines()) < 20


def test_the_http_api_reference_lists_every_operation_of_the_openapi_document() -> None:
    from wrkr.web._openapi import document

    table = generated().http_api()
    for path, operations in document(token=True)["paths"].items():
        for method in operations:
            assert f"`{method.upper()} {path}`" in table
