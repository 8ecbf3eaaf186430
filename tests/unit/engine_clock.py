"""An engine on a SQLite file and a clock that moves only when a test says so: no test sleeps.

The worker's loops (claim, heartbeat, reaper) are not started; a test calls ``step`` (claim what is
due and let the executors answer) and ``reap`` (the reaper's pass) at the moments it chooses.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from tests.integration.support import EngineHarness, get_run

from releaseflow.engine.commands import Engine
from releaseflow.engine.executors import default_executors
from releaseflow.engine.executors.base import ExecutionContext, NodeExecutor, Outcome
from releaseflow.engine.reaper import reap_expired_leases
from releaseflow.engine.worker import Worker, WorkerSettings
from releaseflow.platform.driver import DriverRegistry
from releaseflow.store.database import open_database
from releaseflow.store.migrate import migrate
from releaseflow.store.records import RunRecord
from releaseflow.testing import FakeDriver

LEASE_SECONDS = 15.0


class ManualClock:
    """The engine's clock, moved by the test."""

    def __init__(self) -> None:
        self._now = datetime(2026, 1, 1, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> datetime:
        self._now += timedelta(seconds=seconds)
        return self._now


@dataclass
class Recording:
    """Wraps an executor and keeps every context it was called with."""

    inner: NodeExecutor
    contexts: list[ExecutionContext] = field(default_factory=list)

    async def start(self, context: ExecutionContext) -> Outcome:
        self.contexts.append(context)
        return await self.inner.start(context)

    async def poll(self, context: ExecutionContext) -> Outcome:
        self.contexts.append(context)
        return await self.inner.poll(context)

    async def cancel(self, context: ExecutionContext) -> str:
        return await self.inner.cancel(context)


@dataclass
class ClockedEngine(EngineHarness):
    clock: ManualClock = field(default_factory=ManualClock)
    executors: Mapping[str, Recording] = field(default_factory=dict)

    def new_worker(self, name: str) -> Worker:
        """Another worker process on the same database (the previous one is gone or still there)."""
        return Worker(
            self.db,
            self.executors,
            self.clock,
            WorkerSettings(lease_seconds=LEASE_SECONDS),
            worker_id=name,
            templates=self.worker.templates,
        )

    async def step(self, worker: Worker | None = None, *, hanging: int = 0) -> int:
        """Claim what is due now; wait until every action begun answered, but ``hanging`` ones."""
        worker = worker or self.worker
        claimed = await worker.claim_once()
        await settle_tasks(worker, hanging)
        return claimed

    async def reap(self, *, restart: bool = False) -> int:
        """The reaper's pass; ``restart``: a restarted SQLite process takes over every lease at once."""
        now = self.clock.now()
        until = now + timedelta(days=1) if restart else None
        return await reap_expired_leases(self.db, now, self.worker.templates, expired_before=until)

    async def run(self, run_id: str) -> RunRecord:
        """The run as it is now (never waits: with the clock stopped, waiting would change nothing)."""
        return await get_run(self.db, run_id)

    def contexts(self) -> list[ExecutionContext]:
        """Every context an executor was called with, in call order per executor."""
        unique = {id(executor): executor for executor in self.executors.values()}
        return [context for executor in unique.values() for context in executor.contexts]


async def settle_tasks(worker: Worker, hanging: int = 0) -> None:
    """Wait until every action the worker began has answered, but for ``hanging`` that never will."""
    while True:
        pending = [task for task in worker._tasks.values() if not task.done()]
        if len(pending) <= hanging:
            break
        await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
    for _ in range(20):  # let the hanging ones reach their hang (no I/O on the way)
        await asyncio.sleep(0)


async def kill(worker: Worker) -> None:
    """The worker's process dies: its tasks end without answering, its leases stay behind."""
    await worker._stop_tasks()


@pytest.fixture
async def clocked(tmp_path: Path) -> AsyncIterator[ClockedEngine]:
    db = await open_database(f"sqlite://{tmp_path}/engine.db")
    await migrate(db)
    driver = FakeDriver()
    clock = ManualClock()
    executors: dict[str, Any] = {}
    wrappers: dict[int, Recording] = {}
    for kind, executor in default_executors(DriverRegistry({"fake": driver})).items():
        executors[kind] = wrappers.setdefault(id(executor), Recording(executor))
    worker = Worker(db, executors, clock, WorkerSettings(lease_seconds=LEASE_SECONDS), worker_id="first")
    harness = ClockedEngine(
        db=db, engine=Engine(db, clock), worker=worker, driver=driver, clock=clock, executors=executors
    )
    try:
        yield harness
    finally:
        await worker._stop_tasks()
        await db.close()
