"""The release benchmark's common parts: the engine it releases through, the HTTP watcher, the figures.

Per driver, a scenario deploys version N+1 of a tiny web service through the real engine
(``Engine.start_run`` of a flow whose only node is a ``Release`` with ``condition: running``, one
in-process ``Worker`` with default settings, SQLite in a temporary file) and compares how long that
takes until the new version answers with what the platform itself needs to start the same thing.
The scenarios (``release_local``, ``release_docker``) supply the driver, the builds and that bare start.
"""

from __future__ import annotations

import asyncio
import http.client
import statistics
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol, TypeVar

from tests.benchmarks.engine_bench import percentile
from tests.integration.platform.polling_client import Client

from releaseflow.domain.statuses import TERMINAL_RUN_STATUSES, RunStatus
from releaseflow.engine.clock import SystemClock
from releaseflow.engine.commands import Engine, RunRequest
from releaseflow.engine.executors import default_executors
from releaseflow.engine.worker import Worker
from releaseflow.platform.driver import (
    AnswerState,
    DriverAnswer,
    DriverRegistry,
    DriverRequest,
    Operation,
    Resource,
)
from releaseflow.store import catalog
from releaseflow.store import runs as run_store
from releaseflow.store.database import Database, open_database
from releaseflow.store.migrate import migrate

PROJECT = "bench"
PIPELINE = "release"
BRANCH = "main"
# How often the watcher asks the service which version it serves (the brief's "~5 ms"). Both the
# release and the bare start are timed by the same watcher, so its granularity cancels out of the
# overhead; each figure is late by at most this plus one request.
WATCH_INTERVAL_SECONDS = 0.005
# A deploy that has not answered by then is broken, not slow: the benchmark stops rather than hang.
DEPLOY_TIMEOUT_SECONDS = 60.0
# How often the harness looks whether the run ended (not part of any figure: those come from
# the node's own timestamps and the watcher).
RUN_POLL_SECONDS = 0.02

# Figures per measured deploy, in seconds; the table and the JSON show them in this order.
FIGURES = ("release", "platform", "overhead", "health_wait", "node_done")
# A client asks the service's public port this often during every deploy, good or failed, and counts
# the requests that fail (refused, reset, 5xx): the target is none.
CLIENT_INTERVAL_SECONDS = 0.02
# It keeps asking this long after the run ended, so the old version's retirement is watched too.
CLIENT_AFTER_SECONDS = 0.3

T = TypeVar("T")


@dataclass(frozen=True)
class Sample:
    """One measured deploy of version N+1.

    ``release``: from the Release node's first attempt starting to the watcher first seeing N+1.
    ``platform``: starting the same artifact bare, beside it, until the watcher first sees it answer.
    ``health_wait``: from the driver starting the new process/container to it declaring it healthy.
    ``node_done``: from the node starting to the engine recording it succeeded.
    """

    version: str
    release: float
    platform: float
    health_wait: float
    node_done: float
    # Where the release time went, in order (seconds; they add up to ``release``).
    phases: Mapping[str, float] = field(default_factory=dict)
    # Requests of the client on the public port during this deploy: how many failed, of how many.
    failed_requests: int = 0
    requests: int = 0

    @property
    def overhead(self) -> float:
        return self.release - self.platform

    def figures(self) -> dict[str, float]:
        return {name: getattr(self, name) for name in FIGURES}


@dataclass(frozen=True)
class FailedDeploy:
    """One release of a version that exits at start: the client's view and the engine's."""

    failed_requests: int
    requests: int
    attempts: int  # attempts the Release node made (1: not retried in vain)
    seconds: float  # from the node's first attempt starting to it failing


@dataclass(frozen=True)
class DriverResult:
    driver: str
    samples: tuple[Sample, ...]
    notes: tuple[str, ...] = ()  # what was deployed and how, for the JSON and the table's footnotes
    failed_deploys: tuple[FailedDeploy, ...] = ()

    def median(self, figure: str) -> float:
        return statistics.median(sample.figures()[figure] for sample in self.samples)

    def p95(self, figure: str) -> float:
        return percentile([sample.figures()[figure] for sample in self.samples], 0.95)

    def phase_medians(self) -> dict[str, float]:
        names = list(self.samples[0].phases) if self.samples else []
        return {name: statistics.median(sample.phases[name] for sample in self.samples) for name in names}


@dataclass(frozen=True)
class Skipped:
    driver: str
    reason: str


def release_flow(builder: str, service: str) -> dict[str, Any]:
    """The flow under test: one Release of the build service's latest build, waiting until running."""
    release = {
        "kind": "Release",
        "ref": "release",
        "spec": {
            "type": "build",
            "origin": {"id": builder, "branch": BRANCH, "build": "latest"},
            "target": {"id": service, "type": "service"},
        },
        "condition": "running",
        "timeoutDuration": int(DEPLOY_TIMEOUT_SECONDS),
    }
    return {
        "apiVersion": "v1.2",
        "spec": {"kind": "Workflow", "spec": {"type": "sequential", "steps": [release]}},
    }


