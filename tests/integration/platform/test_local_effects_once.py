"""Each effect of the local driver at most once: a job run per idempotency key, counted by the job
itself (it appends a line to a file), across new driver objects and kill -9 of the releaseflow process
at any instant of ``perform``."""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from tests.cleanup import kill_processes_under
from tests.integration.platform.local_support import Repo

from releaseflow.platform.driver import (
    AnswerState,
    Artifact,
    DriverAnswer,
    DriverRequest,
    Operation,
    Resource,
)
from releaseflow.platform.local.driver import LocalDriver
from releaseflow.platform.local.state_files import read_json

# Runs one RUN_JOB through a LocalDriver in a process of its own, so the test can kill -9 it. ``mode``
# holds that process at an exact instant (``before-record``: the run's launch lock is taken, nothing
# is recorded yet; ``before-launch``: the run is recorded, the launcher not yet started;
# ``after-launch``: the job was started, the record does not say so yet) or lets it run.
PERFORM = """\
import asyncio, json, sys, time
from releaseflow.platform.driver import Artifact, DriverRequest, Operation, Resource
from releaseflow.platform.local import jobs
from releaseflow.platform.local.driver import LocalDriver

root, job_json, artifact_json, key, mode = sys.argv[1:6]
real_spawn, real_write_json = jobs.spawn, jobs.write_json

def write_json(*args, **kwargs):
    if mode == "before-record":
        print("held", flush=True)
        time.sleep(3600)
    return real_write_json(*args, **kwargs)

jobs.write_json = write_json

async def held(*args, **kwargs):
    if mode == "before-launch":
        print("held", flush=True)
        await asyncio.sleep(3600)
    handle = await real_spawn(*args, **kwargs)
    if mode == "after-launch":
        print("held", flush=True)
        await asyncio.sleep(3600)
    return handle

jobs.spawn = held
job = Resource(**json.loads(job_json))
request = DriverRequest(Operation.RUN_JOB, job, {"jobId": job.id}, key,
                        artifact=Artifact.from_data(json.loads(artifact_json)))

async def main():
    driver = LocalDriver(__import__("pathlib").Path(root))
    await driver.start()
    print("ready", flush=True)
    answer = await driver.perform(request)
    print("answered", answer.state.value, flush=True)

asyncio.run(main())
"""


@dataclass
class Setup:
    root: Path
    job: Resource
    artifact: Artifact
    count: Path

    def request(self, key: str) -> DriverRequest:
        return DriverRequest(Operation.RUN_JOB, self.job, {"jobId": self.job.id}, key, artifact=self.artifact)

    def lines(self) -> list[str]:
        return self.count.read_text().splitlines() if self.count.exists() else []

    def perform_in_process(self, key: str, mode: str = "run") -> subprocess.Popen[str]:
        job = {
            "id": self.job.id,
            "kind": self.job.kind,
            "driver": self.job.driver,
            "spec": dict(self.job.spec),
        }
        return subprocess.Popen(
            [sys.executable, "-c", PERFORM, str(self.root), json.dumps(job),
             json.dumps(self.artifact.to_data()), key, mode],
            stdout=subprocess.PIPE,
            text=True,
            start_new_session=True,  # so a test can kill its whole group (the launcher too)
        )  # fmt: skip


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    root = tmp_path / "local"
    repo = Repo(tmp_path / "repo")
    builder = Resource(
        "builder", "build_service", "local", {"repository": str(repo.path), "buildCommand": "true"}
    )
    driver = LocalDriver(root)
    await driver.start()
    build = await driver.perform(DriverRequest(Operation.START_BUILD, builder, {"id": "builder"}, "build"))
    await driver.builds.wait(build.data["id"], timeout=30)
    artifact, _ = await driver.resolve_build({"build": build.data["id"]}, {"builder": builder})
    await driver.stop()
    count = tmp_path / "count.txt"
    # Slow enough that a kill often lands while the job still runs.
    job = Resource("migrate", "job", "local", {"command": f'echo "$$" >> {count}; sleep 0.2'})
    yield Setup(root, job, artifact, count)
    kill_processes_under(tmp_path)


async def settle(driver: LocalDriver, request: DriverRequest, answer: DriverAnswer) -> DriverAnswer:
    deadline = time.monotonic() + 15
    while answer.state is AnswerState.IN_PROGRESS:
        assert time.monotonic() < deadline, f"still in progress: {answer}"
        await asyncio.sleep(0.02)
        answer = await driver.follow(request, answer.handle)
    return answer


async def restarted(root: Path) -> LocalDriver:
    """A new driver over the same state, as a restarted releaseflow process makes it."""
    driver = LocalDriver(root)
    await driver.start()
    return driver


def held_at(setup: Setup, key: str, mode: str) -> None:
    """Run ``perform`` in a process of its own, hold it at ``mode``'s instant and kill -9 it there."""
    # As a context manager, Popen closes its pipe and reaps the process (killed in any case).
    with setup.perform_in_process(key, mode) as process:
        try:
            assert process.stdout is not None
            for line in process.stdout:
                if line.strip() == "held":
                    break
        finally:
            os.killpg(process.pid, signal.SIGKILL)


def run_records(root: Path) -> list[dict[str, object]]:
    return [record for path in sorted(root.glob("jobs/*/run.json")) if (record := read_json(path))]


