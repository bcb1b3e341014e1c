"""``python -m examples.booklogr api|worker``: serve the task API, or run a worker."""

from __future__ import annotations

import argparse
import asyncio

from examples.booklogr import db
from examples.booklogr.settings import Settings
from examples.booklogr.tasks import build_app
from examples.booklogr.workers import BookTasks


async def run_worker(settings: Settings, nickname: str, types: list[str]) -> None:
    """Consume the queues of `types` until SIGINT / SIGTERM; print "ready" once listening."""
    pool = db.open_pool(settings.database)
    await pool.open()
    try:
        await db.create_tables(pool, settings.schema)
        known = BookTasks(pool, settings.schema, settings.export_folder).handlers()
        unknown = sorted(set(types) - set(known))
        if unknown:
            raise SystemExit(f"unknown task type(s) {unknown}: expected some of {sorted(known)}")
        app = build_app(settings.wrkr_url, nickname, {t: known[t] for t in types})
        async with app:
            await app.listen()
            print(f"ready {app.worker_id} {','.join(types)}", flush=True)
            await app.run()
    finally:
        await pool.close()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and run the API or a worker."""
    parser = argparse.ArgumentParser(prog="python -m examples.booklogr")
    commands = parser.add_subparsers(dest="command", required=True)
    api = commands.add_parser("api", help="serve the task API")
    api.add_argument("--host", default="127.0.0.1")
    api.add_argument("--port", type=int, default=8000)
    worker = commands.add_parser("worker", help="run the tasks of some types")
    worker.add_argument("--nickname", default="worker", help="the worker id's prefix")
    worker.add_argument("--types", default="csv_export", help="comma-separated task types")
    args = parser.parse_args(argv)
    settings = Settings.from_env()
    if args.command == "api":
        import uvicorn

        from examples.booklogr.api import create_api

        uvicorn.run(create_api(settings), host=args.host, port=args.port)
    else:
        asyncio.run(run_worker(settings, args.nickname, args.types.split(",")))


if __name__ == "__main__":
    main()
