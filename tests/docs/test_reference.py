"""The reference pages document every public name: a name added to a public module's
`__all__` without its `::: module.Name` directive fails here, naming the page to edit.
(A directive naming something that does not exist fails the strict build instead.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import wrkr
import wrkr.backend
import wrkr.testing

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference"
_DIRECTIVE = re.compile(r"^::: ([\w.]+)", re.MULTILINE)


def documented(*pages: str) -> set[str]:
    return {name for page in pages
            for name in _DIRECTIVE.findall((REFERENCE / page).read_text())}


@pytest.mark.parametrize(("module", "pages"), [
    (wrkr, ("api.md", "errors.md")),
    (wrkr.backend, ("backend.md",)),
    (wrkr.testing, ("testing.md",)),
])
def test_every_public_name_has_its_reference_entry(module: object, pages: tuple[str, ...]) -> None:
    names = {f"{module.__name__}.{name}" for name in module.__all__  # type: ignore[attr-defined]
             if module is wrkr or name not in wrkr.__all__}   # re-exports: on wrkr's pages
    missing = sorted(names - documented(*pages))
    assert not missing, f"add '::: NAME' to docs/reference/{pages[0]} for {missing}"


def test_every_error_class_is_on_the_errors_page() -> None:
    errors = {f"wrkr.{name}" for name in wrkr.__all__
              if _is_error(getattr(wrkr, name)) and name != "Fail"}
    missing = sorted(errors - documented("errors.md"))
    assert not missing, missing


def _is_error(value: object) -> bool:
    return isinstance(value, type) and issubclass(value, Exception)
