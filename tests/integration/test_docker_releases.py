"""End to end on the docker driver: the real engine, podman's Docker Engine API, a real registry.

The project's builds, services and jobs all use ``driver: docker`` (see ``docker_project.py``); the
images are busybox ``httpd`` in ``FROM scratch``, built from a git repository made here and pushed to
a local ``docker-registry``. Northflank's documented parallel release flow runs unmodified. Like the
docker driver's own tests, this one skips with the reason when podman, runc, docker-registry,
busybox-static or git is missing, and fails instead when ``CI`` is set.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.docker_project import (
    EXITS_AT_ONCE,
    JOB_RUN_FLOW,
    PROJECT,
    PROMOTE_FLOW,
    STAGING_FLOW,
    ImageRepository,
    configuration,
    current_container,
    eventually_serves,
    host_port,
    page,
)
from tests.integration.local_project import northflank_example
from tests.integration.platform.docker_env import DockerEnvironment, require_tools
from tests.integration.release_harness import ReleaseHarness
from tests.integration.support import wait_for_run

from releaseflow.domain.statuses import NodeStatus, RunStatus
from releaseflow.engine import queries
from releaseflow.engine.history import rollback_outcome
from releaseflow.engine.queries import NodeView, ReleaseView
from releaseflow.engine.rollback import Rollbacks
from releaseflow.platform.docker import DockerClient, DockerDriver
from releaseflow.platform.driver import DriverRegistry
from releaseflow.store.database import Database
from releaseflow.store.records import RunRecord
from releaseflow.wire import runs as wire

pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def docker_env() -> Iterator[DockerEnvironment]:
    require_tools()
    with DockerEnvironment.start() as environment:
        yield environment


class Platform(ReleaseHarness[DockerDriver]):
    """The engine, a worker with a docker driver, and the project applied."""

    project = PROJECT

    def __init__(self, db: Database, docker: DockerEnvironment, root: Path) -> None:
        self.docker, self.root = docker, root
        super().__init__(db, self.new_driver())
        self.repository = ImageRepository(root / "app", docker.busybox)
        # The test's own view of the engine, independent of the driver's lifecycle.
        self.inspector = DockerClient(docker.base_url)

    def new_driver(self) -> DockerDriver:
        return DockerDriver(self.root / "docker", self.docker.base_url, registry=self.docker.registry)

    def configuration(self) -> dict[str, Any]:
        return configuration(self.repository.path)

    async def apply(self, production_flow: dict[str, Any]) -> None:  # type: ignore[override]
        await super().apply(STAGING_FLOW, production_flow)

    async def nodes(self, run: RunRecord) -> dict[str, NodeView]:
        """The run's nodes with a ref, by ref."""
        detail = await queries.run_detail(self.db, run.id, with_events=False)
        assert detail.root is not None
        return {node.ref: node for node in detail.root.walk() if node.ref}

    async def state(self, stage: str | None = None) -> dict[tuple[str, str], ReleaseView]:
        views = await queries.release_state(self.db, PROJECT, "main", stage)
        return {(view.stage, view.resource_id): view for view in views}

    async def serves(self, service: str, expected: str) -> str:
        return await eventually_serves(self.inspector, self.driver, service, expected)

    async def tear_down(self) -> None:
        try:
            await self.stop_worker()
        finally:
            await self.inspector.close()
            # Containers outlive drivers and workers on purpose; the test's go with it.
            await asyncio.to_thread(self.docker.remove_all_containers)


@pytest.fixture
async def platform(db: Database, docker_env: DockerEnvironment, tmp_path: Path) -> AsyncIterator[Platform]:
    platform = Platform(db, docker_env, tmp_path)
    try:
        yield platform
    finally:
        await platform.tear_down()


def response_data(node: NodeView) -> dict[str, Any]:
    response = wire.response(node)
    assert response is not None and isinstance(response.get("data"), dict), response
    data: dict[str, Any] = response["data"]
    return data


