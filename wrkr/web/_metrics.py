"""Prometheus metrics of one app, fed by its hooks, in a registry of its own.

Each app gets one `Metrics` (`metrics_for(app)`), with its own `CollectorRegistry`, so
two apps in a process never clash and nothing lands in prometheus_client's global one.
Every process counts what it did: a worker what it handled, `wrkr serve` what its API
published. `wrkr_items` is read from the backend at scrape time, at most once per
`items_ttl` seconds, so frequent scrapes stay cheap.

Labels are bounded: event names and queues, never ids or tids.
"""

from __future__ import annotations

import logging
import time
import weakref
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from wrkr._errors import WrkrError
from wrkr._event import Event
from wrkr._hooks import Handled, Observer
from wrkr._types import Capability, Message, State
from wrkr.web._throughput import Throughput

if TYPE_CHECKING:
    from prometheus_client import Metric

    from wrkr._app import Wrkr

__all__ = ["Metrics", "metrics_for"]

logger = logging.getLogger("wrkr.web")
ITEMS_TTL = 5.0
# Handlers run from milliseconds to minutes; lateness from nothing to a backlog of hours.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
LATENESS_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)
_ALL: weakref.WeakKeyDictionary[Wrkr, Metrics] = weakref.WeakKeyDictionary()


def metrics_for(app: Wrkr) -> Metrics:
    """Return the app's `Metrics`, made and registered as its observer on first use."""
    metrics = _ALL.get(app)
    if metrics is None:
        metrics = _ALL[app] = Metrics(app)
        app.observe(metrics)
    return metrics


class Metrics(Observer):
    """An observer that counts into a per-app registry and reads item counts at scrape."""

    def __init__(self, app: Wrkr, items_ttl: float = ITEMS_TTL) -> None:
        self._app = weakref.ref(app)  # the registry of apps must not keep one alive
        self.registry = CollectorRegistry(auto_describe=True)
        self.throughput = Throughput()
        self._items = _ItemsCollector()
        self._items_ttl = items_ttl
        self._items_read = -items_ttl
        self._running: set[str | None] = set()
        self._declare()

    def _declare(self) -> None:
        registry = self.registry
        self.published_total = Counter("wrkr_published", "Events published by this process.",
                                       ["event"], registry=registry)
        self.handled_total = Counter("wrkr_handled", "Deliveries settled by this process.",
                                     ["queue", "outcome"], registry=registry)
        self.duration = Histogram("wrkr_handler_duration_seconds", "How long handlers ran.",
                                  ["queue"], buckets=DURATION_BUCKETS, registry=registry)
        self.lateness = Histogram("wrkr_lateness_seconds", "Handler start minus due time.",
                                  ["queue"], buckets=LATENESS_BUCKETS, registry=registry)
        self.in_flight = Gauge("wrkr_in_flight", "Handlers running now in this process.",
                               ["queue"], registry=registry)
        registry.register(self._items)

    # -- hooks -----------------------------------------------------------------------

    def published(self, messages: Sequence[Message], ids: Sequence[str]) -> None:
        """Count each published event by name."""
        for message in messages:
            self.published_total.labels(message.name).inc()
        self.throughput.add("published", len(messages))

    def started(self, event: Event) -> None:
        """Count a handler in flight."""
        self._running.add(event.id)
        self.in_flight.labels(event.queue or "").inc()

    def handled(self, report: Handled) -> None:
        """Count the outcome, and the duration and lateness of a handler that ran."""
        queue = report.event.queue or ""
        self.handled_total.labels(queue, report.outcome.value).inc()
        self.throughput.add(report.outcome.value, 1)
        if report.event.id in self._running:
            self._running.discard(report.event.id)
            self.in_flight.labels(queue).dec()
            self.duration.labels(queue).observe(report.duration)
            self.lateness.labels(queue).observe(max(report.lateness, 0.0))

    # -- scrape ----------------------------------------------------------------------

    async def scrape(self) -> bytes:
        """Return the metrics in the Prometheus text format, item counts refreshed if stale."""
        await self.refresh_items()
        return generate_latest(self.registry)

    async def refresh_items(self) -> None:
        """Read the counts per queue and state from the backend, unless read recently."""
        if time.monotonic() - self._items_read < self._items_ttl:
            return
        app = self._app()
        if app is None or Capability.QUERY not in app.backend.capabilities:
            return
        self._items_read = time.monotonic()
        try:
            self._items.counts = await app.counts()
        except WrkrError as exc:  # not started, or the backend is down: no stale counts
            self._items.counts = {}
            logger.debug("wrkr_items not read: %s", exc)


class _ItemsCollector(Collector):
    """Yields `wrkr_items{queue,state}` from the last counts read."""

    def __init__(self) -> None:
        self.counts: dict[str, dict[State, int]] = {}

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily("wrkr_items", "Items in the backend, per queue and state.",
                                   labels=["queue", "state"])
        for queue, states in self.counts.items():
            for state, count in states.items():
                family.add_metric([queue, state.value], count)
        yield family

    def describe(self) -> Iterator[Metric]:
        yield GaugeMetricFamily("wrkr_items", "Items in the backend, per queue and state.",
                                labels=["queue", "state"])
