"""wrkr.web: the HTTP API, health checks, Prometheus metrics and the dashboard of an app.

    api.mount("/wrkr", wrkr.web.asgi(events))

Needs the ``wrkr[web]`` extra (Starlette, uvicorn, prometheus_client). The ASGI app never
starts the wrkr app: the user's lifespan does (`async with events:`), and until then
the API, `/readyz` and `/metrics` answer 503 (`/healthz` and the dashboard's page load).
"""

try:
    import prometheus_client as _prometheus_client  # noqa: F401
    import starlette as _starlette  # noqa: F401
except ImportError as exc:  # pragma: no cover - depends on what is installed
    raise ImportError(f'wrkr.web needs its extra: pip install "wrkr[web]" ({exc})') from exc

from wrkr.web._asgi import asgi, probes
from wrkr.web._metrics import Metrics, metrics_for

__all__ = ["Metrics", "asgi", "metrics_for", "probes"]
