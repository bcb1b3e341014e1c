"""`pytest --pyargs backend_conformance_tests --wrkr-url URL` runs, and passes: the whole kit
on memory; on PostgreSQL, SQLite, RabbitMQ and the MongoDB wire server, a representative
subset (`REPRESENTATIVE`). A backend author's own URL needs no hook of ours to simulate a
crash, and the only tests skipped are those of capabilities the backend declares it lacks
(or the counterparts of ones it has)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from backend_conformance_tests import LeaseSuite
from tests.backends._mongo_servers import (  # noqa: F401 - fixtures
    new_database_name,
    wire_server_url,
    with_database,
)
from tests.conftest import PG_URL, RABBITMQ_URL
from wrkr._connect import backend_from_url
from wrkr.backend import Capability

ROOT = Path(__file__).resolve().parents[2]

SAMPLED = (  # one or two cheap tests of every suite class but LeaseSuite, which runs whole
    "test_publish_returns_the_created_item_ids",
    "test_enqueue_makes_one_item_per_matching_queue",
    "test_wildcard_subscription_delivers_matching_events_only",
    "test_competing_consumers_handle_each_item_exactly_once",
    "test_delayed_event_is_never_delivered_early",
    "test_once_every_publishes_nothing_while_one_is_pending",
    "test_item_is_failed_after_the_last_attempt_with_one_error_per_attempt",
    "test_retry_sends_a_failed_item_back_with_attempts_reset",
    "test_items_filter_by_state",
    "test_cancel_deletes_the_matching_pending_items_and_counts_them",
    "test_archive_keep_keeps_done_items_with_worker_and_finished",
    "test_stop_leaves_nothing_it_claimed_processing",
    "test_exclusive_queue_processes_one_item_per_tid_at_a_time",
    "test_rated_queue_starts_up_to_n_at_once",
    "test_limiter_allows_n_at_once_then_waits_for_the_window",
    "test_firing_publishes_its_event_and_moves_the_schedule_on",
    "test_next_step_starts_only_after_every_job_of_the_step_finished",
    "test_lineage_returns_a_chain_in_creation_order",
)
REPRESENTATIVE = (*sorted(name for name in vars(LeaseSuite) if name.startswith("test_")),
                  *SAMPLED)
"""What the by-URL runs on servers select: every lease test (leases, renewal, crashes,
fencing: what a backend author most easily gets wrong) and a sample of every other suite
class. Measured 2026-12-04 on this two-core machine at load 8-11: the whole kit by URL
took 51 s on RabbitMQ, 66 s on SQLite, 86-146 s on the MongoDB wire server and 101 s on
PostgreSQL (all passed but for a rate-window check on the wire server, missed by a few
milliseconds under that load); this subset took 25-31 s on each."""

_SKIP = re.compile(r"^SKIPPED \[\d+\] \S+: the backend (lacks|has) the capability ([a-z_, ]+?)"
                   r"(?::|$)")
_OUTCOME = re.compile(r"::(test_\w+)(?:\[[^\]]*\])? (PASSED|SKIPPED|FAILED|ERROR|XFAIL)")


def run_suite(*options: str, verbose: bool = False) -> subprocess.CompletedProcess[str]:
    """Run the packaged suite in a fresh pytest process from the project root (quietly,
    unless `verbose`: then one line per test with its outcome)."""
    command = [sys.executable, "-m", "pytest", "--pyargs", "backend_conformance_tests",
               "-v" if verbose else "-q", "-p", "no:cacheprovider", *options]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=300,
                          check=False)


def run_representative(url: str) -> subprocess.CompletedProcess[str]:
    """Run `REPRESENTATIVE` against `url`, each test's outcome and each skip's reason shown."""
    return run_suite("--wrkr-url", url, "-rs", "-k", " or ".join(REPRESENTATIVE), verbose=True)


def assert_passed_skipping_only_by_capability(
        result: subprocess.CompletedProcess[str], url: str,
        expected: tuple[str, ...] = ()) -> None:
    """Assert no failure, each skip naming capabilities as the backend at `url` declares
    them, and (if given) every `expected` test among those passed or skipped."""
    lines = result.stdout.strip().splitlines()
    summary = lines[-1] if lines else ""
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert " passed" in summary, summary
    assert "failed" not in summary, summary
    have = {str(capability) for capability in backend_from_url(url).capabilities}
    for line in (line for line in lines if line.startswith("SKIPPED")):
        found = _SKIP.match(line)
        assert found, f"a skip that names no capability: {line}"
        named = set(found.group(2).split(", "))
        assert named <= {str(capability) for capability in Capability}, line
        assert named <= have if found.group(1) == "has" else not named & have, line
    ran = dict(_OUTCOME.findall(result.stdout))
    missing = [name for name in expected if ran.get(name) not in {"PASSED", "SKIPPED"}]
    assert not missing, f"not run (a -k typo, or a renamed test?): {missing}"


def test_suite_passes_on_a_memory_url_skipping_only_counterparts() -> None:
    result = run_suite("--wrkr-url", "memory://", "-rs")
    assert_passed_skipping_only_by_capability(result, "memory://")
    assert "lacks the capability" not in result.stdout, result.stdout[-2000:]


def test_suite_without_a_url_skips_saying_how_to_pass_one() -> None:
    result = run_suite("-rs", "-k", "test_publish_returns_the_created_item_ids")
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "skipped" in result.stdout, result.stdout[-2000:]
    assert "--wrkr-url" in result.stdout, result.stdout[-2000:]


@pytest.mark.postgres
def test_representative_tests_pass_by_url_on_postgresql(pg_schema: str) -> None:
    """`REPRESENTATIVE` only: the whole kit took 101 s on PostgreSQL, this subset 31 s."""
    url = f"{PG_URL}?schema={pg_schema}"
    assert_passed_skipping_only_by_capability(run_representative(url), url, REPRESENTATIVE)


def test_representative_tests_pass_by_url_on_sqlite(tmp_path: Path) -> None:
    """`REPRESENTATIVE` only: the whole kit took 66 s on SQLite, this subset 25 s."""
    url = f"sqlite:///{tmp_path / 'wrkr.db'}"
    assert_passed_skipping_only_by_capability(run_representative(url), url, REPRESENTATIVE)


@pytest.mark.rabbitmq
def test_representative_tests_pass_by_url_on_rabbitmq_without_any_hook(
        rabbitmq_prefix: str) -> None:
    """`REPRESENTATIVE` only: the whole kit took 51 s on RabbitMQ, this subset 26 s."""
    # A namespace of the test's own (deleted afterwards by the fixture): the default one,
    # ``wrkr``, may hold queues of another type or of other people's runs.
    url = f"{RABBITMQ_URL}?prefix={rabbitmq_prefix}"
    assert_passed_skipping_only_by_capability(run_representative(url), url, REPRESENTATIVE)


@pytest.mark.mongodb
def test_representative_tests_pass_by_url_on_the_mongodb_wire_server(
        wire_server_url: str) -> None:  # noqa: F811 - the fixture
    """`REPRESENTATIVE` only: the whole kit took 86-146 s on the wire server, this subset 28 s."""
    url = with_database(wire_server_url, new_database_name())
    assert_passed_skipping_only_by_capability(run_representative(url), url, REPRESENTATIVE)
