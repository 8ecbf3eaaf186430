"""Logs through the driver contract (``releaseflow.engine.logs``): what ``releaseflow logs`` reads."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from tests.cleanup import kill_processes_under

from releaseflow.domain.errors import NotFoundError
from releaseflow.engine.logs import read_logs
from releaseflow.platform.driver import Artifact, DriverError, DriverRegistry, LogSource, Resource
from releaseflow.platform.local.driver import LocalDriver
from releaseflow.platform.local.jobs import JobRunStatus
from releaseflow.testing import FakeDriver

ARTIFACT = Artifact(kind="build", build_service="api-build", build_id="b-1", commit="abc123")


@pytest.fixture
async def local(tmp_path: Path) -> AsyncIterator[LocalDriver]:
    yield LocalDriver(tmp_path / "root")
    kill_processes_under(tmp_path)


async def test_read_logs__tail_of_a_local_job_run(tmp_path: Path, local: LocalDriver) -> None:
    folder = tmp_path / "artifact"
    folder.mkdir()
    job = Resource(
        id="migrate", kind="job", driver="local", spec={"command": "printf 'one\\ntwo\\nthree\\n'"}
    )
    run = await local.jobs.run(job, folder, ARTIFACT, {}, key="k1")
    deadline = time.monotonic() + 10
    while (await local.jobs.get(run.id)).status is JobRunStatus.RUNNING:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    drivers = DriverRegistry({"local": local})

    assert await read_logs(drivers, "local", LogSource.JOB_RUN, run.id, lines=2) == ["two", "three"]
    assert await read_logs(drivers, "local", LogSource.JOB_RUN, run.id, lines=100) == ["one", "two", "three"]


async def test_read_logs__unknown_service_is_not_found(local: LocalDriver) -> None:
    with pytest.raises(NotFoundError, match="no log for service 'api'"):
        await read_logs(DriverRegistry({"local": local}), "local", LogSource.SERVICE, "api", lines=10)


async def test_read_logs__a_key_that_cannot_name_a_log_is_refused(local: LocalDriver) -> None:
    with pytest.raises(DriverError, match="not a job run id"):
        await read_logs(DriverRegistry({"local": local}), "local", LogSource.JOB_RUN, "../../etc", lines=10)


async def test_read_logs__driver_without_logs_says_so() -> None:
    with pytest.raises(NotFoundError, match="the fake driver keeps no logs"):
        await read_logs(DriverRegistry({"fake": FakeDriver()}), "fake", LogSource.BUILD, "bld-1", lines=10)
