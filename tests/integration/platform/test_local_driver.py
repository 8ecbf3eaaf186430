"""The LocalDriver facade with real git repositories, builds and processes (no mocks)."""

from __future__ import annotations

import asyncio
import json
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator, Mapping
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from tests.integration.platform.local_support import Repo, read

from releaseflow.platform.driver import (
    AnswerState,
    Artifact,
    DriverAnswer,
    DriverError,
    DriverRequest,
    Operation,
    Resource,
)
from releaseflow.platform.local.driver import LocalDriver

BUILD_COMMAND = 'mkdir -p dist && cp app.txt dist/ && echo "${GREETING:-hello}" > dist/greeting.txt'


class Project:
    """A project's resources on the local driver, and requests against them."""

    def __init__(self, repo: Path) -> None:
        self.builder = Resource(
            "api-builder",
            "build_service",
            "local",
            {
                "repository": str(repo),
                "buildCommand": BUILD_COMMAND,
                "artifactPath": "dist",
                "branch": "main",
            },
        )
        self.failing = Resource(
            "bad-builder", "build_service", "local", {"repository": str(repo), "buildCommand": "exit 4"}
        )
        self.api = Resource(
            "api",
            "service",
            "local",
            {
                "runCommand": "exec sleep 60",
                "healthCheck": {"type": "command", "command": "test -f app.txt", "intervalSeconds": 0.1},
            },
        )
        self.migrate = Resource("migrate", "job", "local", {"command": "cat app.txt greeting.txt"})
        self.image_service = Resource("web", "service", "local", {"runCommand": "true"})
        self.resources = {r.id: r for r in (self.builder, self.failing, self.api, self.migrate)}

    def request(
        self,
        operation: Operation,
        resource: Resource,
        params: Mapping[str, Any] | None = None,
        *,
        key: str = "run-1/spec.spec.steps[0]/1",
        artifact: Artifact | None = None,
    ) -> DriverRequest:
        return DriverRequest(
            operation, resource, params or {}, key, artifact=artifact, resources=self.resources
        )


@pytest.fixture
def commits(tmp_path: Path) -> dict[str, str]:
    """main: v1, v2; feature: off v1. The commits by name."""
    repo = Repo(tmp_path / "repo")
    return {"v1": repo.v1, "v2": repo.v2, "feature": repo.feature}


@pytest.fixture
def project(tmp_path: Path, commits: dict[str, str]) -> Project:
    return Project(tmp_path / "repo")


@pytest.fixture
async def driver(tmp_path: Path) -> AsyncIterator[LocalDriver]:
    local = LocalDriver(tmp_path / "local")
    await local.start()
    yield local
    await local.services.stop_service("api")  # services outlive the driver on purpose: stop ours
    await local.services.ingress.shutdown()  # so does the ingress
    await local.stop()


async def settle(driver: LocalDriver, request: DriverRequest, answer: DriverAnswer) -> DriverAnswer:
    """Follow an answer until it is no longer in progress (the engine's polling, without its pauses)."""
    deadline = time.monotonic() + 15
    while answer.state is AnswerState.IN_PROGRESS:
        assert time.monotonic() < deadline, f"still in progress: {answer}"
        await asyncio.sleep(0.05)
        answer = await driver.follow(request, answer.handle)
    return answer


async def built(driver: LocalDriver, project: Project, key: str, **params: Any) -> DriverAnswer:
    request = project.request(
        Operation.START_BUILD, project.builder, {"id": "api-builder", **params}, key=key
    )
    return await settle(driver, request, await driver.perform(request))


async def test_start_build__answers_in_progress_then_follow_reports_done(
    driver: LocalDriver, project: Project, commits: dict[str, str]
) -> None:
    request = project.request(
        Operation.START_BUILD, project.builder, {"id": "api-builder", "type": "service"}
    )

    first = await driver.perform(request)
    answer = await settle(driver, request, first)

    assert first.state is AnswerState.IN_PROGRESS and first.handle == {
        "buildId": first.data["id"],
        "reused": False,
    }
    assert first.data["status"] == "running"
    assert answer.state is AnswerState.DONE
    assert answer.data == {
        "id": first.data["id"],
        "sha": commits["v2"],
        "branch": "main",
        "buildService": "api-builder",
        "status": "success",
        "reused": False,
        "logPath": first.data["logPath"],
    }
    assert read(answer.data["logPath"]).startswith("$ git checkout")


async def test_start_build__same_key_answers_the_same_build(driver: LocalDriver, project: Project) -> None:
    params = {"id": "api-builder", "branch": "feature", "reuseExistingBuilds": False}
    first = await driver.perform(project.request(Operation.START_BUILD, project.builder, params, key="k"))
    second = await driver.perform(project.request(Operation.START_BUILD, project.builder, params, key="k"))

    assert second.data["id"] == first.data["id"]


