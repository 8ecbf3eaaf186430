"""Jobs of the local driver as real processes: exit codes, logs, environment, idempotency, adoption."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from tests.cleanup import kill_processes_under

from releaseflow.platform.driver import Artifact, DriverError, Resource
from releaseflow.platform.local.jobs import JobManager, JobRun, JobRunStatus
from releaseflow.platform.local.processes import group_alive

ARTIFACT = Artifact(kind="build", build_service="api-build", build_id="b-1", commit="abc123")


@pytest.fixture
async def folder(tmp_path: Path) -> AsyncIterator[Path]:
    artifact = tmp_path / "artifact"
    artifact.mkdir()
    yield artifact
    kill_processes_under(tmp_path)


def job(command: Any, **env: str) -> Resource:
    return Resource(id="migrate", kind="job", driver="local", spec={"command": command, "env": env})


async def ended(manager: JobManager, run: JobRun, timeout: float = 10.0) -> JobRun:
    deadline = time.monotonic() + timeout
    while (current := await manager.get(run.id)).status is JobRunStatus.RUNNING:
        assert time.monotonic() < deadline, f"job run {run.id} still running"
        await asyncio.sleep(0.02)
    return current


async def test_job__exit_zero_succeeds_with_its_log(tmp_path: Path, folder: Path) -> None:
    manager = JobManager(tmp_path / "root")
    (folder / "schema.sql").write_text("create table t;")

    run = await manager.run(job("echo migrating; cat schema.sql"), folder, ARTIFACT, {}, key="k1")
    done = await ended(manager, run)

    assert run.status is JobRunStatus.RUNNING and run.id.startswith("run-") and len(run.id) == 16
    assert (done.status, done.exit_code, done.error) == (JobRunStatus.SUCCEEDED, 0, "")
    assert done.ended_at is not None and done.duration_seconds is not None and done.duration_seconds >= 0
    assert manager.logs(run.id) == ["migrating", "create table t;"]
    assert done.log_path.read_text() == "migrating\ncreate table t;"
    assert done.artifact == ARTIFACT


async def test_job__non_zero_exit_fails_with_code_and_last_lines(tmp_path: Path, folder: Path) -> None:
    manager = JobManager(tmp_path / "root")

    run = await manager.run(job("echo 'relation users exists' >&2; exit 3"), folder, ARTIFACT, {}, key="k1")
    done = await ended(manager, run)

    assert (done.status, done.exit_code) == (JobRunStatus.FAILED, 3)
    assert "job 'migrate' exited with code 3" in done.error and "| relation users exists" in done.error


async def test_job__env_overrides_win_over_the_spec_and_command_overrides(
    tmp_path: Path, folder: Path
) -> None:
    manager = JobManager(tmp_path / "root")
    spec_job = job(["sh", "-c", 'echo "$A $B"'], A="spec-a", B="spec-b")

    run = await manager.run(spec_job, folder, ARTIFACT, {"B": "override-b"}, key="k1")
    other = await manager.run(spec_job, folder, ARTIFACT, {}, key="k2", command='echo "other $A"')

    assert (await ended(manager, run)).status is JobRunStatus.SUCCEEDED
    assert manager.logs(run.id) == ["spec-a override-b"]
    assert (await ended(manager, other)).command == 'echo "other $A"'
    assert manager.logs(other.id) == ["other spec-a"]


async def test_job__same_key_is_one_run(tmp_path: Path, folder: Path) -> None:
    manager = JobManager(tmp_path / "root")
    counted = job("echo once >> runs.txt")

    runs = await asyncio.gather(*(manager.run(counted, folder, ARTIFACT, {}, key="same") for _ in range(3)))
    await ended(manager, runs[0])

    assert {run.id for run in runs} == {runs[0].id}
    assert (folder / "runs.txt").read_text() == "once\n"


async def test_job__a_new_manager_adopts_a_running_job_then_reads_its_exit_code(
    tmp_path: Path, folder: Path
) -> None:
    first = JobManager(tmp_path / "root")
    gate = folder / "go"
    run = await first.run(job(f"echo waiting; while [ ! -f {gate} ]; do sleep 0.02; done; exit 5"), folder,
                          ARTIFACT, {}, key="k1")  # fmt: skip

    second = JobManager(tmp_path / "root")  # releaseflow restarted while the job runs
    adopted = await second.get(run.id)
    assert (adopted.status, adopted.pid) == (JobRunStatus.RUNNING, run.pid)
    gate.touch()
    done = await ended(second, run)

    assert (done.status, done.exit_code) == (JobRunStatus.FAILED, 5)
    assert (await JobManager(tmp_path / "root").get(run.id)).exit_code == 5  # recorded for good


async def test_job__a_killed_job_fails_without_exit_code(tmp_path: Path, folder: Path) -> None:
    manager = JobManager(tmp_path / "root")
    run = await manager.run(job("sleep 30"), folder, ARTIFACT, {}, key="k1")
    assert run.pid is not None

    os.killpg(run.pid, signal.SIGKILL)
    done = await ended(manager, run)

    assert (done.status, done.exit_code) == (JobRunStatus.FAILED, None)
    assert "killed by a signal" in done.error


async def test_job__a_request_killed_before_it_recorded_the_run_leaves_nothing_to_settle(
    tmp_path: Path, folder: Path
) -> None:
    # kill -9 between taking the launch lock and writing run.json: the run's folder holds only the lock.
    lonely = tmp_path / "root" / "jobs" / "run-0123456789ab"
    lonely.mkdir(parents=True)
    (lonely / "launch.lock").touch()
    manager = JobManager(tmp_path / "root")

    await manager.start()  # a restarted releaseflow comes up

    run = await manager.run(job("true"), folder, ARTIFACT, {}, key="k1")
    assert (await ended(manager, run)).status is JobRunStatus.SUCCEEDED


async def test_job__missing_folder_or_run_is_reported(tmp_path: Path, folder: Path) -> None:
    manager = JobManager(tmp_path / "root")

    run = await manager.run(job("true"), folder / "missing", ARTIFACT, {}, key="k1")
    assert run.status is JobRunStatus.FAILED and "does not exist" in run.error
    with pytest.raises(DriverError, match="does not exist"):
        await manager.get("run-000000000000")


async def test_job__cancel_stops_the_whole_run_and_records_why(tmp_path: Path, folder: Path) -> None:
    manager = JobManager(tmp_path / "root")
    run = await manager.run(job("sleep 30 & sleep 30; wait"), folder, ARTIFACT, {}, key="k1")
    assert run.pid is not None

    said = await manager.cancel(run.id, grace_seconds=2)

    done = await manager.get(run.id)
    assert said == f"job run {run.id} was stopped"
    assert done.status is JobRunStatus.FAILED
    assert "its release run was aborted" in done.error
    assert not group_alive(run.pid)  # the job and its children are gone (zombies aside)
    assert await manager.cancel(run.id) == ""  # an ended run has nothing left to stop
