"""The core's topic matcher, on the table every pattern translation shares."""

from __future__ import annotations

import pytest

from backend_conformance_tests.topics import TOPIC_CASES
from wrkr.backend import matches


@pytest.mark.parametrize(("pattern", "name", "expected"), TOPIC_CASES)
def test_topic_matching_follows_amqp_rules(pattern: str, name: str, expected: bool) -> None:
    assert matches(pattern, name) is expected