async def test_run_job__same_key_twice_is_one_run(setup: Setup) -> None:
    driver = await restarted(setup.root)

    first = await driver.perform(setup.request("run-1/step/1"))
    again = await driver.perform(setup.request("run-1/step/1"))
    done = await settle(driver, setup.request("run-1/step/1"), again)

    assert first.data["id"] == again.data["id"] and done.state is AnswerState.DONE
    assert len(setup.lines()) == 1


async def test_run_job__a_new_driver_with_the_same_key_adopts_the_run(setup: Setup) -> None:
    first = await (await restarted(setup.root)).perform(setup.request("run-1/step/1"))

    driver = await restarted(setup.root)
    adopted = await driver.perform(setup.request("run-1/step/1"))
    done = await settle(driver, setup.request("run-1/step/1"), adopted)

    assert adopted.data["id"] == first.data["id"] and done.state is AnswerState.DONE
    assert len(setup.lines()) == 1


async def test_run_job__killed_before_recording_the_run__a_new_driver_starts_and_the_key_runs_once(
    setup: Setup,
) -> None:
    """Found by the chaos soak: a worker killed here left a run folder without a record, and every
    releaseflow process started on that host afterwards exited ("job run ... does not exist")."""
    held_at(setup, "run-1/step/1", "before-record")
    assert [path.name for path in (setup.root / "jobs").iterdir()] and run_records(setup.root) == []

    driver = await restarted(setup.root)
    answer = await settle(
        driver, setup.request("run-1/step/1"), await driver.perform(setup.request("run-1/step/1"))
    )

    assert answer.state is AnswerState.DONE, answer.message
    assert len(setup.lines()) == 1


async def test_run_job__killed_before_the_launch__start_settles_it_and_the_same_key_runs_it_once(
    setup: Setup,
) -> None:
    held_at(setup, "run-1/step/1", "before-launch")

    driver = await restarted(setup.root)
    [record] = run_records(setup.root)
    assert record["status"] == "failed" and record["neverRan"] is True
    assert "releaseflow stopped while it was starting job 'migrate'; it never ran" in str(record["error"])
    answer = await settle(
        driver, setup.request("run-1/step/1"), await driver.perform(setup.request("run-1/step/1"))
    )

    assert answer.state is AnswerState.DONE, answer.message
    assert len(setup.lines()) == 1


async def test_run_job__killed_after_the_launch__the_same_key_adopts_the_started_job(setup: Setup) -> None:
    held_at(setup, "run-1/step/1", "after-launch")

    driver = await restarted(setup.root)
    [record] = run_records(setup.root)
    assert record["status"] in ("running", "succeeded") and record["process"]  # found by its marker
    answer = await settle(
        driver, setup.request("run-1/step/1"), await driver.perform(setup.request("run-1/step/1"))
    )

    assert answer.state is AnswerState.DONE, answer.message
    assert len(setup.lines()) == 1


async def test_start__settles_runs_that_ended_while_nobody_looked(setup: Setup) -> None:
    driver = await restarted(setup.root)
    answer = await driver.perform(setup.request("run-1/step/1"))
    assert answer.state is AnswerState.IN_PROGRESS
    await asyncio.sleep(0.5)  # the job ends; nobody follows it (its releaseflow died)

    await restarted(setup.root)

    [record] = run_records(setup.root)
    assert (record["status"], record["exitCode"]) == ("succeeded", 0)


@pytest.mark.parametrize("kill", ["process", "group"])
async def test_run_job__kill_9_at_any_instant_of_perform__one_run_per_key(setup: Setup, kill: str) -> None:
    chance = random.Random(7)
    keys = [f"run-{index}/step/1" for index in range(6)]
    for key in keys:
        with setup.perform_in_process(key) as process:
            try:
                assert process.stdout is not None and process.stdout.readline().strip() == "ready"
                await asyncio.sleep(chance.uniform(0, 0.08))  # somewhere in perform: before, in or after
            finally:
                if kill == "group":
                    os.killpg(process.pid, signal.SIGKILL)  # releaseflow and a launcher it may be running
                else:
                    os.kill(process.pid, signal.SIGKILL)
        driver = await restarted(setup.root)
        answer = await settle(driver, setup.request(key), await driver.perform(setup.request(key)))
        assert answer.state is AnswerState.DONE, answer.message

    # Every key's run ended DONE, so each ran at least once; as many lines as keys: none twice.
    assert len(setup.lines()) == len(keys)
    assert all(record["status"] == "succeeded" for record in run_records(setup.root))


async def test_start__a_run_folder_without_its_record_is_a_run_that_never_started(setup: Setup) -> None:
    # What a kill -9 between taking a run's launch lock and recording the run leaves.
    run_id = "run-" + hashlib.sha256(f"{setup.job.id}\0run-1/step/1".encode()).hexdigest()[:12]
    folder = setup.root / "jobs" / run_id
    folder.mkdir(parents=True)
    (folder / "launch.lock").touch()

    driver = await restarted(setup.root)
    answer = await settle(
        driver, setup.request("run-1/step/1"), await driver.perform(setup.request("run-1/step/1"))
    )

    assert answer.state is AnswerState.DONE and answer.data["id"] == run_id, answer.message
    assert len(setup.lines()) == 1
