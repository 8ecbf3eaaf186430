"""Runs wide and long release flows through the real engine and measures what the engine costs.

Each scenario is one run of a root workflow whose leaves are ``JobRun`` nodes on a job served by
the no-op driver, driven by ``Engine.start_run`` and one in-process ``Worker`` with the shipped
executors and default settings. As the driver answers at once, everything measured is engine:
planning, claiming, transitions, and the transactions around them.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from tests.benchmarks.noop_driver import NoopDriver

from releaseflow.domain.statuses import TERMINAL_RUN_STATUSES, RunStatus
from releaseflow.engine.clock import SystemClock
from releaseflow.engine.commands import Engine, RunRequest
from releaseflow.engine.executors import default_executors
from releaseflow.engine.worker import Worker
from releaseflow.platform.driver import DriverRegistry
from releaseflow.store import catalog
from releaseflow.store import runs as run_store
from releaseflow.store.database import Database, Transaction, open_database
from releaseflow.store.migrate import migrate
from releaseflow.store.records import load_json

Shape = Literal["sequential", "parallel"]
SHAPES: tuple[Shape, ...] = ("sequential", "parallel")

PROJECT = "bench"
PIPELINE = "engine"
# A run that has not ended by then is stuck, not slow: the benchmark stops rather than hang.
RUN_TIMEOUT_SECONDS = 120.0
# How often the harness looks whether the run ended. The wall time does not depend on it (it is
# read from the run's own timestamps); a shorter period would only add transactions that compete
# with the worker for SQLite's single connection.
POLL_SECONDS = 0.02


def job_id(shape: Shape) -> str:
    return f"noop-job-{shape}"


def flow_document(shape: Shape, nodes: int) -> dict[str, Any]:
    """A root workflow of ``shape`` with ``nodes`` JobRun leaves on the stage's no-op job."""
    steps = [
        {"kind": "JobRun", "ref": f"job{index}", "spec": {"jobId": job_id(shape)}} for index in range(nodes)
    ]
    return {"apiVersion": "v1.2", "spec": {"kind": "Workflow", "spec": {"type": shape, "steps": steps}}}


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile: an observed value, not an interpolation between two."""
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * fraction // 1))  # ceil without importing math for one call
    return ordered[int(rank) - 1]


@dataclass(frozen=True)
class RunFigures:
    """What one measured run cost."""

    nodes: int
    wall_seconds: float
    events: int
    transactions: int
    statements: int
    dispatch_ms: tuple[float, ...] = field(repr=False)

    @property
    def overhead_per_node_ms(self) -> float:
        return self.wall_seconds / self.nodes * 1000.0

    @property
    def transitions_per_second(self) -> float:
        return self.events / self.wall_seconds

    @property
    def dispatch_p50_ms(self) -> float:
        return percentile(self.dispatch_ms, 0.50)

    @property
    def dispatch_p95_ms(self) -> float:
        return percentile(self.dispatch_ms, 0.95)

    @property
    def dispatch_max_ms(self) -> float:
        return max(self.dispatch_ms)

    @property
    def transactions_per_node(self) -> float:
        return self.transactions / self.nodes

    @property
    def statements_per_node(self) -> float:
        return self.statements / self.nodes

    def summary(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in FIGURES}


# The figures reported per run, and as the median over the repeats.
FIGURES = (
    "wall_seconds",
    "overhead_per_node_ms",
    "dispatch_p50_ms",
    "dispatch_p95_ms",
    "dispatch_max_ms",
    "transitions_per_second",
    "events",
    "transactions_per_node",
    "statements_per_node",
)


@dataclass(frozen=True)
class ScenarioResult:
    database: str
    shape: Shape
    nodes: int
    runs: tuple[RunFigures, ...]

    def median(self, figure: str) -> float:
        return statistics.median(run.summary()[figure] for run in self.runs)

    def medians(self) -> dict[str, float]:
        return {figure: self.median(figure) for figure in FIGURES}


class Tally:
    """Counts the transactions and statements the engine issues through one Database.

    The benchmark wraps the instance's ``transaction``/``read`` (not the class, so nothing else is
    affected) because "a state change costs one short transaction" is the budget: the count per node
    says at once whether the engine keeps it. Counting costs one Python call per statement, noise
    next to a statement's round trip.
    """

    def __init__(self, db: Database) -> None:
        self.transactions = 0
        self.statements = 0
        self._db = db
        # A backend without a read-only transaction of its own (PostgreSQL) inherits a ``read`` that
        # calls ``transaction``; wrapping both would count each of its transactions twice.
        self._own_read = type(db).read is not Database.read
        # The harness's own look-ups go through these, so they are not counted as engine work.
        self.raw_transaction: Callable[[], AbstractAsyncContextManager[Transaction]] = db.transaction
        self.raw_read: Callable[[], AbstractAsyncContextManager[Transaction]] = (
            db.read if self._own_read else db.transaction
        )

    def install(self) -> None:
        # Instance attributes shadow the methods of the backend class for this object only.
        self._db.transaction = self._counted(self.raw_transaction)  # type: ignore[method-assign]
        if self._own_read:
            self._db.read = self._counted(self.raw_read)  # type: ignore[method-assign]

    def uninstall(self) -> None:
        for name in ("transaction", "read"):
            self._db.__dict__.pop(name, None)

    @contextmanager
    def window(self) -> Iterator[Tally]:
        """Counts from zero within the block."""
        self.transactions = self.statements = 0
        yield self

    def _counted(
        self, open_transaction: Callable[[], AbstractAsyncContextManager[Transaction]]
    ) -> Callable[[], AbstractAsyncContextManager[Transaction]]:
        @asynccontextmanager
        async def counted() -> Any:
            async with open_transaction() as tx:
                self.transactions += 1
                self._count_statements(tx)
                yield tx

        return counted

    def _count_statements(self, tx: Transaction) -> None:
        execute, fetchall = tx.execute, tx.fetchall

        async def counted_execute(sql: str, params: Any = ()) -> int:
            self.statements += 1
            return await execute(sql, params)

        async def counted_fetchall(sql: str, params: Any = ()) -> list[dict[str, Any]]:
            self.statements += 1
            return await fetchall(sql, params)

        tx.execute = counted_execute  # type: ignore[method-assign]
        tx.fetchall = counted_fetchall  # type: ignore[method-assign]
        if tx.dialect == "sqlite":
            # SQLite sends the deferred inserts with its COMMIT, not through ``execute``: one
            # statement per distinct insert, as PostgreSQL's flush counts them.
            defer, queued = tx.defer_insert, set()

            def counted_defer(sql: str, params: Any) -> None:
                if sql not in queued:
                    queued.add(sql)
                    self.statements += 1
                defer(sql, params)

            tx.defer_insert = counted_defer  # type: ignore[method-assign]


async def seed(db: Database, shapes: Sequence[Shape], nodes: int) -> None:
    """One project; per scenario a stage holding its own no-op job and the scenario's release flow."""
    now = datetime.now(UTC)
    async with db.transaction() as tx:
        await catalog.save_project(tx, PROJECT, "Benchmark", "", now)
        await catalog.save_pipeline(tx, PROJECT, PIPELINE, "Engine benchmark", "", now)
        for position, shape in enumerate(shapes):
            # A resource belongs to at most one stage, so each stage gets a job of its own.
            job = job_id(shape)
            await catalog.save_resource(tx, PROJECT, job, "job", NoopDriver.name, {}, now)
            await catalog.save_stage(tx, PROJECT, PIPELINE, shape, position)
            await catalog.set_stage_resources(tx, PROJECT, PIPELINE, shape, [job])
            await catalog.add_flow_version(
                tx, PROJECT, PIPELINE, shape, flow_document(shape, nodes), "bench", now
            )


