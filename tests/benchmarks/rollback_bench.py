"""Rollback and history figures: how soon a rollback acts, and how fast a long runs list pages.

* ``request -> first deploy``: from calling the rollback command (preview with the driver's artifact
  check, plan, document, admission) to the driver receiving the first Release of the rollback run,
  with a worker in the same process (as ``releaseflow serve`` runs it). Stage: SERVICES services and
  a job; three releases first, then rollbacks to each in turn.
* ``runs list``: a stage with RUNS runs (written directly, in bulk), then pages of 20 newest first:
  unfiltered, by status, by kind, by origin, only concluded, and deep pages through the cursor.
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from tests.benchmarks.engine_bench import percentile

from releaseflow.engine.clock import SystemClock
from releaseflow.engine.commands import Engine, RunRequest
from releaseflow.engine.executors import default_executors
from releaseflow.engine.history import runs_page
from releaseflow.engine.rollback import Rollbacks
from releaseflow.engine.worker import Worker, WorkerSettings
from releaseflow.platform.driver import (
    AnswerState,
    Artifact,
    DriverAnswer,
    DriverRegistry,
    DriverRequest,
    Resource,
)
from releaseflow.store import catalog
from releaseflow.store.database import Database, open_database
from releaseflow.store.migrate import migrate

PROJECT, PIPELINE, STAGE = "bench", "main", "Production"
SERVICES = 5
RUNS = 100_000
PAGE = 20
LIST_CALLS = 50  # per kind of query


class DeployDriver:
    """Answers every deploy at once with the build it was asked for; notes when a run's first deploy
    arrived. Every artifact exists (the check is made, as a real driver's would be)."""

    name = "bench"

    def __init__(self) -> None:
        self.first_call: dict[str, float] = {}
        self.arrived = asyncio.Event()

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    async def perform(self, request: DriverRequest) -> DriverAnswer:
        if request.run_id not in self.first_call:
            self.first_call[request.run_id] = time.perf_counter()
            self.arrived.set()
        build = str(request.params.get("build"))
        artifact = {"kind": "build", "buildService": "builder", "buildId": build}
        return DriverAnswer(AnswerState.DONE, {"artifact": artifact})

    async def follow(self, request: DriverRequest, handle: Any) -> DriverAnswer:
        return await self.perform(request)

    async def cancel(self, request: DriverRequest, handle: Any) -> str:
        return ""

    async def artifact_exists(self, artifact: Artifact, resources: dict[str, Resource]) -> bool:
        return True


def stage_flow() -> dict[str, Any]:
    targets = [(f"svc-{n}", "service") for n in range(SERVICES)] + [("migrate", "job")]
    steps = [
        {
            "kind": "Release",
            "ref": target,
            "spec": {
                "type": "build",
                "origin": {"id": "builder", "build": "${args.build}"},
                "target": {"id": target, "type": kind},
            },
        }
        for target, kind in targets
    ]
    return {
        "apiVersion": "v1.2",
        "arguments": {"build": "b0"},
        "spec": {"kind": "Workflow", "spec": {"type": "parallel", "steps": steps}},
    }


async def seed(db: Database) -> str:
    now = datetime.now(UTC)
    async with db.transaction() as tx:
        await catalog.save_project(tx, PROJECT, "Rollback benchmark", "", now)
        await catalog.save_pipeline(tx, PROJECT, PIPELINE, "Main", "", now)
        await catalog.save_stage(tx, PROJECT, PIPELINE, STAGE, 0)
        await catalog.save_resource(tx, PROJECT, "builder", "build_service", "bench", {}, now)
        ids = [f"svc-{n}" for n in range(SERVICES)]
        for resource in ids:
            await catalog.save_resource(tx, PROJECT, resource, "service", "bench", {}, now)
        await catalog.save_resource(tx, PROJECT, "migrate", "job", "bench", {}, now)
        await catalog.set_stage_resources(tx, PROJECT, PIPELINE, STAGE, [*ids, "migrate"])
        await catalog.add_flow_version(tx, PROJECT, PIPELINE, STAGE, stage_flow(), "bench", now)
        flow = await catalog.get_flow(tx, PROJECT, PIPELINE, STAGE)
    assert flow is not None
    return flow.id


async def _ended(db: Database, run_id: str) -> None:
    from releaseflow.domain.statuses import TERMINAL_RUN_STATUSES
    from releaseflow.store import runs as run_store

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        async with db.read() as tx:
            run = await run_store.get_run(tx, run_id)
        if run is not None and run.status in TERMINAL_RUN_STATUSES:
            return
        await asyncio.sleep(0.01)
    raise RuntimeError(f"run {run_id} did not end within 60 s")


@dataclass(frozen=True)
class RollbackFigures:
    database: str
    first_deploy_ms: tuple[float, ...]

    def summary(self) -> dict[str, float]:
        values = self.first_deploy_ms
        return {
            "p50_ms": round(percentile(values, 0.5), 1),
            "max_ms": round(max(values), 1),
            "samples": len(values),
        }


async def bench_rollback_start(database: str, url: str, repeat: int) -> RollbackFigures:
    db = await open_database(url)
    stop = asyncio.Event()
    try:
        await migrate(db)
        await seed(db)
        driver = DeployDriver()
        drivers = DriverRegistry({driver.name: driver})
        clock = SystemClock()
        engine = Engine(db, clock)
        settings = WorkerSettings(idle_poll_seconds=0.05)
        worker = Worker(db, default_executors(drivers), clock, settings, drivers=drivers)
        task = asyncio.create_task(worker.run(stop))
        releases = []
        for build in ("b1", "b2", "b3"):
            run = await engine.start_run(PROJECT, PIPELINE, STAGE, RunRequest(arguments={"build": build}))
            await _ended(db, run.id)
            releases.append(run.id)
        rollbacks = Rollbacks(engine, drivers)
        figures = []
        for attempt in range(repeat + 1):
            target = releases[attempt % len(releases)]
            driver.arrived.clear()
            began = time.perf_counter()
            started = await rollbacks.start(target, by="benchmark")
            await asyncio.wait_for(driver.arrived.wait(), timeout=30)
            if attempt:  # the first is a warm-up
                figures.append((driver.first_call[started.run.id] - began) * 1000)
            await _ended(db, started.run.id)
        stop.set()
        await task
        return RollbackFigures(database, tuple(figures))
    finally:
        stop.set()
        await db.close()


async def fill_runs(db: Database, flow_id: str, count: int) -> None:
    """``count`` ended runs of the flow, in bulk: mostly releases, some failed, some rollbacks."""
    rng = random.Random(7)
    now = time.time()
    statuses = ["success"] * 8 + ["failed", "aborted"]
    origins = ["person", "token", "git", "webhook"]
    async with db.transaction() as tx:
        await tx.execute("UPDATE release_flows SET next_run_seq = ? WHERE id = ?", (count + 1, flow_id))
        batch: list[tuple[Any, ...]] = []
        for seq in range(1, count + 1):
            kind = "rollback" if seq % 50 == 0 else "release"
            at = now - (count - seq) * 60
            batch.append(
                (
                    str(uuid.UUID(int=rng.getrandbits(128))),
                    flow_id,
                    1,
                    seq,
                    kind,
                    "rollback" if kind == "rollback" else rng.choice(origins),
                    "bench",
                    rng.choice(statuses),
                    at,
                    at + 30,
                )
            )
            if len(batch) == 5000 or seq == count:
                await tx.executemany(
                    "INSERT INTO runs (id, flow_id, flow_version, seq, kind, origin_kind, triggered_by,"
                    " status, arguments, overrides, release_node_overrides, document, created_at,"
                    " started_at, concluded_at, updated_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, '{}', '{}', '{}', '{}', ?, ?, ?, ?)",
                    [(*row[:-2], row[-2], row[-2], row[-1], row[-1]) for row in batch],
                )
                batch = []


@dataclass(frozen=True)
class ListFigures:
    database: str
    runs: int
    timings_ms: dict[str, tuple[float, ...]]

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            name: {"p50_ms": round(percentile(values, 0.5), 2), "p95_ms": round(percentile(values, 0.95), 2)}
            for name, values in self.timings_ms.items()
        }

    def overall_p95_ms(self) -> float:
        return round(percentile([value for values in self.timings_ms.values() for value in values], 0.95), 2)


