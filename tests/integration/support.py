"""Helpers for engine integration tests: seed a stage, run a worker, wait for a run to end."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from releaseflow.domain.statuses import TERMINAL_RUN_STATUSES, RunStatus
from releaseflow.engine.commands import Engine
from releaseflow.engine.worker import Worker
from releaseflow.store import catalog
from releaseflow.store import runs as run_store
from releaseflow.store.database import Database
from releaseflow.store.records import NodeRecord, RunRecord
from releaseflow.testing import FakeDriver

PROJECT = "shop"
PIPELINE = "main"
STAGES = ("Development", "Staging", "Production")


def workflow(*steps: dict[str, Any], kind: str = "sequential", **extra: Any) -> dict[str, Any]:
    return {"kind": "Workflow", **extra, "spec": {"type": kind, "steps": list(steps)}}


def template(root: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {"apiVersion": "v1.2", "spec": root, **top}


def job_run(ref: str, job: str = "migrate", **extra: Any) -> dict[str, Any]:
    return {"kind": "JobRun", "ref": ref, "spec": {"jobId": job}, **extra}


def deploy(ref: str, service: str = "api", **extra: Any) -> dict[str, Any]:
    return {
        "kind": "Release",
        "ref": ref,
        "spec": {
            "type": "build",
            "origin": {"id": "builder", "branch": "main", "build": "latest"},
            "target": {"id": service, "type": "service"},
        },
        **extra,
    }


def fast(node: dict[str, Any], attempts: int = 3, delay: float = 0.05) -> dict[str, Any]:
    return {**node, "settings": {"maxAttempts": attempts, "backoff": {"type": "fixed", "delay": delay}}}


@dataclass
class EngineHarness:
    db: Database
    engine: Engine
    worker: Worker
    driver: FakeDriver
    _stop: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None

    async def seed(self, document: dict[str, Any], stage: str = "Development") -> None:
        """A project with services api/web, job migrate, addon db and build service builder (fake driver)."""
        now = datetime.now(UTC)
        async with self.db.transaction() as tx:
            await catalog.save_project(tx, PROJECT, "Shop", "", now)
            for resource_id, kind in (
                ("api", "service"),
                ("web", "service"),
                ("migrate", "job"),
                ("db", "addon"),
                ("builder", "build_service"),
                ("api-staging", "service"),
            ):
                await catalog.save_resource(tx, PROJECT, resource_id, kind, "fake", {}, now)
            await catalog.save_pipeline(tx, PROJECT, PIPELINE, "Main", "", now)
            for position, name in enumerate(STAGES):
                await catalog.save_stage(tx, PROJECT, PIPELINE, name, position)
            await catalog.set_stage_resources(
                tx, PROJECT, PIPELINE, "Development", ["api", "web", "migrate", "db"]
            )
            await catalog.set_stage_resources(tx, PROJECT, PIPELINE, "Staging", ["api-staging"])
            await catalog.add_flow_version(tx, PROJECT, PIPELINE, stage, document, "test", now)

    async def start(self, stage: str = "Development", **request: Any) -> RunRecord:
        from releaseflow.engine.commands import RunRequest

        return await self.engine.start_run(PROJECT, PIPELINE, stage, RunRequest(**request))

    def start_worker(self) -> None:
        if self._task is None:
            self._stop = asyncio.Event()
            self._task = asyncio.create_task(self.worker.run(self._stop))

    async def stop_worker(self) -> None:
        if self._task is not None:
            self._stop.set()
            await asyncio.wait_for(self._task, timeout=10)
            self._task = None

    async def run(self, run_id: str) -> RunRecord:
        return await wait_for_run(self.db, run_id)

    async def run_status(self, run_id: str) -> RunStatus:
        return (await get_run(self.db, run_id)).status

    async def nodes(self, run_id: str) -> dict[str, NodeRecord]:
        async with self.db.read() as tx:
            nodes = await run_store.load_nodes(tx, run_id)
        return {node.ref or node.path: node for node in nodes}

    async def events(self, run_id: str) -> list[tuple[str | None, str | None, str]]:
        async with self.db.read() as tx:
            return [
                (e.node_path, e.from_status, e.to_status) for e in await run_store.list_events(tx, run_id)
            ]


async def get_run(db: Database, run_id: str) -> RunRecord:
    async with db.read() as tx:
        run = await run_store.get_run(tx, run_id)
    assert run is not None
    return run


async def wait_for_run(
    db: Database,
    run_id: str,
    *,
    statuses: frozenset[RunStatus] = TERMINAL_RUN_STATUSES,
    timeout: float = 20.0,
) -> RunRecord:
    deadline = time.monotonic() + timeout
    while True:
        run = await get_run(db, run_id)
        if run.status in statuses:
            return run
        if time.monotonic() > deadline:
            raise AssertionError(f"run {run_id} still {run.status} after {timeout}s")
        await asyncio.sleep(0.05)


async def wait_for_node(
    db: Database, run_id: str, key: str, status: str, timeout: float = 20.0
) -> NodeRecord:
    deadline = time.monotonic() + timeout
    while True:
        async with db.read() as tx:
            nodes = await run_store.load_nodes(tx, run_id)
        for node in nodes:
            if key in (node.ref, node.path) and node.status == status:
                return node
        if time.monotonic() > deadline:
            raise AssertionError(f"node {key} of run {run_id} never became {status}")
        await asyncio.sleep(0.05)
