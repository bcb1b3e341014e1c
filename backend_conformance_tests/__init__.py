"""The conformance suite every wrkr backend passes, unchanged.

A backend's test module subclasses `BackendSuite` and provides one fixture::

    from collections.abc import Callable

    import pytest
    from backend_conformance_tests import BackendSuite
    from wrkr.backend import Backend

    class TestMyBackend(BackendSuite):
        delay_tolerance = 0.5          # seconds a delayed item may be late (optional)

        @pytest.fixture
        def backend_factory(self) -> Callable[[], Backend]:
            storage = ...              # fresh, per-test storage (schema, database, prefix)
            return lambda: MyBackend(storage)

        async def simulate_crash(self, backend: Backend) -> None:
            ...                        # optional: make claimed items come back now

`backend_factory()` returns a new, unopened backend on the same storage each time (a
test restarts apps and runs several "processes" with it). Tests needing a capability
the backend does not declare are skipped, naming it. Each suite class can also be
used alone (`class TestMyBackendRetries(RetriesSuite)`).

Against any installed backend by URL: ``pytest --pyargs backend_conformance_tests
--wrkr-url memory://``.
"""

import pytest

# Readable assertion failures in the suites, also when they are imported as a plugin.
pytest.register_assert_rewrite(
    *(f"backend_conformance_tests.{module}" for module in (
        "_helpers", "delivery", "exclusive", "flows", "inspection", "leases", "lifecycle",
        "lineage", "publishing", "rates", "retries", "schedules", "scheduling"))
)

from backend_conformance_tests._helpers import (  # noqa: E402
    AppFactory,
    BackendFactory,
    Names,
    Recorder,
    SuiteBase,
    needs,
    without,
)
from backend_conformance_tests.delivery import ConsumingSuite, RoutingSuite  # noqa: E402
from backend_conformance_tests.exclusive import ExclusiveSuite  # noqa: E402
from backend_conformance_tests.flows import FlowSuite  # noqa: E402
from backend_conformance_tests.inspection import (  # noqa: E402
    ArchiveSuite,
    CancelSuite,
    InspectionSuite,
)
from backend_conformance_tests.leases import LeaseSuite  # noqa: E402
from backend_conformance_tests.lifecycle import LifecycleSuite  # noqa: E402
from backend_conformance_tests.lineage import LineageSuite  # noqa: E402
from backend_conformance_tests.publishing import EnqueueContractSuite, PublishingSuite  # noqa: E402
from backend_conformance_tests.rates import LimiterSuite, RateSuite  # noqa: E402
from backend_conformance_tests.retries import FailedItemsSuite, RetriesSuite  # noqa: E402
from backend_conformance_tests.schedules import ScheduleSuite  # noqa: E402
from backend_conformance_tests.scheduling import OnceEverySuite, SchedulingSuite  # noqa: E402

__all__ = [
    "AppFactory",
    "ArchiveSuite",
    "BackendFactory",
    "BackendSuite",
    "CancelSuite",
    "ConsumingSuite",
    "EnqueueContractSuite",
    "ExclusiveSuite",
    "FailedItemsSuite",
    "FlowSuite",
    "InspectionSuite",
    "LeaseSuite",
    "LifecycleSuite",
    "LimiterSuite",
    "LineageSuite",
    "Names",
    "OnceEverySuite",
    "PublishingSuite",
    "RateSuite",
    "Recorder",
    "RetriesSuite",
    "RoutingSuite",
    "ScheduleSuite",
    "SchedulingSuite",
    "SuiteBase",
    "needs",
    "without",
]


class BackendSuite(
    PublishingSuite,
    EnqueueContractSuite,
    RoutingSuite,
    ConsumingSuite,
    LeaseSuite,
    SchedulingSuite,
    OnceEverySuite,
    RetriesSuite,
    FailedItemsSuite,
    InspectionSuite,
    CancelSuite,
    ArchiveSuite,
    LifecycleSuite,
    ExclusiveSuite,
    RateSuite,
    LimiterSuite,
    ScheduleSuite,
    FlowSuite,
    LineageSuite,
):
    """Every suite of the contract; subclass it and provide `backend_factory`."""
