"""The HTTP application. For now: health and the webhook inbox; the /v1 API joins later.

The app owns the process's database connection and, unless told otherwise, a worker that runs in
the same event loop (``releaseflow serve``): both start with the app and stop with it.

``uvicorn`` builds it with ``create_app`` as a factory (``releaseflow.api.app:create_app``), which
reads the settings from the environment; the command line exports its settings there first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from releaseflow.api.inbox import Inbox, inbox_routes
from releaseflow.domain.errors import ReleaseflowError
from releaseflow.engine import queries
from releaseflow.engine.worker import Worker, standard_worker
from releaseflow.settings import Settings
from releaseflow.store.database import Database, open_database
from releaseflow.store.migrate import pending_migrations

log = logging.getLogger(__name__)

# Set to "0" to serve HTTP without a worker in this process (workers run elsewhere).
WORKER_VARIABLE = "RELEASEFLOW_SERVE_WORKER"


class _Runtime:
    """What the app holds while it runs: the database and the worker task."""

    def __init__(self, settings: Settings, with_worker: bool) -> None:
        self.settings = settings
        self.with_worker = with_worker
        self.db: Database | None = None
        self.worker: Worker | None = None
        self.worker_task: asyncio.Task[None] | None = None
        self.stop = asyncio.Event()

    async def start(self) -> None:
        self.db = await open_database(self.settings.database_url)
        missing = await pending_migrations(self.db)
        if missing:
            raise ReleaseflowError(
                f"the database needs {len(missing)} migration(s): run `releaseflow db migrate`"
            )
        if self.with_worker:
            self.worker = standard_worker(self.db, self.settings.worker, self.settings.drivers())
            self.worker_task = asyncio.create_task(self.worker.run(self.stop), name="releaseflow-worker")
            log.info("worker %s started", self.worker.id)

    async def close(self) -> None:
        self.stop.set()
        if self.worker_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.worker_task, timeout=30)
        if self.db is not None:
            await self.db.close()

    def worker_state(self) -> str:
        if not self.with_worker:
            return "not in this process"
        if self.worker_task is None or self.worker_task.done():
            return "stopped"
        return "alive"


def create_app(settings: Settings | None = None, *, with_worker: bool | None = None) -> FastAPI:
    settings = settings or Settings.from_env(os.environ)
    if with_worker is None:
        with_worker = os.environ.get(WORKER_VARIABLE, "1") != "0"
    runtime = _Runtime(settings, with_worker)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.close()

    app = FastAPI(title="releaseflow", lifespan=lifespan)
    app.include_router(inbox_routes(Inbox()))

    @app.get("/healthz")
    async def health() -> JSONResponse:
        checks: dict[str, Any] = {"worker": runtime.worker_state()}
        if runtime.db is None:
            checks["database"] = "not open"
        else:
            try:
                await queries.ping(runtime.db)
                checks["database"] = "reachable"
            except Exception as error:  # any failure to answer means unhealthy; say why
                checks["database"] = f"unreachable: {error}"
        healthy = checks["database"] == "reachable" and checks["worker"] != "stopped"
        return JSONResponse(
            {"status": "ok" if healthy else "unhealthy", **checks}, status_code=200 if healthy else 503
        )

    return app