async def test_start_build__build_arguments_reach_the_command(driver: LocalDriver, project: Project) -> None:
    answer = await built(driver, project, "k1", buildOverrides={"buildArguments": {"GREETING": "bonjour"}})

    build = await driver.builds.get_build(answer.data["id"])
    assert (driver.builds.artifact_path(build) / "greeting.txt").read_text().strip() == "bonjour"


async def test_start_build__failed_build_is_a_failed_answer(driver: LocalDriver, project: Project) -> None:
    request = project.request(Operation.START_BUILD, project.failing, {"id": "bad-builder"})

    answer = await settle(driver, request, await driver.perform(request))

    assert answer.state is AnswerState.FAILED and answer.data["status"] == "failed"
    assert "failed with exit code 4" in answer.message


async def test_start_build__refuses_what_it_cannot_build(driver: LocalDriver, project: Project) -> None:
    on_job = project.request(Operation.START_BUILD, project.migrate, {"id": "migrate", "type": "job"})
    pull_request = project.request(Operation.START_BUILD, project.builder, {"pullRequestId": 7})
    missing = project.request(Operation.START_BUILD, project.builder, {"branch": "nope"})

    for request, words in (
        (on_job, "job 'migrate' cannot be built by the local driver"),
        (pull_request, "not pull requests"),
        (missing, "branch 'nope' does not exist"),
    ):
        with pytest.raises(DriverError, match=words) as caught:
            await driver.perform(request)
        assert not caught.value.retryable


async def test_build_succeeded__checks_a_build_by_id(driver: LocalDriver, project: Project) -> None:
    done = await built(driver, project, "k1")
    check = project.request(
        Operation.BUILD_SUCCEEDED, Resource("", "build_service", "local"), {"buildId": done.data["id"]}
    )
    unknown = project.request(Operation.BUILD_SUCCEEDED, project.builder, {"buildId": "bld-ffffffffffff"})

    assert (await driver.perform(check)).state is AnswerState.DONE
    with pytest.raises(DriverError, match="build 'bld-ffffffffffff' does not exist"):
        await driver.perform(unknown)


async def test_resolve_build__latest_and_by_id(
    driver: LocalDriver, project: Project, commits: dict[str, str]
) -> None:
    main = await built(driver, project, "k1")
    feature = await built(driver, project, "k2", branch="feature")

    latest, folder = await driver.resolve_build({"id": "api-builder", "build": "latest"}, project.resources)
    on_feature, _ = await driver.resolve_build({"id": "api-builder", "branch": "feature"}, project.resources)
    by_id, _ = await driver.resolve_build({"build": main.data["id"]}, project.resources)

    assert latest == Artifact(
        kind="build",
        build_service="api-builder",
        build_id=main.data["id"],
        commit=commits["v2"],
        branch="main",
        committed_at=latest.committed_at,
    )
    # The commit's own time (git's committer date), for the lead time from commit to release.
    assert latest.committed_at is not None and datetime.fromisoformat(latest.committed_at).tzinfo is not None
    assert (folder / "app.txt").read_text() == "v2"
    assert on_feature.build_id == feature.data["id"] and on_feature.commit == commits["feature"]
    assert by_id == latest


async def test_resolve_build__says_why_a_build_cannot_be_deployed(
    driver: LocalDriver, project: Project
) -> None:
    failed = await settle(
        driver,
        request := project.request(Operation.START_BUILD, project.failing, {}, key="k1"),
        await driver.perform(request),
    )
    running = await driver.perform(
        project.request(
            Operation.START_BUILD,
            Resource(
                "slow-builder", "build_service", "local", {**project.builder.spec, "buildCommand": "sleep 30"}
            ),
            {},
            key="k2",
        )
    )

    cases = [
        ({"id": "api-builder"}, "has no successful build on branch 'main' yet", False),
        ({"id": "nope"}, "build service 'nope' does not exist", False),
        ({"build": failed.data["id"]}, "failed, it cannot be deployed", False),
        ({"id": "api-builder", "build": failed.data["id"]}, "made by build service 'bad-builder'", False),
        ({"build": running.data["id"]}, "is still running; give the Build node `condition: success`", True),
    ]
    for origin, words, retryable in cases:
        with pytest.raises(DriverError, match=words) as caught:
            await driver.resolve_build(origin, project.resources)
        assert caught.value.retryable is retryable, origin


async def test_deploy_image__is_refused(driver: LocalDriver, project: Project) -> None:
    request = project.request(Operation.DEPLOY_IMAGE, project.image_service, {"imagePath": "nginx:1"})

    with pytest.raises(DriverError) as caught:
        await driver.perform(request)

    assert not caught.value.retryable
    assert str(caught.value) == (
        "service 'web' uses the local driver, which runs builds of build services;"
        " images need the docker driver"
    )


