"""The OpenAPI document checked from outside: schemathesis against a live server.

Every operation of /openapi.json gets generated requests; no answer may be a 5xx, and
every answer must have a declared status, content type and headers, and match its schema.
"""

from __future__ import annotations

import asyncio
import re
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hypothesis
import pytest
import schemathesis
from schemathesis.specs.openapi import checks as openapi_checks

from tests.conftest import PG_URL, new_schema
from tests.core._cli_helpers import WAIT, env, lines_of, wait_for, wrkr_script
from tests.web._live import demo_app, live_server
from wrkr import Capability, Wrkr

EXAMPLES = 40
SEED: list[dict[str, Any]] = [{"name": "user.added", "tid": "1"},
                              {"name": "report.due", "when": "in 1 hour"}]
NEEDS = {"/v1/schedules": Capability.SCHEDULES}  # the paths a backend may lack (then 501)
CHECKS = [
    schemathesis.checks.not_a_server_error,
    openapi_checks.status_code_conformance,
    openapi_checks.content_type_conformance,
    openapi_checks.response_headers_conformance,
    openapi_checks.response_schema_conformance,
]


@dataclass
class Target:
    """A live server's base URL and what its backend can do."""

    url: str
    capabilities: frozenset[Capability]


@pytest.fixture(scope="module", params=[
    pytest.param("memory", id="memory"), pytest.param("sqlite", id="sqlite-wrkr-serve"),
    pytest.param("postgres", id="postgres", marks=pytest.mark.postgres)])
def server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory,
           ) -> Iterator[Target]:
    """A live server with items in several states: in a thread (memory, PostgreSQL), or
    `wrkr serve` in a process of its own (SQLite)."""
    if request.param == "memory":
        yield from _serve("memory://")
    elif request.param == "sqlite":
        yield from _wrkr_serve(tmp_path_factory.mktemp("schemathesis"))
    else:
        for schema in new_schema(request):
            yield from _serve(f"{PG_URL}?schema={schema}")


def _serve(url: str) -> Iterator[Target]:
    app = demo_app(url, archive="keep")
    with live_server(app) as live:
        live.call(lambda: app.publish([*SEED, {"name": "user.added", "payload": {"fail": "x"}}]))
        yield Target(live.url, app.backend.capabilities)


def _wrkr_serve(directory: Path) -> Iterator[Target]:
    # In a process of its own: the SQLite backend's thread draws from `random`, which
    # hypothesis reports as a flaky strategy when it happens in the test's process.
    url = f"sqlite:///{directory / 'wrkr.db'}"
    capabilities = asyncio.run(_seed(url))
    process = subprocess.Popen([wrkr_script(), "serve", "--url", url, "--port", "0"],
                               cwd=directory, env=env(), stderr=subprocess.PIPE, text=True)
    assert process.stderr is not None
    try:
        lines, _ = lines_of(process.stderr)
        banner = wait_for(lines, "wrkr serve: http://")[-1]
        base = re.search(r"http://\S+?(?=/ )", banner)
        assert base is not None, banner
        yield Target(base.group(0), capabilities)
    finally:
        process.terminate()
        process.wait(WAIT)
        process.stderr.close()


async def _seed(url: str) -> frozenset[Capability]:
    async with Wrkr.from_url(url) as app:
        await app.backend.subscribe("test.web.mail", "user.*")
        await app.backend.subscribe("test.web.reports", "report.due")
        await app.publish(SEED)
        return app.backend.capabilities


def test_the_api_keeps_to_its_openapi_document(server: Target) -> None:
    # Each operation in turn, by hand: schemathesis's pytest plugin (from_fixture) does not
    # run on pytest 9.
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    failures, checked = [], []
    lacking = {path for path, capability in NEEDS.items()
               if capability not in server.capabilities}
    for result in schema.get_all_operations():
        operation = result.ok()  # type: ignore[union-attr]  # an Err raises here: a failure
        if operation.path in lacking:  # a 501 by design, tested in test_api
            continue
        checked.append(f"{operation.method.upper()} {operation.path}")
        try:
            _check(operation.as_strategy())
        except Exception as exc:  # report every failing operation, not only the first
            failures.append(f"{checked[-1]}: {_described(exc)}")
    assert len(checked) >= 12 - len(lacking), checked
    assert not failures, "\n\n".join(failures)


def _described(error: BaseException) -> str:
    """The error and, for a group (hypothesis's flaky reports), each of its members."""
    inner = getattr(error, "exceptions", ())
    return "\n".join([str(error), *(f"  - {_described(sub)}" for sub in inner)])


def _check(strategy: hypothesis.strategies.SearchStrategy[schemathesis.Case[Any]]) -> None:
    @hypothesis.given(strategy)
    @hypothesis.settings(max_examples=EXAMPLES, deadline=None, database=None,
                         suppress_health_check=list(hypothesis.HealthCheck))
    def each(case: schemathesis.Case[Any]) -> None:
        case.call_and_validate(checks=CHECKS)

    each()
