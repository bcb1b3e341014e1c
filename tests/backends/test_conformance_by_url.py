"""`pytest --pyargs backend_conformance_tests --wrkr-url URL` runs, and passes: all of it on
memory, the lease and crash tests on RabbitMQ, PostgreSQL and the MongoDB wire server (a
backend author's own URL needs no hook of ours to simulate a crash)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.backends._mongo_servers import (  # noqa: F401 - fixtures
    new_database_name,
    wire_server_url,
    with_database,
)

ROOT = Path(__file__).resolve().parents[2]
COUNTERPART = "the backend has the capability timed_leases"  # the channel-lease test's skip


def only_counterparts_skipped(stdout: str) -> bool:
    """Tell whether every skip (`-rs`) is of a counterpart of a capability the backend has."""
    return all(COUNTERPART in line for line in stdout.splitlines() if line.startswith("SKIPPED"))


def run_suite(*options: str) -> subprocess.CompletedProcess[str]:
    """Run the packaged suite in a fresh pytest process from the project root."""
    command = [sys.executable, "-m", "pytest", "--pyargs", "backend_conformance_tests",
               "-q", "-p", "no:cacheprovider", *options]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          check=False)


def test_suite_passes_on_a_memory_url_skipping_only_counterparts() -> None:
    result = run_suite("--wrkr-url", "memory://", "-rs")
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in summary, summary
    assert only_counterparts_skipped(result.stdout), result.stdout[-2000:]


def test_suite_without_a_url_skips_saying_how_to_pass_one() -> None:
    result = run_suite("-rs", "-k", "test_publish_returns_the_created_item_ids")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "skipped" in result.stdout, result.stdout[-2000:]
    assert "--wrkr-url" in result.stdout, result.stdout[-2000:]


def test_crash_tests_pass_by_url_on_a_broker_without_any_hook(rabbitmq_prefix: str) -> None:
    # A namespace of the test's own (deleted afterwards by the fixture): the default one,
    # ``wrkr``, may hold queues of another type or of other people's runs.
    result = run_suite("--wrkr-url", f"amqp://guest:guest@127.0.0.1:5672/?prefix={rabbitmq_prefix}",
                       "-k", "crash or stale_delivery")
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "5 passed" in summary, summary


LEASE_AND_CRASH = "crash or stale_delivery or renewal or lease or stop_leaves"


def test_lease_and_crash_tests_pass_by_url_on_postgresql(pg_schema: str) -> None:
    result = run_suite("--wrkr-url",
                       f"postgresql://postgres@127.0.0.1:5432/test?schema={pg_schema}",
                       "-k", LEASE_AND_CRASH, "-rs")
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in summary, summary
    assert only_counterparts_skipped(result.stdout), result.stdout[-2000:]


def test_lease_and_crash_tests_pass_by_url_on_the_mongodb_wire_server(
        wire_server_url: str) -> None:  # noqa: F811 - the fixture
    url = with_database(wire_server_url, new_database_name())
    result = run_suite("--wrkr-url", url, "-k", LEASE_AND_CRASH, "-rs")
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in summary, summary
    assert only_counterparts_skipped(result.stdout), result.stdout[-2000:]
