"""The HTTP application. For now: health and the webhook inbox; the /v1 API joins later.

The app owns the process's parts, built by ``releaseflow.application`` from the settings it is given:
the database connection and, unless told otherwise, a worker that runs in the same event loop
(``releaseflow serve``); both start with the app and stop with it. ``create_app`` reads nothing from
the environment: whoever starts the server passes the settings.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse

from releaseflow.api.inbox import Inbox, inbox_routes
from releaseflow.application import Application, open_application
from releaseflow.engine import queries
from releaseflow.engine.worker import Worker
from releaseflow.settings import Settings

log = logging.getLogger(__name__)


class _Runtime:
    """What the app holds while it runs: the database and the worker task."""

    def __init__(self, settings: Settings, with_worker: bool) -> None:
        self.settings = settings
        self.with_worker = with_worker
        self.application: Application | None = None
        self._exit = contextlib.AsyncExitStack()
        self.worker: Worker | None = None
        self.worker_task: asyncio.Task[None] | None = None
        self.stop = asyncio.Event()

    async def start(self) -> None:
        self.application = await self._exit.enter_async_context(open_application(self.settings))
        if self.with_worker:
            self.worker = self.application.worker()
            self.worker_task = asyncio.create_task(self.worker.run(self.stop), name="releaseflow-worker")
            log.info("worker %s started", self.worker.id)

    async def close(self) -> None:
        self.stop.set()
        if self.worker_task is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.worker_task, timeout=30)
        await self._exit.aclose()

    def worker_state(self) -> str:
        if not self.with_worker:
            return "not in this process"
        if self.worker_task is None or self.worker_task.done():
            return "stopped"
        return "alive"


def create_app(settings: Settings, *, with_worker: bool = True) -> FastAPI:
    """The app for these settings; ``with_worker=False`` serves HTTP only (workers run elsewhere)."""
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
        if runtime.application is None:
            checks["database"] = "not open"
        else:
            try:
                await queries.ping(runtime.application.db)
                checks["database"] = "reachable"
            except Exception as error:  # any failure to answer means unhealthy; say why
                checks["database"] = f"unreachable: {error}"
        healthy = checks["database"] == "reachable" and checks["worker"] != "stopped"
        return JSONResponse(
            {"status": "ok" if healthy else "unhealthy", **checks}, status_code=200 if healthy else 503
        )

    return app
