"""The OpenAPI document checked from outside: schemathesis against a live server.

Every operation of /openapi.json gets generated requests; no answer may be a 5xx, and
every answer must have a declared status, content type and headers, and match its schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis.specs.openapi import checks as openapi_checks

from tests.conftest import PG_URL, new_schema
from tests.web._live import Live, demo_app, live_server

EXAMPLES = 40
CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
]


@pytest.fixture(scope="module", params=[
    pytest.param("memory", id="memory"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest) -> Iterator[Live]:
    """A live server with a few items in every state, on memory or PostgreSQL."""
    if request.param == "memory":
        yield from _serve("memory://")
        return
    for schema in new_schema(request):
        yield from _serve(f"{PG_URL}?schema={schema}")


def _serve(url: str) -> Iterator[Live]:
    app = demo_app(url, archive="keep")
    with live_server(app) as live:
        live.call(lambda: app.publish([
            {"name": "user.added", "tid": "1"}, {"name": "user.added", "payload": {"fail": "x"}},
            {"name": "report.due", "when": "in 1 hour"}]))
        yield live


def test_the_api_keeps_to_its_openapi_document(server: Live) -> None:
    # Each operation in turn, by hand: schemathesis's pytest plugin (from_fixture) does not
    # run on pytest 9.
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    failures, checked = [], []
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an Err raises here: a failure
        checked.append(f"{operation.method.upper()} {operation.path}")
        try:
            _check(operation.as_strategy())
        except Exception as exc:  # report every failing operation, not only the first
            failures.append(f"{checked[-1]}: {exc}")
    assert len(checked) >= 12, checked
    assert not failures, "\n\n".join(failures)


def _check(strategy: hypothesis.strategies.SearchStrategy[schemathesis.Case[Any]]) -> None:
    @hypothesis.given(strategy)
    @hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))
    def each(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(checks=CHECKS)

    each()
