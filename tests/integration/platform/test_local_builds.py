"""Local builds against real git repositories and real build commands (no mocks)."""

from __future__ import annotations

import asyncio
import os
import signal
import stat
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.integration.platform.local_support import Repo, read

from releaseflow.platform.driver import DriverError, Resource
from releaseflow.platform.local.artifacts import BuildStatus
from releaseflow.platform.local.builds import INTERRUPTED, BuildManager, BuildNotFoundError
from releaseflow.platform.local.processes import group_alive
from releaseflow.platform.spec_check import SpecError

# Copies app.txt into dist/ and notes the commit the build saw, so a test can tell what was built.
BUILD_COMMAND = 'mkdir -p dist && cp app.txt dist/ && echo "$RELEASEFLOW_COMMIT" > dist/commit.txt'


def build_service(repository: Path | str, **spec: Any) -> Resource:
    full = {"repository": str(repository), "buildCommand": BUILD_COMMAND, "artifactPath": "dist", **spec}
    return Resource(id="api-builder", kind="build_service", driver="local", spec=full)


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    return Repo(tmp_path / "repo")


@pytest.fixture
async def manager(tmp_path: Path) -> AsyncIterator[BuildManager]:
    builds = BuildManager(tmp_path / "local")
    await builds.start()
    yield builds
    await builds.stop()


async def test_build__branch_head_is_built_and_kept(manager: BuildManager, repo: Repo) -> None:
    started = await manager.start_build(build_service(repo.path), key="k1", branch="main")

    assert started.build.status is BuildStatus.RUNNING and not started.reused
    assert started.build.id.startswith("bld-") and len(started.build.id) == 16
    assert started.build.commit == repo.v2 and started.build.branch == "main"
    build = await manager.wait(started.build.id, timeout=10)
    assert build.status is BuildStatus.SUCCESS, build.error
    artifact = manager.artifact_path(build)
    assert (artifact / "app.txt").read_text() == "v2"
    assert (artifact / "commit.txt").read_text().strip() == repo.v2
    assert build.ended_at is not None and build.duration_seconds is not None
    assert set(build.timings) == {"checkout", "command"}
    assert "sh -c" in read(build.log_path)
    assert not (artifact.parent / "source").exists()  # the checkout is not kept, only the artifact


async def test_build__exact_sha_builds_that_commit(manager: BuildManager, repo: Repo) -> None:
    started = await manager.start_build(build_service(repo.path, branch="main"), key="k1", sha=repo.v1)

    build = await manager.wait(started.build.id, timeout=10)
    assert build.status is BuildStatus.SUCCESS, build.error
    assert build.commit == repo.v1
    assert build.branch == "main"  # the default branch holds v1, so it is recorded
    assert (manager.artifact_path(build) / "app.txt").read_text() == "v1"


async def test_build__sha_not_on_default_branch_records_no_branch(manager: BuildManager, repo: Repo) -> None:
    started = await manager.start_build(build_service(repo.path, branch="main"), key="k1", sha=repo.feature)

    assert started.build.branch is None


async def test_build__whole_checkout_without_artifact_path(manager: BuildManager, repo: Repo) -> None:
    service = build_service(repo.path, buildCommand="echo built > out.txt")
    service = Resource(service.id, service.kind, service.driver, {**service.spec, "artifactPath": None})

    build = await manager.wait((await manager.start_build(service, key="k1")).build.id, timeout=10)

    artifact = manager.artifact_path(build)
    assert build.status is BuildStatus.SUCCESS, build.error
    assert build.branch == "main"  # the repository's default branch
    assert sorted(p.name for p in artifact.iterdir()) == ["app.txt", "out.txt"]  # no .git


async def test_build__same_commit_is_reused(manager: BuildManager, repo: Repo) -> None:
    first = await manager.start_build(build_service(repo.path), key="k1", branch="main")
    await manager.wait(first.build.id, timeout=10)

    again = await manager.start_build(build_service(repo.path), key="k2", sha=repo.v2)
    fresh = await manager.start_build(build_service(repo.path), key="k3", branch="main", reuse=False)

    assert again.reused and again.build.id == first.build.id
    assert not fresh.reused and fresh.build.id != first.build.id


