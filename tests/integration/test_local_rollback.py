"""Rollback end to end on the local driver: real git builds, real processes answering HTTP.

The Staging stage holds two services and a job; each release builds the head of main and deploys it
to all three. Rolling back must bring every service of the stage back to the version it answered
right after the chosen run.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.local_project import AppRepository, answer, build_main, configuration, free_port
from tests.integration.release_harness import PIPELINE, ReleaseHarness
from tests.integration.support import wait_for_run

from releaseflow.domain.config import parse_configuration
from releaseflow.domain.errors import ConflictError
from releaseflow.domain.run_origin import OriginKind, RunOrigin
from releaseflow.domain.statuses import RunStatus
from releaseflow.engine import history, queries
from releaseflow.engine.clock import SystemClock
from releaseflow.engine.commands import RunRequest
from releaseflow.engine.configuration import apply_configuration
from releaseflow.engine.history import rollback_outcome
from releaseflow.engine.pins import PinnedError
from releaseflow.engine.rollback import Rollbacks
from releaseflow.platform.driver import DriverRegistry
from releaseflow.platform.local.driver import LocalDriver
from releaseflow.store.database import Database

SERVICES = ("deployment-staging", "web-staging")
STAGE = "Staging"


def release(ref: str, target: str, kind: str) -> dict[str, Any]:
    node: dict[str, Any] = {
        "kind": "Release",
        "ref": ref,
        "spec": {
            "type": "build",
            "origin": {"id": "builder", "branch": "main", "build": "${refs.build.id}"},
            "target": {"id": target, "type": kind},
        },
    }
    if kind == "service":
        node.update(condition="running", timeoutDuration=60)
    return node


def staging_flow(*, label: str = "") -> dict[str, Any]:
    build = build_main()
    deploys = {
        "kind": "Workflow",
        "spec": {
            "type": "parallel",
            "steps": [
                release("api", "deployment-staging", "service"),
                release("web", "web-staging", "service"),
                release("job", "job-staging", "job"),
            ],
        },
    }
    document = {
        "apiVersion": "v1.2",
        "spec": {"kind": "Workflow", "spec": {"type": "sequential", "steps": [build, deploys]}},
    }
    if label:
        document["arguments"] = {"label": label}
    return document


class Platform(ReleaseHarness[LocalDriver]):
    def __init__(self, db: Database, root: Path, repository: AppRepository, ports: dict[str, int]) -> None:
        super().__init__(db, LocalDriver(root / "local"))
        self.root, self.repository, self.ports = root, repository, ports
        self.web_command = "python3 app.py"
        self.rollbacks = Rollbacks(self.engine, DriverRegistry({"local": self.driver}))

    def configuration(self) -> dict[str, Any]:
        document = configuration(self.repository.path, self.ports)
        project = document["projects"][0]
        web = {
            "runCommand": self.web_command,
            "port": self.ports["web"],
            "healthCheck": {"type": "http", "path": "/", "timeoutSeconds": 5},
        }
        project["resources"]["services"].append({"id": "web-staging", "spec": web})
        project["pipelines"][0]["stages"][1]["resources"].append("web-staging")
        return document

    async def apply_staging(self, flow: dict[str, Any]) -> None:
        """Apply the project with this Staging flow (Production has none: these tests do not use it)."""
        document = self.configuration()
        document["projects"][0]["pipelines"][0]["stages"][1]["releaseFlow"] = flow
        await apply_configuration(
            self.db, parse_configuration(document, read_file=lambda name: ""), SystemClock()
        )

    async def release(self, version: str, origin: RunOrigin | None = None) -> str:
        self.repository.commit(version)
        request = RunRequest(
            name=f"staging {version}", origin=origin or RunOrigin(OriginKind.PERSON, "tester")
        )
        run = await self.engine.start_run(self.project, PIPELINE, STAGE, request)
        done = await wait_for_run(self.db, run.id, timeout=120)
        assert done.status is RunStatus.SUCCESS, await self.failure(done)
        return run.id

    async def roll_back(self, run_id: str, **options: Any) -> str:
        started = await self.rollbacks.start(run_id, by="tester", **options)
        await wait_for_run(self.db, started.run.id, timeout=120)
        return started.run.id

    def answers(self) -> dict[str, str]:
        return {service: answer(self.ports[service]) for service in SERVICES}

    async def commits(self) -> dict[str, str]:
        views = await queries.release_state(self.db, self.project, PIPELINE, STAGE)
        return {view.resource_id: str(view.artifact["commit"]) for view in views}

    async def tear_down(self) -> None:
        await self.stop_worker()
        for service in SERVICES:
            await self.driver.services.stop_service(service)
        await self.driver.services.ingress.shutdown()


@pytest.fixture
def root() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="rf-rollback-e2e-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
async def platform(db: Database, root: Path) -> AsyncIterator[Platform]:
    ports = {"staging": free_port(), "prod": free_port(), "web": free_port()}
    ports["deployment-staging"], ports["web-staging"] = ports["staging"], ports["web"]
    platform = Platform(db, root, AppRepository(root / "app"), ports)
    await platform.apply_staging(staging_flow())
    platform.start_worker()
    try:
        yield platform
    finally:
        await platform.tear_down()


async def test_local_rollback__every_service_answers_the_old_version_and_the_stage_stays_pinned(
    platform: Platform,
) -> None:
    v1 = await platform.release("v1")
    commit_v1 = (await platform.commits())["job-staging"]
    await platform.release("v2")
    v3 = await platform.release("v3")
    assert platform.answers() == {"deployment-staging": "v3", "web-staging": "v3"}

    back = await platform.roll_back(v1)
    run = (await queries.run_detail(platform.db, back)).run
    assert run.status is RunStatus.SUCCESS, await platform.failure(await _record(platform, back))
    assert platform.answers() == {"deployment-staging": "v1", "web-staging": "v1"}
    assert await platform.commits() == dict.fromkeys(
        ("deployment-staging", "web-staging", "job-staging"), commit_v1
    )

    # Pinned: a git push does not deploy over the rollback; it is recorded as skipped.
    with pytest.raises(PinnedError):
        await platform.release("v4", RunOrigin(OriginKind.GIT, "main"))
    header = (await history.pipeline_status(platform.db, platform.project, PIPELINE)).stages[1]
    assert header.pin is not None and [skip.origin_kind for skip in header.skipped] == ["git"]
    assert platform.answers() == {"deployment-staging": "v1", "web-staging": "v1"}

    # Rollback of the rollback's predecessor: forward to v3 again, through the same path.
    forward = await platform.roll_back(v3)
    assert (await queries.run_detail(platform.db, forward)).run.status is RunStatus.SUCCESS
    assert platform.answers() == {"deployment-staging": "v3", "web-staging": "v3"}
    # ...and back to what the first rollback left: a rollback of a rollback.
    await platform.roll_back(back)
    assert platform.answers() == {"deployment-staging": "v1", "web-staging": "v1"}

    # A run by hand deploys over the pin and clears it.
    manual = await platform.release("v5")
    assert platform.answers() == {"deployment-staging": "v5", "web-staging": "v5"}
    events = (await queries.run_detail(platform.db, manual)).events
    assert any(event.cause.startswith("cleared the stage's pin") for event in events)
    assert (await history.pipeline_status(platform.db, platform.project, PIPELINE)).stages[1].pin is None


async def test_local_rollback__with_config_restores_the_flow_version(platform: Platform) -> None:
    v1 = await platform.release("v1")
    await platform.apply_staging(staging_flow(label="changed"))
    await platform.release("v2")
    versions = await queries.flow_versions(platform.db, platform.project, PIPELINE, STAGE)
    assert [version.version for version in versions] == [1, 2]

    back = await platform.roll_back(v1, restore_config=True)

    assert (await queries.run_detail(platform.db, back)).run.status is RunStatus.SUCCESS
    assert platform.answers() == {"deployment-staging": "v1", "web-staging": "v1"}
    current = await queries.flow_version(platform.db, platform.project, PIPELINE, STAGE)
    assert (current.version, current.origin) == (3, f"restored from run {v1} (version 1)")
    assert current.document == staging_flow()


async def test_local_rollback__a_target_that_does_not_become_healthy_stays_on_its_old_version(
    platform: Platform,
) -> None:
    v1 = await platform.release("v1")
    await platform.release("v2")
    # web-staging can no longer start (its command now fails): its rollback deploy never gets healthy.
    platform.web_command = "python3 -c 'raise SystemExit(3)'"
    await platform.apply_staging(staging_flow())

    back = await platform.roll_back(v1)

    record = await _record(platform, back)
    assert record.status is RunStatus.FAILED
    outcome = {item.resource_id: item.where for item in await rollback_outcome(platform.db, back)}
    assert outcome == {
        "deployment-staging": "rolled back",
        "job-staging": "rolled back",
        "web-staging": "old",
    }
    assert platform.answers() == {"deployment-staging": "v1", "web-staging": "v2"}


async def test_local_rollback__refused_when_a_build_is_gone(platform: Platform) -> None:
    v1 = await platform.release("v1")
    await platform.release("v2")
    build_id = (await _state_after(platform, v1))["deployment-staging"]
    shutil.rmtree(platform.root / "local" / "builds" / build_id / "artifact")

    with pytest.raises(ConflictError, match="no longer exist") as refused:
        await platform.rollbacks.start(v1, by="tester")

    assert all(service in str(refused.value) for service in (*SERVICES, "job-staging"))
    assert platform.answers() == {"deployment-staging": "v2", "web-staging": "v2"}


async def _state_after(platform: Platform, run_id: str) -> dict[str, str]:
    preview = await platform.rollbacks.preview(run_id)
    return {change.resource_id: str(change.to_artifact["buildId"]) for change in preview.plan.changes}


async def _record(platform: Platform, run_id: str) -> Any:
    from tests.integration.support import get_run

    return await get_run(platform.db, run_id)