async def test_docker_releases__build_deploy_promote_run_jobs_survive_a_bad_image_and_a_restart(
    platform: Platform,
) -> None:
    registry = platform.docker.registry
    commit_v1 = platform.repository.commit("v1")
    await platform.apply(northflank_example("deploy-build-parallel"))
    platform.start_worker()

    # Staging: build, then the build to the job and to the service, which must be running.
    staging = await platform.run("Staging", "staging v1")
    assert staging.status is RunStatus.SUCCESS, await platform.failure(staging)
    nodes = await platform.nodes(staging)
    build_v1 = response_data(nodes["build"])
    assert (build_v1["sha"], build_v1["status"]) == (commit_v1, "succeeded")
    assert build_v1["image"] == f"{registry}/{PROJECT}-builder:{build_v1['id']}"
    assert response_data(nodes["job"])["artifact"]["buildId"] == build_v1["id"]
    deployed = response_data(nodes["service"])
    assert (deployed["status"], deployed["image"]) == ("succeeded", build_v1["image"])
    assert deployed["containerId"] == current_container(platform.driver, "deployment-staging")
    assert await page(platform.inspector, deployed["containerId"]) == "v1"
    # The answer says where the service is reachable, for ${refs.service.ports.0.url} in later nodes.
    (published,) = deployed["ports"]
    assert published["port"] == await host_port(platform.inspector, deployed["containerId"])
    assert published["url"] == f"http://{published['host']}:{published['port']}"

    # Northflank's example: the latest main build to job-prod and deployment-prod, in parallel. Its
    # Release nodes do not wait for completion: the run ends once the deploys were accepted.
    first = await platform.run("Production", "prod v1")
    assert first.status is RunStatus.SUCCESS, await platform.failure(first)
    assert await platform.serves("deployment-prod", "v1") == "v1"

    # Jobs run the image released to them and report their exit code.
    await platform.apply(JOB_RUN_FLOW)
    jobs = await platform.run("Production", "job runs")
    assert jobs.status is RunStatus.FAILED
    nodes = await platform.nodes(jobs)
    check = response_data(nodes["check"])
    assert (nodes["check"].status, check["exitCode"]) == (NodeStatus.SUCCESS, 0)
    assert (check["image"], check["logs"].strip()) == (build_v1["image"], "job-prod runs v1")
    assert nodes["failing"].status is NodeStatus.FAILED
    assert response_data(nodes["failing"])["exitCode"] == 3
    assert nodes["failing"].error is not None
    assert "exited with code 3" in str(nodes["failing"].error["message"]), nodes["failing"].error

    commit_v2 = platform.repository.commit("v2")
    staging_v2 = await platform.run("Staging", "staging v2")
    assert staging_v2.status is RunStatus.SUCCESS, await platform.failure(staging_v2)
    build_v2 = response_data((await platform.nodes(staging_v2))["build"])
    assert build_v2["sha"] == commit_v2
    assert await platform.serves("deployment-staging", "v2") == "v2"
    assert await platform.serves("deployment-prod", "v1") == "v1"

    # Promotion: exactly what staging runs goes to production.
    await platform.apply(PROMOTE_FLOW)
    promote = await platform.run("Production", "prod v2")
    assert promote.status is RunStatus.SUCCESS, await platform.failure(promote)
    assert await platform.serves("deployment-prod", "v2") == "v2"
    state = await platform.state()
    for resource in ("deployment-prod", "job-prod"):
        view = state[("Production", resource)]
        assert (view.artifact["image"], view.artifact["commit"]) == (build_v2["image"], commit_v2)
        assert (view.artifact["buildId"], view.run_id) == (build_v2["id"], promote.id)
    for resource in ("deployment-staging", "job-staging"):
        view = state[("Staging", resource)]
        assert (view.artifact["image"], view.run_id) == (build_v2["image"], staging_v2.id)

    # A version whose httpd exits at once: the deploy fails, says why, and v2 keeps serving.
    platform.repository.commit("broken", cmd=EXITS_AT_ONCE)
    bad = await platform.run("Staging", "staging broken")
    assert bad.status is RunStatus.FAILED
    nodes = await platform.nodes(bad)
    failed = [node.ref for node in nodes.values() if node.status is NodeStatus.FAILED]
    assert failed == ["service"]
    # Tried once: a container that exits during start-up would do so again (its settings allow two
    # attempts). The new container was removed once it failed.
    assert nodes["service"].attempts == 1 and nodes["service"].max_attempts == 2
    assert await platform.inspector.inspect_container(response_data(nodes["service"])["containerId"]) is None
    error = nodes["service"].error
    assert error is not None
    message = str(error["message"])
    assert "deploying" in message and "to service 'deployment-staging' failed" in message, message
    assert "did not become healthy: the container" in message, message
    assert "stopped" in message or "keeps exiting" in message, message
    assert "keeps serving" in message and "Not retried" in message, message
    assert await page(platform.inspector, current_container(platform.driver, "deployment-staging")) == "v2"
    # The job's Release ran beside the failed one and succeeded: only job-staging moved on.
    broken_build = response_data(nodes["build"])
    after = await platform.state()
    assert after[("Staging", "job-staging")].artifact["buildId"] == broken_build["id"]
    assert after[("Staging", "job-staging")].run_id == bad.id
    unchanged = {key: view for key, view in state.items() if key != ("Staging", "job-staging")}
    assert {key: after[key] for key in unchanged} == unchanged

    # releaseflow restarts: a new worker and a new driver on the same root adopt the containers.
    prod_container = current_container(platform.driver, "deployment-prod")
    await platform.stop_worker()
    assert await page(platform.inspector, prod_container) == "v2"
    platform.driver = platform.new_driver()
    platform.start_worker()
    assert await platform.serves("deployment-prod", "v2") == "v2"
    assert current_container(platform.driver, "deployment-prod") == prod_container

    # And it goes on releasing: v3 through staging, promoted to production.
    commit_v3 = platform.repository.commit("v3")
    staging_v3 = await platform.run("Staging", "staging v3")
    assert staging_v3.status is RunStatus.SUCCESS, await platform.failure(staging_v3)
    assert await platform.serves("deployment-staging", "v3") == "v3"
    promote_v3 = await platform.run("Production", "prod v3")
    assert promote_v3.status is RunStatus.SUCCESS, await platform.failure(promote_v3)
    assert await platform.serves("deployment-prod", "v3") == "v3"
    assert await platform.inspector.inspect_container(prod_container) is None
    final = await platform.state("Production")
    assert final[("Production", "deployment-prod")].artifact["commit"] == commit_v3
    assert final[("Production", "deployment-prod")].run_id == promote_v3.id