async def test_deploy_build__runs_the_build_on_a_service(driver: LocalDriver, project: Project) -> None:
    build = await built(driver, project, "k1")
    request = project.request(
        Operation.DEPLOY_BUILD, project.api, {"id": "api-builder", "build": build.data["id"]}, key="k2"
    )

    answer = await settle(driver, request, await driver.perform(request))
    running = await driver.perform(
        project.request(Operation.SERVICE_RUNNING, project.api, {"serviceId": "api"})
    )

    assert answer.state is AnswerState.DONE, answer.message
    assert answer.data["target"] == "api" and answer.data["deploymentId"]
    assert Artifact.from_data(answer.data["artifact"]).build_id == build.data["id"]
    assert running.state is AnswerState.DONE and running.data["artifact"]["buildId"] == build.data["id"]


async def test_deploy_artifact__redeploys_a_recorded_build(driver: LocalDriver, project: Project) -> None:
    build = await built(driver, project, "k1")
    artifact, _ = await driver.resolve_build({"build": build.data["id"]}, project.resources)
    request = project.request(
        Operation.DEPLOY_ARTIFACT, project.api, {"id": "api-dev"}, key="k2", artifact=artifact
    )

    answer = await settle(driver, request, await driver.perform(request))

    assert answer.state is AnswerState.DONE, answer.message
    assert answer.data["artifact"] == artifact.to_data()


async def test_run_job__runs_in_the_deployed_build(driver: LocalDriver, project: Project) -> None:
    build = await built(driver, project, "k1")
    artifact, _ = await driver.resolve_build({"build": build.data["id"]}, project.resources)
    deploy = project.request(Operation.DEPLOY_BUILD, project.migrate, {"build": build.data["id"]}, key="k2")
    run = project.request(
        Operation.RUN_JOB, project.migrate, {"jobId": "migrate"}, key="k3", artifact=artifact
    )
    nothing = project.request(Operation.RUN_JOB, project.migrate, {"jobId": "migrate"}, key="k4")

    deployed = await driver.perform(deploy)
    answer = await settle(driver, run, await driver.perform(run))

    assert deployed.state is AnswerState.DONE and deployed.data["artifact"] == artifact.to_data()
    assert answer.state is AnswerState.DONE, answer.message
    assert answer.data["exitCode"] == 0 and answer.data["jobId"] == "migrate"
    assert read(answer.data["logPath"]) == "v2hello\n"  # app.txt has no newline
    check = project.request(
        Operation.JOB_RUN_SUCCEEDED, project.migrate, {"jobId": "migrate", "runId": answer.data["id"]}
    )
    assert (await driver.perform(check)).state is AnswerState.DONE
    with pytest.raises(DriverError, match="has nothing deployed in this stage yet"):
        await driver.perform(nothing)


FAST_POSTGRES = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}


@pytest.fixture
def reachable_root() -> Iterator[Path]:
    # Not pytest's tmp_path: its parents are private to root, and the server runs as `postgres`.
    root = Path(tempfile.mkdtemp(prefix="rf-local-driver-"))
    root.chmod(0o755)
    yield root
    shutil.rmtree(root, ignore_errors=True)


async def test_addon__running_check_backup_and_restore(reachable_root: Path) -> None:
    driver = LocalDriver(reachable_root, postgres_settings=FAST_POSTGRES)
    await driver.start()
    db = Resource("db", "addon", "local", {"type": "postgresql"})

    def request(operation: Operation, params: Mapping[str, Any], key: str) -> DriverRequest:
        return DriverRequest(
            operation, db, params, key, resources={"db": db}, project_id="shop", run_id="run-1"
        )

    try:
        running = await driver.perform(request(Operation.ADDON_RUNNING, {"addonId": "db"}, "k1"))
        backup_request = request(Operation.BACKUP_ADDON, {"addonId": "db", "backupType": "dump"}, "k2")
        backup = await settle(driver, backup_request, await driver.perform(backup_request))
        check = await driver.perform(
            request(Operation.BACKUP_SUCCEEDED, {"addonId": "db", "backupId": backup.data["id"]}, "k3")
        )
        restore_request = request(
            Operation.RESTORE_BACKUP, {"addonId": "db", "backupId": backup.data["id"]}, "k4"
        )
        restore = await settle(driver, restore_request, await driver.perform(restore_request))

        assert running.state is AnswerState.DONE and running.data["running"] is True
        assert backup.state is AnswerState.DONE, backup.message
        assert backup.data["addonId"] == "db" and backup.data["status"] == "succeeded"
        assert backup.data["size"] > 0 and backup.data["id"].startswith("bak-")
        assert check.state is AnswerState.DONE
        assert restore.state is AnswerState.DONE, restore.message
    finally:
        await driver.addons.remove(db, "shop")  # the cluster outlives the driver on purpose
        await driver.stop()


