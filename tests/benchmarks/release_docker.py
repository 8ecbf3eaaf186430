"""The release benchmark on the docker driver: busybox httpd in a FROM scratch image, as in its tests.

The Docker Engine API is podman's (``podman system service``) with a local registry, both started in a
temporary directory by ``tests/integration/platform/docker_env.py``. Each version is a commit whose
``index.html`` holds it; it is built and pushed through the driver before the timed part.

The service publishes a fixed host port, which the driver's ingress (Caddy) holds: each container
publishes an ephemeral loopback port, the new one starts beside the old one, and the ingress moves
to it once it is healthy. The watcher and the client counting failed requests both ask the host port,
as a user would. (Busybox httpd, as the container's PID 1, ignores SIGTERM: removing the old container
costs ``stopGraceSeconds`` after each deploy, after the new one serves, so inside node_done only.)
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import tempfile
from collections.abc import Callable
from pathlib import Path

from tests.benchmarks.release_bench import (
    PROJECT,
    DriverResult,
    FailedDeploy,
    NodeTimes,
    ReleaseEngine,
    Sample,
    Skipped,
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
from tests.integration.platform.docker_env import INSTALL_HINT, DockerEnvironment, free_port, missing_tools

from releaseflow.domain.statuses import RunStatus
from releaseflow.platform.docker import DockerDriver
from releaseflow.platform.docker.services import container_config
from releaseflow.platform.driver import DriverRegistry, Resource
from releaseflow.platform.local.ingress import Ingress

STAGE = "docker"
BUILDER = "dbuilder"
SERVICE = "dweb"
PORT = 8080
PATH = "/index.html"
DOCKERFILE = (
    "FROM scratch\nCOPY busybox /bin/busybox\nCOPY index.html /www/index.html\n"
    'ENTRYPOINT ["/bin/busybox"]\nCMD ["httpd", "-f", "-p", "8080", "-h", "/www"]\n'
)
# Without -f busybox httpd puts itself in the background: the container's main process exits at once.
EXITS_AT_START = DOCKERFILE.replace('"httpd", "-f",', '"httpd",')
GIT = ["git", "-c", "user.name=releaseflow", "-c", "user.email=releaseflow@example.invalid"]


def resources(repository: Path, host_port: int) -> dict[str, Resource]:
    builder = Resource(BUILDER, "build_service", "docker", {"repository": str(repository)})
    spec = {
        "port": PORT,
        "hostPort": host_port,  # held by the driver's ingress
        # The default interval (1 s), like the local scenario; the docker tests use 0.2 s.
        "healthCheck": {"type": "http", "path": PATH, "timeoutSeconds": 30},
        # httpd ignores SIGTERM as PID 1: removing the old container costs this grace after each
        # deploy (after the new one serves, so outside the release figure, inside node_done).
        "stopGraceSeconds": 1,
    }
    return {BUILDER: builder, SERVICE: Resource(SERVICE, "service", "docker", spec)}


class WebRepository:
    """A git repository whose commits are versions of the busybox site."""

    def __init__(self, path: Path, busybox: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        subprocess.run([*GIT, "init", "-q", "-b", "main", str(path)], check=True)
        shutil.copy(busybox, path / "busybox")
        (path / "Dockerfile").write_text(DOCKERFILE)

    def commit(self, version: str, dockerfile: str = DOCKERFILE) -> str:
        (self.path / "index.html").write_text(version)
        (self.path / "Dockerfile").write_text(dockerfile)
        subprocess.run([*GIT, "-C", str(self.path), "add", "-A"], check=True)
        subprocess.run([*GIT, "-C", str(self.path), "commit", "-q", "-m", version], check=True)
        return subprocess.run(
            ["git", "-C", str(self.path), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
        ).stdout.strip()


class DockerScenario:
    def __init__(
        self, root: Path, env: DockerEnvironment, harness: ReleaseEngine, driver: DockerDriver
    ) -> None:
        self.env, self.harness, self.driver = env, harness, driver
        self.repository = WebRepository(root / "site", env.busybox)
        self.host_port = free_port()
        self.resources = resources(self.repository.path, self.host_port)
        self._bare = 0

    async def build(self, version: str, dockerfile: str = DOCKERFILE) -> str:
        """Commit, build and push ``version``; its image."""
        sha = await asyncio.to_thread(self.repository.commit, version, dockerfile)
        request = build_request(self.resources[BUILDER], sha, f"build-{version}", self.resources)
        return str((await settle(self.driver, request)).data["image"])

    async def measure(self, version: str) -> Sample:
        image = await self.build(version)
        times: list[NodeTimes] = []

        async def release() -> None:
            times.append(await self.harness.release(STAGE))

        async def watched() -> float:
            _, seen = await answered_at(release, lambda: self.host_port, PATH, version)
            return seen

        seen, client = await asked_during(self.host_port, PATH, watched)
        node = times[0]
        record = json.loads(
            (self.driver.root / "deployments" / f"{find_value(node.data, 'deploymentId')}.json").read_text()
        )
        container = await self.driver.client.inspect_container(str(record["containerId"]))
        current = self.driver.services.current(PROJECT, SERVICE)
        assert container is not None and current is not None
        started = epoch(str(container["State"]["StartedAt"]))  # the engine's clock: this host's
        begun = epoch(str(record["createdAt"]))
        return Sample(
            version=version,
            release=seen - node.started,
            platform=await self.bare_start(image, version),
            # ``updatedAt`` is written when the health check passed, before the old container goes.
            health_wait=epoch(str(current["updatedAt"])) - started,
            node_done=node.ended - node.started,
            phases={
                "node start to driver deploy": begun - node.started,
                "driver to container started": started - begun,
                "container start to answer": seen - started,
            },
            failed_requests=len(client.failures),
            requests=len(client.failures) + len(client.answers),
        )

    async def build_failing(self) -> None:
        await self.build("broken", EXITS_AT_START)

    async def measure_failed(self) -> FailedDeploy:
        async def release() -> NodeTimes:
            return await self.harness.release(STAGE, expected=RunStatus.FAILED)

        node, client = await asked_during(self.host_port, PATH, release)
        asked = len(client.failures) + len(client.answers)
        return FailedDeploy(len(client.failures), asked, node.attempts, node.ended - node.started)

    async def bare_start(self, image: str, version: str) -> float:
        """Create and start the same image (same create body) on another port through the API client."""
        self._bare += 1
        port = free_port()
        config = container_config(image, {"port": PORT, "hostPort": port}, {}, "bare", restart=True)
        name = f"rf-bench-bare-{self._bare}"
        client = self.driver.client

        async def start() -> None:
            await client.start_container(await client.create_container(name, config))

        try:
            began, seen = await answered_at(start, lambda: port, PATH, version)
            return seen - began
        finally:
            await client.remove_container(name)


def unavailable() -> str | None:
    missing = missing_tools()
    if missing:
        return f"{', '.join(missing)} not installed ({INSTALL_HINT})"
    return None


async def bench_docker(repeat: int, progress: Callable[[str], None]) -> DriverResult | Skipped:
    """One warm-up deploy (the first, which replaces nothing), then ``repeat`` measured ones."""
    reason = unavailable()
    if reason is not None:
        return Skipped("docker", reason)
    progress("  starting podman's Docker API service and a registry")
    try:
        env = await asyncio.to_thread(DockerEnvironment.start)
    except (OSError, RuntimeError) as error:
        return Skipped("docker", f"podman or the registry did not start: {str(error)[:300]}")
    root = Path(tempfile.mkdtemp(prefix="rf-bench-docker-"))
    try:
        driver = DockerDriver(root / "driver", env.base_url, registry=env.registry)
        async with release_engine(root, DriverRegistry({"docker": driver})) as harness:
            scenario = DockerScenario(root, env, harness, driver)
            await harness.seed(STAGE, list(scenario.resources.values()), SERVICE, BUILDER)
            async with running(harness):
                samples = await measure_deploys("docker", scenario, repeat, progress)
                failed = await measure_failed_deploys("docker", scenario, repeat, progress)
        notes = (
            "busybox httpd (FROM scratch) built and pushed through the driver; side-by-side deploy"
            " behind the ingress holding its hostPort; health check http GET /index.html every 1 s"
            " (default intervalSeconds)",
        )
        return DriverResult("docker", tuple(samples), notes, tuple(failed))
    finally:
        await Ingress(root / "driver" / "ingress").shutdown()
        # Removes every container (the service's included), stops podman and the registry.
        await asyncio.to_thread(env.close)
        shutil.rmtree(root, ignore_errors=True)
