"""The whole suite against the backend at `--wrkr-url`, found by its URL scheme.

``pytest --pyargs backend_conformance_tests --wrkr-url memory://``. Without the
option every test here is skipped, saying so. A `memory://` URL gets one shared
store per test, so that every app of a test sees the same items. Tests on a server
share it with whatever else uses it; the suite's unique names keep them apart.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest

from backend_conformance_tests import BackendFactory, BackendSuite
from backend_conformance_tests.plugin import URL_OPTION
from wrkr._connect import backend_from_url


def memory_factory() -> BackendFactory:
    """Return a factory of memory backends sharing one new store."""
    from wrkr_memory import MemoryBackend, MemoryStore

    store = MemoryStore()
    return lambda: MemoryBackend(store=store)


class TestBackendByURL(BackendSuite):
    """`BackendSuite` on the backend that `--wrkr-url` names."""

    @pytest.fixture
    def backend_factory(self, request: pytest.FixtureRequest) -> BackendFactory:
        """Build backends from `--wrkr-url` (memory: one store shared within the test)."""
        url = request.config.getoption(URL_OPTION)
        if not url:
            pytest.skip(f"pass {URL_OPTION}=URL (e.g. {URL_OPTION} memory://) to run the "
                        "conformance suite against a backend")
        if urlsplit(str(url)).scheme == "memory":
            return memory_factory()
        return lambda: backend_from_url(str(url))