async def test_build__changed_build_command_is_not_reused(manager: BuildManager, repo: Repo) -> None:
    first = await manager.start_build(build_service(repo.path), key="k1", branch="main")
    await manager.wait(first.build.id, timeout=10)

    other = build_service(repo.path, buildCommand=BUILD_COMMAND + " && echo more")
    second = await manager.start_build(other, key="k2", branch="main")

    assert not second.reused and second.build.id != first.build.id


async def test_build__same_idempotency_key_twice_makes_one_build(manager: BuildManager, repo: Repo) -> None:
    first = await manager.start_build(build_service(repo.path), key="run/step/1", branch="main", reuse=False)
    second = await manager.start_build(build_service(repo.path), key="run/step/1", branch="main", reuse=False)

    assert second.build.id == first.build.id and second.reused
    folders = [p for p in manager.store.root.iterdir() if p.name.startswith("bld-")]
    assert len(folders) == 1


async def test_build__failing_command_says_exit_code_and_log_tail(manager: BuildManager, repo: Repo) -> None:
    command = "echo compiling; echo 'error: missing module foo' >&2; exit 3"
    started = await manager.start_build(build_service(repo.path, buildCommand=command), key="k1")

    build = await manager.wait(started.build.id, timeout=10)

    assert build.status is BuildStatus.FAILED and build.exit_code == 3
    assert build.error is not None
    assert "failed with exit code 3" in build.error
    assert "error: missing module foo" in build.error and build.log_path in build.error
    assert not manager.artifact_path(build).exists()


async def test_build__timeout_stops_the_command(manager: BuildManager, repo: Repo) -> None:
    service = build_service(repo.path, buildCommand="echo waiting; sleep 30", timeoutSeconds=0.5)
    began = time.monotonic()

    build = await manager.wait((await manager.start_build(service, key="k1")).build.id, timeout=10)

    assert build.status is BuildStatus.FAILED
    assert build.error is not None and "timed out after 0.5 s" in build.error and "waiting" in build.error
    assert time.monotonic() - began < 8


async def test_build__missing_artifact_path_fails_clearly(manager: BuildManager, repo: Repo) -> None:
    service = build_service(repo.path, buildCommand="true", artifactPath="build/out")

    build = await manager.wait((await manager.start_build(service, key="k1")).build.id, timeout=10)

    assert build.status is BuildStatus.FAILED
    assert build.error is not None and "spec.artifactPath 'build/out'" in build.error


async def test_build__missing_repository_is_refused(manager: BuildManager, tmp_path: Path) -> None:
    with pytest.raises(DriverError) as caught:
        await manager.start_build(build_service(tmp_path / "nowhere"), key="k1", branch="main")

    assert not caught.value.retryable
    assert "does not exist on this host" in str(caught.value) and "spec.repository" in str(caught.value)


async def test_build__folder_that_is_not_a_repository_is_refused(
    manager: BuildManager, tmp_path: Path
) -> None:
    (tmp_path / "plain").mkdir()

    with pytest.raises(DriverError) as caught:
        await manager.start_build(build_service(tmp_path / "plain"), key="k1", branch="main")

    assert not caught.value.retryable
    assert "cannot fetch repository" in str(caught.value) and "spec.repository" in str(caught.value)


async def test_build__missing_branch_lists_existing_branches(manager: BuildManager, repo: Repo) -> None:
    with pytest.raises(DriverError) as caught:
        await manager.start_build(build_service(repo.path), key="k1", branch="release")

    message = str(caught.value)
    assert not caught.value.retryable
    assert "branch 'release' does not exist" in message
    assert "main" in message and "feature" in message


async def test_build__missing_sha_is_refused(manager: BuildManager, repo: Repo) -> None:
    with pytest.raises(DriverError) as caught:
        await manager.start_build(build_service(repo.path), key="k1", sha="0" * 40)

    assert not caught.value.retryable and f"commit '{'0' * 40}' does not exist" in str(caught.value)