async def test_docker_releases__rollback_returns_the_stage_to_the_first_release(platform: Platform) -> None:

    await platform.apply(northflank_example("deploy-build-parallel"))
    platform.start_worker()
    runs = []
    for version in ("v1", "v2", "v3"):
        platform.repository.commit(version)
        run = await platform.run("Staging", f"staging {version}")
        assert run.status is RunStatus.SUCCESS, await platform.failure(run)
        runs.append(run)
    assert await platform.serves("deployment-staging", "v3") == "v3"
    image_v1 = response_data((await platform.nodes(runs[0]))["build"])["image"]

    rollbacks = Rollbacks(platform.engine, DriverRegistry({"docker": platform.driver}))
    preview = await rollbacks.preview(runs[0].id)
    assert preview.missing == ()  # the docker driver finds both images on the host
    started = await rollbacks.start(runs[0].id, by="tester")
    done = await wait_for_run(platform.db, started.run.id, timeout=120)

    assert done.status is RunStatus.SUCCESS, await platform.failure(done)
    assert await platform.serves("deployment-staging", "v1") == "v1"
    state = await platform.state("Staging")
    assert {resource: view.artifact["image"] for (_, resource), view in state.items()} == {
        "deployment-staging": image_v1,
        "job-staging": image_v1,
    }
    outcome = await rollback_outcome(platform.db, done.id)
    assert {item.resource_id: item.where for item in outcome} == {
        "deployment-staging": "rolled back",
        "job-staging": "rolled back",
    }
