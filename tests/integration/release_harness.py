"""What the end-to-end release tests of every driver share: an engine, a worker with one real
driver, the project applied from a configuration document, and runs awaited to their end."""

from __future__ import annotations

import asyncio
from typing import Any, Generic, TypeVar

from tests.integration.support import wait_for_run

from releaseflow.domain.config import parse_configuration
from releaseflow.engine import queries
from releaseflow.engine.clock import SystemClock
from releaseflow.engine.commands import Engine, RunRequest
from releaseflow.engine.configuration import apply_configuration
from releaseflow.engine.executors import default_executors
from releaseflow.engine.worker import Worker, WorkerSettings
from releaseflow.platform.driver import Driver, DriverRegistry
from releaseflow.store.database import Database
from releaseflow.store.records import RunRecord

FAST_WORKER = WorkerSettings(
    lease_seconds=10.0, heartbeat_seconds=0.5, reap_seconds=0.5, idle_poll_seconds=0.1
)
PIPELINE = "main"

D = TypeVar("D", bound=Driver)


class ReleaseHarness(Generic[D]):
    """Subclasses say which driver (``driver``) and which project (``configuration``)."""

    project = "shop"

    def __init__(self, db: Database, driver: D) -> None:
        self.db = db
        self.driver = driver
        self.engine = Engine(db, SystemClock())
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def configuration(self) -> dict[str, Any]:
        raise NotImplementedError

    async def apply(self, staging_flow: dict[str, Any], production_flow: dict[str, Any]) -> None:
        """Apply the project with these Staging and Production release flows."""
        document = self.configuration()
        stages = document["projects"][0]["pipelines"][0]["stages"]
        stages[1]["releaseFlow"] = staging_flow
        stages[2]["releaseFlow"] = production_flow
        config = parse_configuration(document, read_file=lambda name: "")
        await apply_configuration(self.db, config, SystemClock())

    def start_worker(self) -> None:
        drivers = DriverRegistry({self.driver.name: self.driver})
        worker = Worker(self.db, default_executors(drivers), SystemClock(), FAST_WORKER, drivers=drivers)
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(worker.run(self._stop))

    async def stop_worker(self) -> None:
        if self._task is not None:
            self._stop.set()
            await asyncio.wait_for(self._task, timeout=30)
            self._task = None

    async def run(self, stage: str, name: str) -> RunRecord:
        run = await self.engine.start_run(self.project, PIPELINE, stage, RunRequest(name=name))
        return await wait_for_run(self.db, run.id, timeout=120)

    async def failure(self, run: RunRecord) -> str:
        """The failed nodes of a run and their errors, for assertion messages."""
        detail = await queries.run_detail(self.db, run.id, with_events=False)
        nodes = detail.root.walk() if detail.root else []
        failed = [
            f"{node.label}: {node.error}"
            for node in nodes
            if node.status == "failed" and not node.is_workflow
        ]
        return f"run {run.status}: {run.error or ''} " + "; ".join(failed)