async def test_deploy_build__same_key_adopts_the_first_deploy(
    driver: LocalDriver, project: Project, commits: dict[str, str]
) -> None:
    first_build = await built(driver, project, "k1", sha=commits["v1"])
    request = project.request(
        Operation.DEPLOY_BUILD, project.api, {"id": "api-builder", "build": "latest"}, key="run/deploy/1"
    )
    first = await settle(driver, request, await driver.perform(request))
    await built(driver, project, "k2", sha=commits["v2"])  # "latest" names another build now

    again = await driver.perform(request)  # the same attempt, asked again (a lost lease, a restart)

    assert first.state is AnswerState.DONE, first.message
    assert again.state is AnswerState.DONE
    assert again.data["deploymentId"] == first.data["deploymentId"]
    assert again.data["artifact"]["buildId"] == first_build.data["id"]
    started = [line for line in driver.services.logs("api") if line.startswith("--- releaseflow")]
    assert len(started) == 1  # one process, not two


async def test_deploy_build__a_version_that_exits_at_start_is_not_retryable(
    driver: LocalDriver, project: Project
) -> None:
    build = await built(driver, project, "k1")
    crashing = Resource("api", "service", "local", {"runCommand": "exit 7"})
    resources = {**project.resources, "api": crashing}
    request = DriverRequest(
        Operation.DEPLOY_BUILD,
        crashing,
        {"id": "api-builder", "build": build.data["id"]},
        "k2",
        resources=resources,
    )

    answer = await settle(driver, request, await driver.perform(request))

    assert answer.state is AnswerState.FAILED and answer.retryable is False
    assert "exited with code 7" in answer.message and "Not retried" in answer.message


# -- each action at most once per idempotency key (the driver contract) ------------------------------


async def deployed_api(driver: LocalDriver, project: Project) -> None:
    build = await built(driver, project, "k1")
    deploy = project.request(Operation.DEPLOY_BUILD, project.api, {"build": build.data["id"]}, key="k2")
    assert (await settle(driver, deploy, await driver.perform(deploy))).state is AnswerState.DONE


async def test_execute_in_service__same_key_runs_the_command_once(
    driver: LocalDriver, project: Project, tmp_path: Path
) -> None:
    await deployed_api(driver, project)
    count = tmp_path / "count"
    command = f"echo ran >> {count}; sleep 0.3; wc -l < {count}"
    request = project.request(
        Operation.EXECUTE_IN_SERVICE, project.api, {"command": command, "shell": True}, key="run/exec/1"
    )

    first, concurrent = await asyncio.gather(driver.perform(request), driver.perform(request))
    concurrent = await settle(driver, request, concurrent)
    again = await driver.perform(request)
    successor = LocalDriver(tmp_path / "local")
    await successor.start()
    after_restart = await successor.perform(request)
    another_key = await driver.perform(replace(request, idempotency_key="run/exec/2"))

    assert first.state is AnswerState.DONE, first.message
    assert first.data["output"] == "1"
    assert concurrent.data == again.data == after_restart.data == first.data
    assert another_key.data["output"] == "2"
    assert read(count) == "ran\nran\n"


# Executes one command in service 'api' through a LocalDriver of its own, to be killed while it runs.
EXECUTE = """\
import asyncio, json, sys
from pathlib import Path
from releaseflow.platform.driver import DriverRequest, Operation, Resource
from releaseflow.platform.local.driver import LocalDriver

root, api_json, command = sys.argv[1:4]
api = Resource(**json.loads(api_json))

async def main():
    driver = LocalDriver(Path(root))
    await driver.perform(DriverRequest(Operation.EXECUTE_IN_SERVICE, api,
                                       {"command": command, "shell": True}, "run/exec/1"))

asyncio.run(main())
"""


async def test_execute_in_service__killed_mid_command__the_same_key_does_not_run_it_again(
    driver: LocalDriver, project: Project, tmp_path: Path
) -> None:
    await deployed_api(driver, project)
    count = tmp_path / "count"
    api = {"id": "api", "kind": "service", "driver": "local", "spec": dict(project.api.spec)}
    worker = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        EXECUTE,
        str(tmp_path / "local"),
        json.dumps(api),
        f"echo ran >> {count}; sleep 2",
    )
    deadline = time.monotonic() + 15
    while not await asyncio.to_thread(count.exists):
        assert time.monotonic() < deadline and worker.returncode is None, "the command never ran"
        await asyncio.sleep(0.05)
    worker.kill()
    await worker.wait()
    request = project.request(
        Operation.EXECUTE_IN_SERVICE, project.api, {"command": "true", "shell": True}, key="run/exec/1"
    )

    answer = await driver.perform(request)

    assert answer.state is AnswerState.FAILED
    assert "stopped before it finished; whether it took effect is unknown" in answer.message
    assert read(count) == "ran\n"
