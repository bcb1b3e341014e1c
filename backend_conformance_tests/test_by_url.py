"""The whole suite against the backend at `--wrkr-url`, found by its URL scheme.

``pytest --pyargs backend_conformance_tests --wrkr-url memory://``. Without the
option every test here is skipped, saying so. A bare ``memory://`` becomes a store
named for the test (``memory://NAME``), so that every backend of one test shares it
and no two tests do. Tests on a server share it with whatever else uses it; the
suite's unique names keep them apart.
"""

from __future__ import annotations

import secrets
from urllib.parse import urlsplit

import pytest

from backend_conformance_tests import BackendFactory, BackendSuite
from backend_conformance_tests.plugin import URL_OPTION
from wrkr._connect import backend_from_url


def per_test_url(url: str) -> str:
    """Give a bare ``memory://`` URL a store name of its own; leave other URLs alone."""
    parts = urlsplit(url)
    if parts.scheme == "memory" and not parts.netloc:
        return f"memory://conformance-{secrets.token_hex(6)}"
    return url


class TestBackendByURL(BackendSuite):
    """`BackendSuite` on the backend that `--wrkr-url` names."""

    @pytest.fixture
    def backend_factory(self, request: pytest.FixtureRequest) -> BackendFactory:
        """Build backends from `--wrkr-url` through wrkr's URL lookup."""
        url = request.config.getoption(URL_OPTION)
        if not url:
            pytest.skip(f"pass {URL_OPTION}=URL (e.g. {URL_OPTION} memory://) to run the "
                        "conformance suite against a backend")
        url = per_test_url(str(url))
        return lambda: backend_from_url(url)
