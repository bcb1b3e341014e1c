"""pytest fixtures for testing a wrkr application: `wrkr_harness`, fed by your `wrkr_app`.

Enable it in your top-level ``conftest.py`` and say which app to test::

    pytest_plugins = ["wrkr.testing.pytest_plugin"]

    @pytest.fixture
    def wrkr_app() -> Wrkr:
        return myshop.app

It is not loaded automatically (its fixture is async, so it needs pytest-asyncio,
which wrkr itself does not).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from wrkr import Wrkr
from wrkr.testing._harness import Harness, harness

try:
    import pytest_asyncio
except ImportError as exc:  # pragma: no cover - depends on the user's environment
    raise ImportError("wrkr.testing.pytest_plugin needs pytest-asyncio: "
                      "pip install pytest-asyncio") from exc

__all__ = ["wrkr_app", "wrkr_harness"]


@pytest.fixture
def wrkr_app() -> Wrkr:
    """Return the app under test: override this fixture in your conftest.py."""
    raise pytest.UsageError("wrkr_harness needs a `wrkr_app` fixture returning your Wrkr app; "
                            "define one in conftest.py")


@pytest_asyncio.fixture
async def wrkr_harness(wrkr_app: Wrkr) -> AsyncIterator[Harness]:
    """Yield `harness(wrkr_app)`, entered: fresh memory, a ManualClock, restored afterwards."""
    async with harness(wrkr_app) as entered:
        yield entered
