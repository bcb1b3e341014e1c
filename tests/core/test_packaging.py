"""The package as a user gets it: built as `make dist` builds it, checked by twine, installed
into a fresh virtual environment and run from there, not from the checkout.

The build runs without isolation (the `dev` extra brings setuptools, build and twine), and the
fresh environment gets the core's dependencies by a `.pth` pointing at copies of the test
environment's own, so nothing is downloaded: tests talk to 127.0.0.1 only.
"""

from __future__ import annotations

import email
import os
import re
import shutil
import subprocess
import sys
import venv
import zipfile
from importlib.metadata import distribution
from pathlib import Path

import pytest

import wrkr

ROOT = Path(__file__).resolve().parents[2]
TOP_LEVEL = sorted(path.parent.name for path in ROOT.glob("*/__init__.py")
                   if path.parent.name.startswith(("wrkr", "backend_conformance_tests")))


def run(*command: str | Path, cwd: Path | None = None) -> str:
    """Run a command; fail the test with its output when it fails."""
    done = subprocess.run([str(part) for part in command], cwd=cwd, capture_output=True,
                          text=True, timeout=300, check=False)
    output = f"{done.stdout}\n{done.stderr}"
    assert done.returncode == 0, f"{command} exited {done.returncode}:\n{output}"
    return done.stdout


def source_copy(into: Path) -> Path:
    """Copy the files git tracks into `into`, and return it.

    Building the sdist writes `wrkr.egg-info` into the tree it builds; in the checkout
    that raced the other test processes reading wrkr's entry points from there (a
    by-URL suite run found no backend for ``memory://`` once). A copy of what is
    committed is also what a release is built from.
    """
    tracked = run("git", "-C", ROOT, "ls-files", "-z").split("\0")
    for name in filter(None, tracked):
        if (ROOT / name).is_file():  # a file deleted but not yet committed is skipped
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, into / name)
    return into


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Build the sdist, then the wheel from that sdist (what `python -m build` does)."""
    out = tmp_path_factory.mktemp("dist")
    source = source_copy(tmp_path_factory.mktemp("source"))
    run(sys.executable, "-m", "build", "--no-isolation", "--outdir", out, source)
    return out


@pytest.fixture(scope="module")
def wheel(dist: Path) -> Path:
    (found,) = dist.glob("wrkr-*.whl")
    return found


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding the wheel (no deps from the index) and the core's dependencies."""
    env = tmp_path_factory.mktemp("venv")
    venv.create(env, with_pip=False)
    python = env / "bin" / "python"
    run(sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps",
        "--no-index", wheel)
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_path('purelib'))").strip())
    deps = env / "deps"
    deps.mkdir()
    for name in core_requirements(wheel):
        for file in distribution(name).files or ():
            top = file.parts[0]
            source = Path(str(file.locate())).parents[len(file.parts) - 1] / top
            if top != ".." and not (deps / top).exists():
                (deps / top).symlink_to(source)
    (site / "wrkr_test_deps.pth").write_text(f"{deps}\n")
    return env


def core_requirements(wheel: Path) -> list[str]:
    """The wheel's unconditional Requires-Dist names (the core's dependencies)."""
    with zipfile.ZipFile(wheel) as archive:
        (meta,) = [name for name in archive.namelist() if name.endswith(".dist-info/METADATA")]
        message = email.message_from_bytes(archive.read(meta))
    return [re.split(r"[\s<>=!~\[;]", requirement, maxsplit=1)[0]
            for requirement in message.get_all("Requires-Dist", [])
            if "extra ==" not in requirement]


def test_twine_check_passes_on_the_sdist_and_the_wheel(dist: Path) -> None:
    files = sorted(dist.iterdir())
    assert {path.suffix for path in files} == {".gz", ".whl"}
    output = run(sys.executable, "-m", "twine", "check", "--strict", *files)
    assert output.count("PASSED") == 2


def test_the_wheel_holds_our_packages_and_nothing_else(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert tops == {*TOP_LEVEL, f"wrkr-{wrkr.__version__}.dist-info"}
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]


def test_every_package_is_typed_and_every_data_file_ships(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"{top}/py.typed" for top in TOP_LEVEL} <= names
    tracked = run("git", "ls-files", *TOP_LEVEL, cwd=ROOT).split()
    data = {name for name in tracked if not name.endswith(".py")}
    assert any(name.endswith(".sql") for name in data)
    assert data - names == set()


def test_the_installed_wheel_runs_the_quick_start_and_the_cli(installed: Path,
                                                              tmp_path: Path) -> None:
    python, cli = installed / "bin" / "python", installed / "bin" / "wrkr"
    where = run(python, "-c", "import wrkr, wrkr_sqlite; print(wrkr.__file__)", cwd=tmp_path)
    assert Path(where.strip()).is_relative_to(installed)
    assert run(cli, "--version", cwd=tmp_path).strip().endswith(wrkr.__version__)
    readme = (ROOT / "README.md").read_text()
    quick_start = readme.split("## Quick start", 1)[1].split("```python\n", 1)[1].split("```")[0]
    (tmp_path / "quick_start.py").write_text(quick_start)
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run([str(python), "quick_start.py"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert "welcome 42 {'plan': 'pro'}" in done.stdout
