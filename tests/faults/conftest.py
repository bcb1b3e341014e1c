"""The fault tests leave no logs behind."""

from __future__ import annotations

import shutil
from collections.abc import Iterator

import pytest

from bench._faults_processes import FOLDERS


@pytest.fixture(autouse=True)
def _remove_logs() -> Iterator[None]:
    """Remove the worker and publisher logs of the test's processes afterwards."""
    yield
    while FOLDERS:
        shutil.rmtree(FOLDERS.pop(), ignore_errors=True)
