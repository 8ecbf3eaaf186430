"""The release benchmark on the local driver: a git-built Python web service that answers its version.

The service is the app of ``tests/integration/local_project.py`` (standard library only; it reads
``VERSION`` at start and answers it to every GET), with that test's spec: ``python3 app.py`` on a
port, an http health check on ``/`` with the default interval. Each version is committed and built
through the driver before the timed part, so only the deploy is measured.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.benchmarks.release_bench import (
    DriverResult,
    FailedDeploy,
    NodeTimes,
    ReleaseEngine,
    Sample,
    answered_at,
    asked_during,
    build_request,
    epoch,
    find_value,
    measure_deploys,
    measure_failed_deploys,
    release_engine,
    running,
    settle,
)
from tests.cleanup import stop_everything_under
from tests.integration.local_project import AppRepository, free_port

from releaseflow.domain.statuses import RunStatus
from releaseflow.platform.driver import DriverRegistry, Resource
from releaseflow.platform.local.driver import LocalDriver
from releaseflow.platform.local.processes import child_environment
from releaseflow.platform.local.state_files import read_json

STAGE = "local"
BUILDER = "builder"
SERVICE = "web"
RUN_COMMAND = "python3 app.py"


def resources(repository: Path, port: int) -> dict[str, Resource]:
    builder = Resource(
        BUILDER,
        "build_service",
        "local",
        {"repository": str(repository), "buildCommand": "python3 -m py_compile app.py"},
    )
    service = Resource(
        SERVICE,
        "service",
        "local",
        {
            "runCommand": RUN_COMMAND,
            "port": port,
            # As the end-to-end test: no intervalSeconds, so the driver's default (1 s) is measured.
            "healthCheck": {"type": "http", "path": "/", "timeoutSeconds": 15},
        },
    )
    return {BUILDER: builder, SERVICE: service}


class LocalScenario:
    def __init__(self, root: Path, harness: ReleaseEngine, driver: LocalDriver) -> None:
        self.root, self.harness, self.driver = root, harness, driver
        self.repository = AppRepository(root / "app")
        self.port = free_port()
        self.resources = resources(self.repository.path, self.port)

    async def build(self, version: str) -> Path:
        """Commit and build ``version``; the folder of its artifact."""
        sha = await asyncio.to_thread(self.repository.commit, version)
        request = build_request(self.resources[BUILDER], sha, f"build-{version}", self.resources)
        answer = await settle(self.driver, request)
        origin = {"id": BUILDER, "branch": "main", "build": str(answer.data["id"])}
        _, folder = await self.driver.resolve_build(origin, self.resources)
        return folder

    async def measure(self, version: str) -> Sample:
        folder = await self.build(version)
        times: list[NodeTimes] = []

        async def release() -> None:
            times.append(await self.harness.release(STAGE))

        async def watched() -> float:
            _, seen = await answered_at(release, lambda: self.port, "/", version)
            return seen

        # The public port is the ingress's: the same one before, during and after the deploy.
        seen, client = await asked_during(self.port, "/", watched)
        node = times[0]
        deployment = self.driver.services.deployment(str(find_value(node.data, "deploymentId")))
        state = read_json(self.root / "local" / "services" / SERVICE / "state.json") or {}
        launched = epoch(str(state["process"]["startedAt"]))  # just before the driver's launcher ran
        begun = deployment.started_at.timestamp()
        assert deployment.ended_at is not None
        return Sample(
            version=version,
            release=seen - node.started,
            platform=await self.bare_start(folder, version),
            health_wait=deployment.ended_at.timestamp() - launched,
            node_done=node.ended - node.started,
            phases={
                "node start to driver deploy": begun - node.started,
                "new process launched": launched - begun,
                "launcher + app start to answer": seen - launched,
            },
            failed_requests=len(client.failures),
            requests=len(client.failures) + len(client.answers),
        )

    async def build_failing(self) -> None:
        await self.build("broken")  # the app exits at start when its VERSION is "broken"

    async def measure_failed(self) -> FailedDeploy:
        async def release() -> NodeTimes:
            return await self.harness.release(STAGE, expected=RunStatus.FAILED)

        node, client = await asked_during(self.port, "/", release)
        return FailedDeploy(
            len(client.failures),
            len(client.failures) + len(client.answers),
            node.attempts,
            node.ended - node.started,
        )

    async def bare_start(self, folder: Path, version: str) -> float:
        """The same command in the same artifact folder on another port, without releaseflow."""
        port = free_port()
        env = child_environment({"PORT": str(port)})
        process: subprocess.Popen[bytes] | None = None

        def start() -> None:
            nonlocal process
            process = subprocess.Popen(
                ["sh", "-c", RUN_COMMAND],
                cwd=folder,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                start_new_session=True,
            )

        try:
            began, seen = await answered_at(start, lambda: port, "/", version)
            return seen - began
        finally:
            if process is not None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


async def bench_local(repeat: int, progress: Callable[[str], None]) -> DriverResult:
    """One warm-up deploy (the first, which replaces nothing), then ``repeat`` measured ones."""
    root = Path(tempfile.mkdtemp(prefix="rf-bench-local-"))
    driver = LocalDriver(root / "local")
    try:
        async with release_engine(root, DriverRegistry({"local": driver})) as harness:
            scenario = LocalScenario(root, harness, driver)
            await harness.seed(STAGE, list(scenario.resources.values()), SERVICE, BUILDER)
            async with running(harness):
                samples = await measure_deploys("local", scenario, repeat, progress)
                failed = await measure_failed_deploys("local", scenario, repeat, progress)
            # The worker stopped the driver; the service's process is detached and still runs.
            await driver.services.stop_service(SERVICE)
            await driver.services.ingress.shutdown()
        notes = (
            f"`{RUN_COMMAND}` (Python http.server) built from git; health check http GET / every"
            " 1 s (default intervalSeconds); reached through the ingress (Caddy) on its public port",
        )
        return DriverResult("local", tuple(samples), notes, tuple(failed))
    finally:
        await asyncio.to_thread(stop_everything_under, root)
        shutil.rmtree(root, ignore_errors=True)