async def _wait_until_ended(tally: Tally, run_id: str) -> Any:
    deadline = time.monotonic() + RUN_TIMEOUT_SECONDS
    while True:
        async with tally.raw_read() as tx:
            run = await run_store.get_run(tx, run_id)
        assert run is not None
        if run.status in TERMINAL_RUN_STATUSES:
            return run
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"run {run_id} still {run.status} after {RUN_TIMEOUT_SECONDS:g}s: the engine is stuck"
            )
        await asyncio.sleep(POLL_SECONDS)


async def measure_run(engine: Engine, tally: Tally, shape: Shape, nodes: int) -> RunFigures:
    with tally.window():
        # Wall clock, like SystemClock, so the start compares with the run's concluded_at.
        started = time.time()
        created = await engine.start_run(PROJECT, PIPELINE, shape, RunRequest(triggered_by="benchmark"))
        run = await _wait_until_ended(tally, created.id)
        transactions, statements = tally.transactions, tally.statements
    if run.status is not RunStatus.SUCCESS:
        raise RuntimeError(f"{shape} run {run.id} ended {run.status}: {run.error}")
    assert run.concluded_at is not None
    async with tally.raw_read() as tx:
        events = int(await tx.fetchvalue("SELECT COUNT(*) AS n FROM events WHERE run_id = ?", (run.id,)))
        rows = await tx.fetchall(
            "SELECT became_due_at, attempts FROM node_runs WHERE run_id = ? AND kind <> 'Workflow'", (run.id,)
        )
    dispatch = tuple(_dispatch_ms(row) for row in rows)
    if len(dispatch) != nodes:
        raise RuntimeError(f"{shape} run {run.id} has {len(dispatch)} leaves, expected {nodes}")
    return RunFigures(
        nodes=nodes,
        wall_seconds=run.concluded_at.timestamp() - started,
        events=events,
        transactions=transactions,
        statements=statements,
        dispatch_ms=dispatch,
    )


