"""pytest plugin: the `--wrkr-url` option, to run the suite against any backend by URL.

Registered as the `wrkr_conformance` entry point of the `pytest11` group, so it is
active wherever wrkr is installed: ``pytest --pyargs backend_conformance_tests
--wrkr-url memory://``.
"""

from __future__ import annotations

import pytest

URL_OPTION = "--wrkr-url"


def pytest_addoption(parser: pytest.Parser) -> None:
    """Add `--wrkr-url`: the backend URL `backend_conformance_tests.test_by_url` runs on."""
    parser.getgroup("wrkr").addoption(
        URL_OPTION, action="store", default=None, metavar="URL",
        help="run backend_conformance_tests against the backend at URL (e.g. memory://)",
    )