class FirstAnswer(threading.Thread):
    """Asks the service for its version every ~5 ms until it answers ``expected``; keeps that moment.

    A thread with blocking sockets, not a task: the event loop is busy with the worker and the driver,
    and a watcher sharing it would see the answer only when the loop gets round to it.
    ``locate`` says where the service answers (None while it is not known yet, e.g. before a new
    container has a published port); it is asked until it names a port.
    """

    def __init__(self, locate: Callable[[], int | None], path: str, expected: str) -> None:
        super().__init__(name=f"watch-{expected}", daemon=True)
        self._locate, self._path, self._expected = locate, path, expected
        # Not ``_stop``: threading.Thread has a method of that name that join() calls.
        self._cancelled = threading.Event()
        self.seen_at: float | None = None  # wall clock, comparable with the engine's timestamps
        self.last = "nothing asked yet"

    def run(self) -> None:
        deadline = time.monotonic() + DEPLOY_TIMEOUT_SECONDS
        port: int | None = None
        while not self._cancelled.is_set() and time.monotonic() < deadline:
            port = port or self._locate()
            if port is not None and self._ask(port) == self._expected:
                self.seen_at = time.time()
                return
            self._cancelled.wait(WATCH_INTERVAL_SECONDS)

    def _ask(self, port: int) -> str:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=1.0)
        try:
            connection.request("GET", self._path)
            self.last = connection.getresponse().read().decode(errors="replace").strip()
        except (OSError, http.client.HTTPException) as error:
            self.last = f"{type(error).__name__}: {error}"
        finally:
            connection.close()
        return self.last

    def cancel(self) -> None:
        self._cancelled.set()

    def result(self) -> float:
        """When ``expected`` was first seen; raises if it never was."""
        self.join(DEPLOY_TIMEOUT_SECONDS + 5)
        self._cancelled.set()
        if self.seen_at is None:
            raise RuntimeError(f"{self._expected} never answered (last answer: {self.last})")
        return self.seen_at


async def answered_at(
    action: Callable[[], Any], locate: Callable[[], int | None], path: str, expected: str
) -> tuple[float, float]:
    """Run ``action`` (sync or async) while watching; (just before it began, ``expected`` first seen)."""
    watcher = FirstAnswer(locate, path, expected)
    watcher.start()
    began = time.time()
    try:
        outcome = action()
        if asyncio.iscoroutine(outcome):
            await outcome
    except BaseException:
        watcher.cancel()
        raise
    return began, await asyncio.to_thread(watcher.result)


async def settle(driver: Any, request: DriverRequest) -> DriverAnswer:
    """Perform, then follow every 0.1 s until done (for the builds made before the timed part)."""
    answer: DriverAnswer = await driver.perform(request)
    deadline = time.monotonic() + 120
    while answer.state is AnswerState.IN_PROGRESS and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
        answer = await driver.follow(request, answer.handle)
    if answer.state is not AnswerState.DONE:
        raise RuntimeError(f"{request.operation.value} of {request.resource.id}: {answer.message}")
    return answer


def build_request(builder: Resource, sha: str, key: str, resources: Mapping[str, Resource]) -> DriverRequest:
    params = {"id": builder.id, "type": "service", "sha": sha, "branch": BRANCH}
    return DriverRequest(
        Operation.START_BUILD, builder, params, key, resources=resources, project_id=PROJECT, stage="build"
    )


@dataclass(frozen=True)
class NodeTimes:
    run_id: str
    started: float  # the first attempt's startTime (epoch seconds)
    ended: float
    data: Mapping[str, Any] = field(repr=False)
    attempts: int = 1


