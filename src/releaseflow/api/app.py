"""The HTTP application: the Northflank-compatible ``/v1`` API, releaseflow's own ``/api`` routes and
event streams, trigger hooks, health, the message inbox, the documentation, and the web interface.

Its structure, for whoever adds routes: one router module per area (``api/northflank.py``,
``api/runs.py``, ``api/stages.py``, ``api/inbox.py``, ...), every route guarded by the one access
dependency (``api/auth.py``), every refusal in the one error envelope (``api/errors.py``), lists
paged by ``api/pagination.py``, request bodies bounded by ``api/limits.py``.

The app owns the process's parts, built by ``releaseflow.application`` from the settings it is given:
the database connection and, unless told otherwise, a worker that runs in the same event loop
(``releaseflow serve``); both start with the app and stop with it. ``create_app`` reads nothing from
the environment: whoever starts the server passes the settings.

If that worker ends while the app is not stopping (a bug: database outages are ridden out inside the
worker), the whole process stops with exit status 1, so that a supervisor restarts it: HTTP never
keeps answering beside a dead worker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.responses import JSONResponse, RedirectResponse

from releaseflow.api.access_tokens import token_routes
from releaseflow.api.approvals import approval_routes
from releaseflow.api.configuration import configuration_routes
from releaseflow.api.docs import DOCS_URL, docs_routes
from releaseflow.api.errors import install_error_handlers
from releaseflow.api.events import event_routes
from releaseflow.api.identity import identity_routes
from releaseflow.api.inbox import Inbox, inbox_routes
from releaseflow.api.limits import BodyLimit
from releaseflow.api.northflank import northflank_routes
from releaseflow.api.notifications import notification_routes
from releaseflow.api.plans import plan_routes
from releaseflow.api.projects import project_routes
from releaseflow.api.records import record_routes
from releaseflow.api.run_start import run_start_routes
from releaseflow.api.runs import run_routes
from releaseflow.api.stages import stage_routes
from releaseflow.api.triggers import trigger_routes
from releaseflow.application import Application, open_application
from releaseflow.engine import queries, tokens
from releaseflow.engine.worker import Worker
from releaseflow.settings import Settings
from releaseflow.store.database import Database, describe
from releaseflow.web.pages import web_app

log = logging.getLogger(__name__)

# The exit status of a process whose worker died, and how long its graceful stop may take.
EXIT_WORKER_DIED = 1
GRACEFUL_STOP_SECONDS = 30.0
# /healthz waits this long for the database before it reports it unreachable.
PING_TIMEOUT_SECONDS = 3.0


def stop_this_process() -> None:
    """Stop the server gracefully (uvicorn handles SIGTERM), and for certain after a grace period."""
    timer = threading.Timer(GRACEFUL_STOP_SECONDS, os._exit, (EXIT_WORKER_DIED,))
    timer.daemon = True
    timer.start()
    os.kill(os.getpid(), signal.SIGTERM)


def exit_process() -> None:
    """The end of a process whose worker died: everything is closed; exit non-zero at once (uvicorn
    would otherwise exit 0 after the SIGTERM it was sent)."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(EXIT_WORKER_DIED)


