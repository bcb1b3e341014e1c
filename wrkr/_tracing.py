"""OpenTelemetry tracing of publishing and handling, when ``opentelemetry-api`` is installed.

`publish` runs in a PRODUCER span (``publish <event>``) and writes that span's W3C
``traceparent`` into every message it stores (`Message.trace`). A handler runs in a
CONSUMER span (``process <queue>``) whose parent is the context its item carries, so a
trace runs from the publisher through each handler to what that handler publishes in
turn, on every backend: each stores or carries the one string with the item.

Without OpenTelemetry nothing is imported and nothing runs: `load_tracing()` returns
None and the app skips every call. With the API but no SDK configured, a span is
started, found neither recording nor valid and dropped: the item goes through untraced
(no context attached, no attributes built), at the cost of that one call. Only the
public API is used.
"""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Any

from wrkr._errors import InvalidConfig
from wrkr._version import __version__

if TYPE_CHECKING:
    from wrkr._event import Event
    from wrkr._types import Item

__all__ = ["Tracing", "load_tracing"]

_SYSTEM = "wrkr"
RECHECK = 1.0
"""Seconds between looks at the global provider while it is the one without an SDK."""


class Tracing:
    """Spans around `publish` and around each handler, linked by the ``traceparent``.

    Args:
        provider: the ``TracerProvider`` to use; the global one (as it is at each span,
            so one set after the app was built counts) if None.
    """

    def __init__(self, provider: Any = None) -> None:
        from opentelemetry import trace
        from opentelemetry.context import Context
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self._tracer = trace.get_tracer("wrkr", __version__, tracer_provider=provider)
        self._global_provider = trace.get_tracer_provider if provider is None else None
        self._idle: object = None  # the global provider whose spans were not even valid
        self._recheck = 0.0  # when (monotonic) to look at the global provider again
        self._use_span = trace.use_span
        self._propagator = TraceContextTextMapPropagator()
        self._producer, self._consumer = trace.SpanKind.PRODUCER, trace.SpanKind.CONSUMER
        self._detached = Context()  # an untraced item's span starts a trace of its own

    def publishing(self, events: Sequence[Event]) -> AbstractContextManager[str | None] | None:
        """Return the PRODUCER span a publish runs in (it yields the ``traceparent`` its
        messages carry), or None without an SDK (the span is not even valid)."""
        if self._idle is not None and self._idle_still():
            return None
        names = sorted({str(event.name) for event in events})  # not validated yet
        span = self._tracer.start_span(
            f"publish {names[0] if len(names) == 1 else 'batch'}", kind=self._producer)
        if not span.is_recording() and not span.get_span_context().is_valid:
            self._no_sdk()  # a sampled-out span (valid) still carries the trace on
            return None
        span.set_attributes({"messaging.system": _SYSTEM, "messaging.operation.type": "send",
                             "messaging.destination.name": ",".join(names),
                             "messaging.batch.message_count": len(events)})
        return self._published(span)

    def _no_sdk(self) -> None:
        """Note that the global provider made an invalid span: no SDK is set up.

        Until another provider is set (`set_tracer_provider` replaces the default one,
        once), spans are not even started, and the provider is looked at again once a
        `RECHECK` only: starting a non-recording span cost 10-15 % of the memory
        backend's instructions per event, asking for the provider 5-10 % (its lookup
        reads the environment); a clock read costs next to nothing (bench/README.md).
        """
        if self._global_provider is not None:
            self._idle = self._global_provider()
            self._recheck = time.monotonic() + RECHECK

    def _idle_still(self) -> bool:
        """Tell whether the global provider is still the one that made invalid spans."""
        if self._global_provider is None:
            return False
        now = time.monotonic()
        if now < self._recheck:
            return True
        self._recheck = now + RECHECK
        return self._global_provider() is self._idle

    @contextmanager
    def _published(self, span: Any) -> Iterator[str | None]:
        with self._use_span(span, end_on_exit=True):
            carrier: dict[str, str] = {}
            self._propagator.inject(carrier)
            yield carrier.get("traceparent")

    def handling(self, item: Item, queue: str) -> AbstractContextManager[Any] | None:
        """Return the CONSUMER span a handler of `item` runs in, child of its publisher's;
        None without an SDK (the span is not even valid)."""
        if self._idle is not None and self._idle_still():
            return None
        parent = self._detached
        if item.trace is not None:
            parent = self._propagator.extract({"traceparent": item.trace})
        span = self._tracer.start_span("process " + queue, context=parent, kind=self._consumer)
        if not span.is_recording() and not span.get_span_context().is_valid:
            self._no_sdk()  # a sampled-out span (valid) still carries the trace on
            return None
        span.set_attributes({"messaging.system": _SYSTEM, "messaging.operation.type": "process",
                             "messaging.destination.name": queue,
                             "messaging.message.id": item.id, "wrkr.event.name": item.name,
                             "wrkr.attempt": item.attempts})
        return self._use_span(span, end_on_exit=True)


def load_tracing(wanted: object) -> Tracing | None:
    """Return the app's `Tracing`: None when off, or when OpenTelemetry is not installed.

    Args:
        wanted: True requires OpenTelemetry, False turns tracing off, None (the default)
            traces when ``opentelemetry-api`` is installed; a ``TracerProvider`` traces
            through it instead of the global one.

    Raises:
        InvalidConfig: `wanted` is True and OpenTelemetry is not installed, or `wanted`
            is none of the above.
    """
    if wanted is False:
        return None
    if wanted is not True and wanted is not None:
        if not callable(getattr(wanted, "get_tracer", None)):
            raise InvalidConfig(f"invalid tracing {wanted!r}: expected True, False, None or "
                                "an OpenTelemetry TracerProvider")
        return Tracing(wanted)
    try:  # find_spec of a top-level name imports nothing
        found = importlib.util.find_spec("opentelemetry") is not None
        tracing = Tracing() if found else None
    except ImportError:
        tracing = None
    if tracing is None and wanted:
        raise InvalidConfig('tracing=True needs OpenTelemetry: pip install "wrkr[otel]"')
    return tracing