class ReleaseEngine:
    """SQLite, the engine and one worker with the shipped executors, over the drivers given."""

    def __init__(self, db: Database, registry: DriverRegistry) -> None:
        self.db = db
        self.engine = Engine(db, SystemClock())
        self.worker = Worker(db, default_executors(registry), SystemClock(), drivers=registry)

    async def seed(self, stage: str, resources: list[Resource], service: str, builder: str) -> None:
        """A stage holding ``service`` and a flow releasing ``builder``'s latest build to it."""
        now = datetime.now(UTC)
        async with self.db.transaction() as tx:
            await catalog.save_project(tx, PROJECT, "Release benchmark", "", now)
            await catalog.save_pipeline(tx, PROJECT, PIPELINE, "Release benchmark", "", now)
            for resource in resources:
                await catalog.save_resource(
                    tx, PROJECT, resource.id, resource.kind, resource.driver, dict(resource.spec), now
                )
            await catalog.save_stage(tx, PROJECT, PIPELINE, stage, 0)
            await catalog.set_stage_resources(tx, PROJECT, PIPELINE, stage, [service])
            await catalog.add_flow_version(
                tx, PROJECT, PIPELINE, stage, release_flow(builder, service), "bench", now
            )

    async def release(self, stage: str, *, expected: RunStatus = RunStatus.SUCCESS) -> NodeTimes:
        """Run the stage's flow to its end (it must end ``expected``); the Release node's timestamps."""
        created = await self.engine.start_run(PROJECT, PIPELINE, stage, RunRequest(triggered_by="benchmark"))
        deadline = time.monotonic() + DEPLOY_TIMEOUT_SECONDS + 30
        while True:
            async with self.db.read() as tx:
                run = await run_store.get_run(tx, created.id)
            assert run is not None
            if run.status in TERMINAL_RUN_STATUSES:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"run {run.id} still {run.status}: the release is stuck")
            await asyncio.sleep(RUN_POLL_SECONDS)
        async with self.db.read() as tx:
            nodes = await run_store.load_nodes(tx, run.id)
        release = next(node for node in nodes if node.kind == "Release")
        if run.status is not expected:
            raise RuntimeError(f"release run {run.id} ended {run.status}: {release.error or run.error}")
        first = release.attempts[0] if release.attempts else {}
        started = float(first.get("startTime") or release.started_at.timestamp())  # type: ignore[union-attr]
        assert release.ended_at is not None
        ended = release.ended_at.timestamp()
        return NodeTimes(run.id, started, ended, release.data or {}, attempts=release.attempt)


@asynccontextmanager
async def release_engine(directory: Path, registry: DriverRegistry) -> AsyncIterator[ReleaseEngine]:
    """The engine on a fresh SQLite file with the worker running (and so the drivers started)."""
    db = await open_database(f"sqlite://{directory / 'bench.db'}")
    try:
        await migrate(db)
        harness = ReleaseEngine(db, registry)
        yield harness
    finally:
        await db.close()


@asynccontextmanager
async def running(harness: ReleaseEngine) -> AsyncIterator[None]:
    """The worker runs within the block; it starts the drivers on entry and stops them on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(harness.worker.run(stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=60)


def find_value(data: Any, key: str) -> Any:
    """The first value of ``key`` anywhere in a node's nested response data."""
    if isinstance(data, Mapping):
        if key in data:
            return data[key]
        data = list(data.values())
    if isinstance(data, list):
        for item in data:
            found = find_value(item, key)
            if found is not None:
                return found
    return None


def epoch(iso: str) -> float:
    """Seconds since the epoch of an ISO timestamp; nanoseconds (Go's RFC 3339) are cut to micro."""
    head, dot, rest = iso.partition(".")
    if dot:
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits) :]
        iso = f"{head}.{digits[:6]}{'+00:00' if zone == 'Z' else zone}"
    elif iso.endswith("Z"):
        iso = iso[:-1] + "+00:00"
    return datetime.fromisoformat(iso).timestamp()


async def asked_during(port: int, path: str, action: Callable[[], Awaitable[T]]) -> tuple[T, Client]:
    """Run ``action`` while a client asks ``port`` every 20 ms; its result and the client's counts."""
    client = Client(port, path, interval=CLIENT_INTERVAL_SECONDS)
    client.start()
    try:
        result = await action()
        await asyncio.sleep(CLIENT_AFTER_SECONDS)
    finally:
        await asyncio.to_thread(client.finish)
    return result, client


class Scenario(Protocol):
    async def measure(self, version: str) -> Sample: ...

    async def build_failing(self) -> None:
        """Build a version that exits at start, so that the next releases deploy it."""

    async def measure_failed(self) -> FailedDeploy: ...


async def measure_failed_deploys(
    driver: str, scenario: Scenario, repeat: int, progress: Callable[[str], None]
) -> list[FailedDeploy]:
    """``repeat`` releases of a version that exits at start, after the good ones."""
    await scenario.build_failing()
    failed = []
    for index in range(repeat):
        result = await scenario.measure_failed()
        progress(
            f"  {driver} failed deploy {index + 1}/{repeat}: {result.failed_requests} of"
            f" {result.requests} requests failed, {result.attempts} attempt(s), {result.seconds:.1f}s"
        )
        failed.append(result)
    return failed


async def measure_deploys(
    driver: str, scenario: Scenario, repeat: int, progress: Callable[[str], None]
) -> list[Sample]:
    """One warm-up deploy (the first, which replaces nothing), then ``repeat`` measured ones."""
    samples = []
    for index in range(repeat + 1):
        began = time.monotonic()
        sample = await scenario.measure(f"v{index + 1}")
        label = "warm-up" if index == 0 else f"{index}/{repeat}"
        progress(
            f"  {driver} {label}: release {sample.release * 1000:.0f} ms, platform"
            f" {sample.platform * 1000:.0f} ms, {sample.failed_requests} of {sample.requests} requests"
            f" failed ({time.monotonic() - began:.1f}s)"
        )
        if index:
            samples.append(sample)
    return samples