async def bench_runs_list(database: str, url: str, runs: int) -> ListFigures:
    db = await open_database(url)
    try:
        await migrate(db)
        flow_id = await seed(db)
        await fill_runs(db, flow_id, runs)
        async with db.transaction() as tx:
            stored = int(await tx.fetchvalue("SELECT COUNT(*) FROM runs WHERE flow_id = ?", (flow_id,)))
            if stored != runs:
                raise RuntimeError(f"{stored} runs were written, expected {runs}")
            if tx.dialect == "postgresql":
                await tx.execute("ANALYZE runs")
            else:
                await tx.execute("ANALYZE")
        rng = random.Random(11)
        queries: dict[str, Callable[[], dict[str, Any]]] = {
            "newest": lambda: {},
            "status failed": lambda: {"statuses": ["failed"]},
            "kind rollback": lambda: {"kind": "rollback"},
            "origin webhook": lambda: {"origin": "webhook"},
            "concluded": lambda: {"concluded": True},
            "deep page": lambda: {"cursor": rng.randrange(PAGE + 1, runs)},
        }
        timings: dict[str, list[float]] = {name: [] for name in queries}
        for _ in range(LIST_CALLS):
            for name, options in queries.items():
                began = time.perf_counter()
                page = await runs_page(db, PROJECT, PIPELINE, STAGE, limit=PAGE, **options())
                timings[name].append((time.perf_counter() - began) * 1000)
                if not page.runs:
                    raise RuntimeError(f"runs list '{name}' came back empty")
        return ListFigures(database, runs, {name: tuple(values) for name, values in timings.items()})
    finally:
        await db.close()


def table(starts: Sequence[RollbackFigures], lists: Sequence[ListFigures]) -> str:
    lines = ["rollback: request -> first deploy starting (target <= 1000 ms on SQLite)"]
    for figures in starts:
        summary = figures.summary()
        lines.append(
            f"  {figures.database:<10}  p50 {summary['p50_ms']:>7.1f} ms   max {summary['max_ms']:>7.1f} ms"
            f"   ({summary['samples']:g} rollbacks of {SERVICES} services and a job)"
        )
    for listing in lists:
        lines.append(
            f"runs list of a stage with {listing.runs:,} runs, pages of {PAGE} (target p95 <= 50 ms)"
        )
        for name, figures in listing.summary().items():
            p50, p95 = figures["p50_ms"], figures["p95_ms"]
            lines.append(f"  {listing.database:<10}  {name:<15} p50 {p50:>6.2f} ms   p95 {p95:>6.2f} ms")
        lines.append(f"  {listing.database:<10}  {'all':<15} p95 {listing.overall_p95_ms():>6.2f} ms")
    return "\n".join(lines)


def as_json(starts: Sequence[RollbackFigures], lists: Sequence[ListFigures]) -> dict[str, Any]:
    return {
        "rollback_first_deploy": {figures.database: figures.summary() for figures in starts},
        "runs_list": {
            listing.database: {
                "runs": listing.runs,
                "p95_ms": listing.overall_p95_ms(),
                "queries": listing.summary(),
            }
            for listing in lists
        },
    }
