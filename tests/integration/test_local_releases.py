"""End to end on the local driver: real git builds, real processes answering HTTP, real PostgreSQL.

Northflank's two documented example release flows run unmodified against resources with the ids
they name.
"""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from tests.integration.local_project import (
    STAGING_FLOW,
    AppRepository,
    answer,
    build_main,
    configuration,
    eventually_answers,
    free_port,
    northflank_example,
)
from tests.integration.release_harness import ReleaseHarness
from tests.integration.support import wait_for_node, wait_for_run

from releaseflow.domain.errors import ConflictError
from releaseflow.domain.statuses import RunStatus
from releaseflow.engine import queries
from releaseflow.engine.commands import RunRequest
from releaseflow.engine.insights import pipeline_metrics
from releaseflow.platform.driver import Resource
from releaseflow.platform.local.driver import LocalDriver
from releaseflow.platform.local.postgres_cluster import ManagedCluster
from releaseflow.store.database import Database

SERVICES = ("deployment-staging", "deployment-prod")


@pytest.fixture
def root() -> Iterator[Path]:
    # Not tmp_path: when the tests run as root, the managed PostgreSQL runs as `postgres`, which must
    # be able to enter the driver's folders.
    path = Path(tempfile.mkdtemp(prefix="rf-local-e2e-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


class Platform(ReleaseHarness[LocalDriver]):
    """The engine, a worker and a local driver, with the project applied."""

    def __init__(self, db: Database, root: Path, repository: AppRepository, ports: dict[str, int]) -> None:
        super().__init__(db, LocalDriver(root / "local"))
        self.root, self.repository, self.ports = root, repository, ports

    def configuration(self) -> dict[str, Any]:
        return configuration(self.repository.path, self.ports)

    async def apply(self, production_flow: dict[str, Any]) -> None:  # type: ignore[override]
        await super().apply(STAGING_FLOW, production_flow)

    async def tear_down(self) -> None:
        await self.stop_worker()
        for service in SERVICES:
            await self.driver.services.stop_service(service)
        await self.driver.services.ingress.shutdown()
        for pid_file in (self.root / "local").rglob("data/postmaster.pid"):
            await ManagedCluster(pid_file.parent.parent).remove()


@pytest.fixture
async def platform(db: Database, root: Path) -> AsyncIterator[Platform]:
    repository = AppRepository(root / "app")
    ports = {"staging": free_port(), "prod": free_port()}
    platform = Platform(db, root, repository, ports)
    try:
        yield platform
    finally:
        await platform.tear_down()


def rows(url: str) -> list[str]:
    with psycopg.connect(url) as connection:
        return [str(row[0]) for row in connection.execute("SELECT version FROM releases ORDER BY version")]


async def test_local__build_deploy_promote_migrate_back_up_and_survive_a_bad_release(
    platform: Platform,
) -> None:
    platform.repository.commit("v1")
    await platform.apply(northflank_example("deploy-build-parallel"))
    platform.start_worker()

    staging = await platform.run("Staging", "staging v1")
    assert staging.status is RunStatus.SUCCESS, await platform.failure(staging)
    assert answer(platform.ports["staging"]) == "v1"

    # Northflank's first example: the latest main build to job-prod and deployment-prod, in parallel.
    # Its Release nodes do not wait for completion: the run ends once the deploys were accepted.
    first = await platform.run("Production", "prod v1")
    assert first.status is RunStatus.SUCCESS, await platform.failure(first)
    assert await eventually_answers(platform.ports["prod"], "v1") == "v1"

    commit_v2 = platform.repository.commit("v2")
    assert (await platform.run("Staging", "staging v2")).status is RunStatus.SUCCESS
    assert answer(platform.ports["staging"]) == "v2"
    assert answer(platform.ports["prod"]) == "v1"

    # Northflank's second example: back up, promote the job, run the migration, promote the service.
    await platform.apply(northflank_example("backup-migrate-promote"))
    second = await platform.run("Production", "prod v2")
    assert second.status is RunStatus.SUCCESS, await platform.failure(second)
    assert await eventually_answers(platform.ports["prod"], "v2") == "v2"
    addon = Resource("postgres-prod", "addon", "local", {"type": "postgresql"})
    url = await platform.driver.addons.connection_url(addon, "shop")
    assert rows(url) == ["v2"]
    backups = await platform.driver.addons.list_backups(addon, "shop")
    assert [(backup.status.value, backup.run_id) for backup in backups] == [("succeeded", second.id)]

    state = {
        view.resource_id: view for view in await queries.release_state(platform.db, "shop", "main", None)
    }
    assert state["deployment-prod"].artifact["commit"] == commit_v2
    assert state["deployment-prod"].run_id == second.id
    assert state["job-prod"].artifact["commit"] == commit_v2
    # The build knows when its commit was made, so Production's lead time is known.
    (production,) = await pipeline_metrics(platform.db, "shop", "main", "Production", now=datetime.now(UTC))
    assert production.metrics.deploys_without_commit_time == 0
    assert len(production.metrics.lead_times) == 4  # two deploys in each of two runs
    assert all(timedelta(0) < lead < timedelta(minutes=10) for lead in production.metrics.lead_times)

    # A version that cannot start: the deploy fails and the previous release keeps answering.
    platform.repository.commit("broken")
    bad = await platform.run("Staging", "staging broken")
    assert bad.status is RunStatus.FAILED
    detail = await queries.run_detail(platform.db, bad.id, with_events=False)
    assert detail.root is not None
    failed = [node for node in detail.root.walk() if node.status == "failed" and not node.is_workflow]
    assert [node.ref for node in failed] == ["service"]
    assert failed[0].error is not None and "cannot start" in str(failed[0].error)
    # It exits during start-up: another attempt would end the same way, so there is none, and the
    # node's error says so.
    assert failed[0].attempts == 1 and failed[0].max_attempts > 1
    assert "Not retried" in str(failed[0].error)
    assert answer(platform.ports["staging"]) == "v2"
    staged = {
        view.resource_id: view for view in await queries.release_state(platform.db, "shop", "main", "Staging")
    }
    assert staged["deployment-staging"].artifact["commit"] == commit_v2

    # releaseflow restarts: the services keep running and are adopted, not restarted.
    before = await platform.driver.services.status("deployment-prod")
    await platform.stop_worker()
    assert answer(platform.ports["prod"]) == "v2"
    platform.driver = LocalDriver(platform.root / "local")
    platform.start_worker()
    await asyncio.sleep(0)
    after = await platform.driver.services.status("deployment-prod")
    assert (after.pid, after.state.value) == (before.pid, "running")
    assert answer(platform.ports["prod"]) == "v2"


def action(ref: str, kind: str, action_type: str, data: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "kind": "Action",
        "ref": ref,
        "spec": {"kind": kind, "spec": {"type": action_type, "data": data, **extra}},
    }


def condition(ref: str, kind: str, condition_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "kind": "Condition",
        "ref": ref,
        "spec": {"kind": kind, "spec": {"type": condition_type, "data": data}},
    }


def sequence(*steps: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "v1.2",
        "spec": {"kind": "Workflow", "spec": {"type": "sequential", "steps": list(steps)}},
    }


async def test_local__actions_and_conditions_act_for_real(platform: Platform) -> None:
    platform.repository.commit("v1")
    await platform.apply(northflank_example("deploy-build-parallel"))
    platform.start_worker()
    assert (await platform.run("Staging", "staging v1")).status is RunStatus.SUCCESS
    first = await platform.run("Production", "prod v1")
    assert first.status is RunStatus.SUCCESS, await platform.failure(first)

    url_data = {"addonId": "postgres-prod"}
    flow = sequence(
        condition("up", "Service", "running", {"serviceId": "deployment-prod", "timeoutDuration": 60}),
        condition("db-up", "Addon", "running", url_data),
        {"kind": "JobRun", "ref": "migrate", "spec": {"jobId": "job-prod"}, "condition": "success"},
        condition("migrated", "JobRun", "success", {"jobId": "job-prod", "runId": "${refs.migrate.id}"}),
        {"kind": "AddonBackup", "ref": "backup", "spec": {"addonId": "postgres-prod", "backupType": "dump"}},
        condition("backed-up", "AddonBackup", "success", {**url_data, "backupId": "${refs.backup.id}"}),
        action(
            "damage",
            "Job",
            "execute",
            {"jobId": "job-prod", "command": 'psql "$DATABASE_URL" -c "DELETE FROM releases"'},
        ),
        action(
            "restore",
            "AddonBackup",
            "restore",
            {**url_data, "backupId": "${refs.backup.id}"},
            condition="success",
        ),
        action("hello", "Service", "execute", {"serviceId": "deployment-prod", "command": "cat VERSION"}),
        action("restart", "Service", "restart", {"serviceId": "deployment-prod"}, condition="running"),
        condition("built", "Build", "success", {"buildId": "${refs.up.artifact.buildId}"}),
    )
    await platform.apply(flow)
    run = await platform.run("Production", "actions")
    assert run.status is RunStatus.SUCCESS, await platform.failure(run)

    detail = await queries.run_detail(platform.db, run.id, with_events=False)
    data = {node.ref: node.data for node in (detail.root.walk() if detail.root else []) if node.ref}
    assert data["migrate"]["exitCode"] == 0
    assert data["hello"]["exitCode"] == 0 and "v1" in data["hello"]["output"]
    addon = Resource("postgres-prod", "addon", "local", {"type": "postgresql"})
    # The damage was undone by the restore: the migration's row is back.
    assert rows(await platform.driver.addons.connection_url(addon, "shop")) == ["v1"]
    assert await eventually_answers(platform.ports["prod"], "v1") == "v1"


async def test_local__abort_stops_a_running_job_on_the_host(platform: Platform) -> None:
    platform.repository.commit("v1")
    await platform.apply(northflank_example("deploy-build-parallel"))
    platform.start_worker()
    assert (await platform.run("Staging", "staging v1")).status is RunStatus.SUCCESS
    assert (await platform.run("Production", "prod v1")).status is RunStatus.SUCCESS
    slow = {
        "kind": "JobRun",
        "ref": "slow",
        "spec": {
            "jobId": "job-prod",
            "deployment": {"docker": {"configType": "customCommand", "customCommand": "sleep 60"}},
        },
        "condition": "success",
    }
    await platform.apply(sequence(slow))
    run = await platform.engine.start_run("shop", "main", "Production", RunRequest(name="slow job"))
    waiting = await wait_for_node(platform.db, run.id, "slow", "waiting")
    job_run = waiting.data["id"]
    assert (await platform.driver.jobs.get(job_run)).status.value == "running"

    await platform.engine.abort_run(run.id)
    done = await wait_for_run(platform.db, run.id, timeout=30)

    assert done.status is RunStatus.ABORTED
    node = (await queries.run_detail(platform.db, run.id, with_events=False)).node("slow")
    assert node is not None and node.cause == f"stopped: the run was aborted; job run {job_run} was stopped"
    stopped = await platform.driver.jobs.get(job_run)
    assert stopped.status.value == "failed" and "aborted" in stopped.error


def custom_job(ref: str, command: str, **extra: Any) -> dict[str, Any]:
    """A JobRun of job-prod running ``command`` in the folder of the build of node ``build``."""
    return {
        "kind": "JobRun",
        "ref": ref,
        "spec": {
            "jobId": "job-prod",
            "deployment": {
                "internal": {"id": "builder", "buildId": "${refs.build.id}"},
                "docker": {"configType": "customCommand", "customCommand": command},
            },
        },
        "condition": "success",
        **extra,
    }


async def test_local__values_in_a_job_command_are_data_not_code(platform: Platform) -> None:
    """An argument holding shell code reaches the job's command as text; ordinary values as before."""
    platform.repository.commit("v1")
    marker, said = platform.root / "pwned", platform.root / "said.txt"
    say = custom_job(
        "say", "printf '%s\\n' ${args.WHO} \"branch ${refs.build.branch}, v${args.VERSION}\" >> ${args.OUT}"
    )
    flow = sequence(build_main(), say)
    flow["arguments"] = {"WHO": f"$(touch {marker}); touch {marker}", "VERSION": "1.2", "OUT": str(said)}
    await platform.apply(flow)
    platform.start_worker()

    run = await platform.run("Production", "hostile arguments")

    assert run.status is RunStatus.SUCCESS, await platform.failure(run)
    assert said.read_text() == f"$(touch {marker}); touch {marker}\nbranch main, v1.2\n"
    assert not marker.exists()


async def test_local__resume_runs_the_failed_node_again_and_not_what_succeeded(platform: Platform) -> None:
    """A resumed run keeps the build and the first job (their effects happen once) and runs the job
    that failed again, with an edited argument; the kept build's outputs still feed the later job."""
    platform.repository.commit("v1")
    counted, ready = platform.root / "counted.txt", platform.root / "ready"
    flow = sequence(
        build_main(),
        custom_job("count", "echo counted >> ${args.COUNT}"),
        custom_job("check", "test -f ${args.READY}", settings={"maxAttempts": 1}),
    )
    flow["arguments"] = {"COUNT": str(counted), "READY": str(platform.root / "missing")}
    await platform.apply(flow)
    platform.start_worker()
    failed = await platform.run("Production", "not ready yet")
    assert failed.status is RunStatus.FAILED
    assert counted.read_text() == "counted\n"
    builds = sorted((platform.root / "local").rglob("builds/*/manifest.json"))
    assert len(builds) == 1

    ready.touch()
    resumed = await platform.engine.resume_run(failed.id, RunRequest(arguments={"READY": str(ready)}))
    done = await wait_for_run(platform.db, resumed.id, timeout=120)

    assert done.status is RunStatus.SUCCESS, await platform.failure(done)
    assert counted.read_text() == "counted\n"  # the count job did not run again
    assert sorted((platform.root / "local").rglob("builds/*/manifest.json")) == builds  # nor the build
    detail = await queries.run_detail(platform.db, resumed.id, with_events=False)
    nodes = {node.label: node for node in detail.root.walk()} if detail.root else {}
    assert (nodes["build"].carried_from, nodes["count"].carried_from, nodes["check"].carried_from) == (
        failed.id,
        failed.id,
        None,
    )
    assert nodes["check"].attempts == 1 and nodes["check"].status == "success"
    with pytest.raises(ConflictError, match="already resumed"):
        await platform.engine.resume_run(failed.id, RunRequest())
