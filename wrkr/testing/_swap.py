"""Put an app on another backend and back: the one module that reaches inside `Wrkr`.

Assigning `app.backend` alone is not enough (the consumers' settings keep the old
backend, so handlers wait on a store nobody publishes to); this swaps both, and
remembers the routes and the started / listening state to put back afterwards.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from wrkr import Wrkr
from wrkr._consumer import Route, Settings
from wrkr.backend import Backend

__all__ = ["SavedApp", "give_back", "routed_queues", "schedules_settled", "take_over"]


@dataclass(frozen=True, slots=True)
class SavedApp:
    """What an app was before a harness took it over."""

    backend: Backend
    settings: Settings
    routes: dict[str, list[Route]]
    started: bool
    listening: bool


async def take_over(app: Wrkr, backend: Backend) -> SavedApp:
    """Stop `app` if it runs (gracefully) and point it at `backend`; return what it was."""
    saved = SavedApp(app.backend, app._settings,
                     {queue: list(routes) for queue, routes in app._routes.items()},
                     app._started, app._listening)
    if saved.started:
        await app.stop()
    _point(app, backend, dataclasses.replace(saved.settings, backend=backend))
    return saved


async def give_back(app: Wrkr, saved: SavedApp) -> None:
    """Stop `app` and put back its backend, routes and state (started, listening)."""
    await app.stop()
    _point(app, saved.backend, saved.settings)
    app._routes = {queue: list(routes) for queue, routes in saved.routes.items()}
    if saved.started:
        await app.start()
        if saved.listening:
            await app.listen()


def routed_queues(app: Wrkr) -> list[str]:
    """Return the queues `app` has handlers for (the ones its consumers drain)."""
    return list(app._routes)


async def schedules_settled(app: Wrkr) -> None:
    """Wait until the app's scheduler has fired everything due by its clock."""
    scheduler = app._scheduler
    if scheduler is not None:
        await scheduler.quiet.wait()


def _point(app: Wrkr, backend: Backend, settings: Settings) -> None:
    app.backend = backend
    app._settings = settings