def _dispatch_ms(row: dict[str, Any]) -> float:
    """From the node becoming runnable to its first attempt starting (the claim that began it)."""
    attempts = load_json(row["attempts"]) or []
    if row["became_due_at"] is None or not attempts:
        raise RuntimeError(f"a leaf never started: {row}")
    return (float(attempts[0]["startTime"]) - float(row["became_due_at"])) * 1000.0


async def bench_database(
    label: str, url: str, shapes: Sequence[Shape], nodes: int, repeat: int, progress: Callable[[str], None]
) -> list[ScenarioResult]:
    """Migrate ``url``, then per shape: one warm-up run, ``repeat`` measured runs."""
    db = await open_database(url)
    try:
        await migrate(db)
        await seed(db, shapes, nodes)
        clock = SystemClock()
        driver = NoopDriver()
        engine = Engine(db, clock)
        worker = Worker(db, default_executors(DriverRegistry({NoopDriver.name: driver})), clock)
        tally = Tally(db)
        tally.install()
        stop = asyncio.Event()
        worker_task = asyncio.create_task(worker.run(stop))
        try:
            results = []
            for shape in shapes:
                # The warm-up fills caches (parsed templates, prepared statements, SQLite pages)
                # that every later run finds warm in a long-lived server too.
                await measure_run(engine, tally, shape, nodes)
                runs = []
                for index in range(repeat):
                    figures = await measure_run(engine, tally, shape, nodes)
                    progress(
                        f"  {label} {shape} run {index + 1}/{repeat}: {figures.wall_seconds:.2f}s,"
                        f" dispatch p95 {figures.dispatch_p95_ms:.1f} ms"
                    )
                    runs.append(figures)
                results.append(ScenarioResult(label, shape, nodes, tuple(runs)))
            expected = (repeat + 1) * nodes * len(shapes)
            if driver.performed != expected:
                raise RuntimeError(f"the driver was called {driver.performed} times, expected {expected}")
            return results
        finally:
            stop.set()
            await asyncio.wait_for(worker_task, timeout=30)
            tally.uninstall()
    finally:
        await db.close()