async def test_build__bad_spec_names_the_key(manager: BuildManager, repo: Repo) -> None:
    missing = Resource("api-builder", "build_service", "local", {"repository": str(repo.path)})
    misspelt = build_service(repo.path, buildCommnd="make")

    with pytest.raises(
        SpecError, match=r"build service 'api-builder' \(local driver\): spec.buildCommand is"
    ):
        await manager.start_build(missing, key="k1")
    with pytest.raises(SpecError, match=r"spec\.buildCommnd is not a known key"):
        await manager.start_build(misspelt, key="k2")


async def test_latest_build__newest_success_per_branch(manager: BuildManager, repo: Repo) -> None:
    first = await manager.start_build(build_service(repo.path), key="k1", branch="main")
    await manager.wait(first.build.id, timeout=10)
    v3 = repo.commit_on_main("v3")
    second = await manager.start_build(build_service(repo.path), key="k2", branch="main")
    await manager.wait(second.build.id, timeout=10)
    feature = await manager.start_build(build_service(repo.path), key="k3", branch="feature")
    await manager.wait(feature.build.id, timeout=10)
    repo.commit_on_main("v4")
    failing = build_service(repo.path, buildCommand="exit 1")
    await manager.wait((await manager.start_build(failing, key="k4", branch="main")).build.id, timeout=10)

    latest_main = await manager.latest_build("api-builder", "main")
    latest_any = await manager.latest_build("api-builder")

    assert latest_main is not None and latest_main.id == second.build.id and latest_main.commit == v3
    assert latest_any is not None and latest_any.id == feature.build.id
    assert await manager.latest_build("api-builder", "nope") is None
    assert await manager.latest_build("other-builder") is None


async def test_artifact__is_read_only(manager: BuildManager, repo: Repo) -> None:
    started = await manager.start_build(build_service(repo.path), key="k1")
    build = await manager.wait(started.build.id, timeout=10)
    artifact = manager.artifact_path(build)

    paths = [artifact, *artifact.rglob("*"), manager.store.manifest_path(build.id)]
    writable = [p for p in paths if p.stat().st_mode & (stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH)]
    assert writable == []
    if os.geteuid() != 0:  # root ignores permission bits
        with pytest.raises(PermissionError):
            (artifact / "app.txt").write_text("changed")


async def test_get_build__unknown_id(manager: BuildManager) -> None:
    with pytest.raises(BuildNotFoundError, match="build 'bld-000000000000' does not exist"):
        await manager.get_build("bld-000000000000")


_OWNER = """
import asyncio, sys
from pathlib import Path
from releaseflow.platform.driver import Resource
from releaseflow.platform.local.builds import BuildManager

async def main() -> None:
    manager = BuildManager(Path(sys.argv[1]))
    spec = {"repository": sys.argv[2], "buildCommand": "sleep 60"}
    started = await manager.start_build(Resource("api-builder", "build_service", "local", spec), key="k")
    print(started.build.id, flush=True)
    await asyncio.Event().wait()

asyncio.run(main())
"""


async def test_build__of_a_dead_process_is_marked_interrupted(tmp_path: Path, repo: Repo) -> None:
    root = tmp_path / "local"
    owner = await asyncio.create_subprocess_exec(
        sys.executable, "-c", _OWNER, str(root), str(repo.path), stdout=asyncio.subprocess.PIPE
    )
    assert owner.stdout is not None
    build_id = (await asyncio.wait_for(owner.stdout.readline(), timeout=10)).decode().strip()
    watcher = BuildManager(root)
    deadline = time.monotonic() + 10
    while (record := await watcher.get_build(build_id)).command_pid is None:
        assert time.monotonic() < deadline, "the build command never started"
        await asyncio.sleep(0.05)
    command_group = record.command_pid
    assert record.status is BuildStatus.RUNNING  # its owner lives: nobody else may fail it

    owner.send_signal(signal.SIGKILL)
    await owner.wait()
    restarted = BuildManager(root)
    await restarted.start()

    build = await restarted.get_build(build_id)
    assert build.status is BuildStatus.FAILED and build.error == INTERRUPTED
    deadline = time.monotonic() + 5
    while group_alive(command_group):
        assert time.monotonic() < deadline, "the orphaned build command was not stopped"
        await asyncio.sleep(0.05)