class _Runtime:
    """What the app holds while it runs: the database and the worker task."""

    def __init__(
        self,
        settings: Settings,
        with_worker: bool,
        on_worker_died: Callable[[], None] = stop_this_process,
    ) -> None:
        self.settings = settings
        self.with_worker = with_worker
        self.application: Application | None = None
        self._exit = contextlib.AsyncExitStack()
        self.worker: Worker | None = None
        self.worker_task: asyncio.Task[None] | None = None
        self.stop = asyncio.Event()
        self.worker_died = False
        self.inbox_key = ""
        self._on_worker_died = on_worker_died

    @property
    def db(self) -> Database | None:
        return self.application.db if self.application is not None else None

    async def start(self) -> None:
        self.application = await self._exit.enter_async_context(open_application(self.settings))
        self.inbox_key = await tokens.inbox_key(
            self.application.db, self.application.clock, self.settings.inbox_key
        )
        if self.with_worker:
            self.worker = self.application.worker()
            self.worker_task = asyncio.create_task(self.worker.run(self.stop), name="releaseflow-worker")
            self.worker_task.add_done_callback(self._worker_ended)
            log.info("worker %s started", self.worker.id)

    def _worker_ended(self, task: asyncio.Task[None]) -> None:
        if self.stop.is_set():
            return  # the app is stopping: the worker was asked to
        error = None if task.cancelled() else task.exception()
        log.critical(
            "the worker of this process ended unexpectedly (%s): stopping releaseflow so that its"
            " supervisor restarts it",
            describe(error) if error is not None else "cancelled",
            exc_info=error,
        )
        self.worker_died = True
        self._on_worker_died()

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

    async def database_state(self) -> str | None:
        """None when the database answers; else what is wrong with it."""
        if self.db is None:
            return "not open"
        try:
            await asyncio.wait_for(queries.ping(self.db), timeout=PING_TIMEOUT_SECONDS)
        except TimeoutError:
            return f"unreachable: no answer within {PING_TIMEOUT_SECONDS:g}s"
        except Exception as error:  # any failure to answer means degraded; say why
            return f"unreachable: {describe(error)}"
        return None


def create_app(
    settings: Settings,
    *,
    with_worker: bool = True,
    on_worker_died: Callable[[], None] | None = None,
) -> FastAPI:
    """The app for these settings; ``with_worker=False`` serves HTTP only (workers run elsewhere).
    ``on_worker_died`` is called when the in-process worker ends unexpectedly; by default the process
    stops gracefully and then exits with ``EXIT_WORKER_DIED``."""
    runtime = _Runtime(settings, with_worker, on_worker_died or stop_this_process)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.close()
            if runtime.worker_died and on_worker_died is None:
                exit_process()

    # The documentation is releaseflow's own (api/docs.py): FastAPI's pages would load it from a CDN.
    app = FastAPI(title="releaseflow", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.docs_url = DOCS_URL
    app.state.runtime = runtime
    install_error_handlers(app)
    app.add_middleware(BodyLimit)
    app.include_router(northflank_routes())
    app.include_router(inbox_routes(Inbox()))
    app.include_router(trigger_routes(lambda: runtime.application, settings))
    app.include_router(run_routes())
    app.include_router(stage_routes())
    app.include_router(event_routes())
    app.include_router(token_routes())
    app.include_router(identity_routes())
    app.include_router(approval_routes())
    app.include_router(plan_routes())
    app.include_router(run_start_routes())
    app.include_router(configuration_routes())
    app.include_router(project_routes())
    app.include_router(record_routes())
    app.include_router(notification_routes())
    app.include_router(docs_routes())

    app.mount("/web", web_app(lambda: runtime.application))

    @app.get("/", include_in_schema=False)
    async def index() -> RedirectResponse:
        """The root leads to the web interface: projects and pipelines."""
        return RedirectResponse("/web/")

    @app.get("/healthz", responses={503: {"description": "degraded: the problems say what is wrong"}})
    async def health() -> JSONResponse:
        """``ok`` (200), or ``degraded`` (503) with what is wrong: the database is away (the process
        rides it out and resumes by itself) or the worker stopped (the process is exiting)."""
        worker = runtime.worker_state()
        database_problem = await runtime.database_state()
        checks: dict[str, Any] = {"worker": worker, "database": database_problem or "reachable"}
        problems = [f"database {database_problem}"] if database_problem else []
        if worker == "stopped":
            problems.append("the worker stopped")
        outage = runtime.db.outage if runtime.db is not None else None
        if database_problem and outage is not None:
            checks["databaseAwaySince"] = outage.since.isoformat()
        body = {"status": "degraded" if problems else "ok", **checks}
        if problems:
            body["problems"] = problems
        return JSONResponse(body, status_code=503 if problems else 200)

    return app
