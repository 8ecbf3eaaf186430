"""Logs through the driver contract (``releaseflow.engine.logs``): what ``releaseflow logs`` reads."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable
from pathlib import Path

import pytest
from tests.cleanup import kill_processes_under

from releaseflow.domain.errors import NotFoundError
from releaseflow.engine.logs import read_log_lines, read_logs
from releaseflow.platform.driver import (
    Artifact,
    DriverError,
    DriverRegistry,
    LogLines,
    LogSource,
    Resource,
)
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


async def job_log(tmp_path: Path, local: LocalDriver, command: str) -> str:
    """The id of a local job run of ``command``, ended."""
    folder = tmp_path / "artifact"
    folder.mkdir(exist_ok=True)
    job = Resource(id="migrate", kind="job", driver="local", spec={"command": command})
    run = await local.jobs.run(job, folder, ARTIFACT, {}, key="k1")
    deadline = time.monotonic() + 10
    while (await local.jobs.get(run.id)).status is JobRunStatus.RUNNING:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.02)
    return run.id


async def test_read_log_lines__numbered_from_the_start_past_a_position(
    tmp_path: Path, local: LocalDriver
) -> None:
    drivers = DriverRegistry({"local": local})
    # A last line without its newline is not complete yet: it is not numbered nor given.
    run_id = await job_log(tmp_path, local, "printf 'one\\ntwo\\nthree\\nhalf'")

    def read(after: int | None, limit: int) -> Awaitable[LogLines]:
        return read_log_lines(drivers, "local", LogSource.JOB_RUN, run_id, after=after, limit=limit)

    assert await read(None, 2) == LogLines(first=2, lines=["two", "three"], total=3)
    assert await read(0, 2) == LogLines(first=1, lines=["one", "two"], total=3)
    assert await read(2, 100) == LogLines(first=3, lines=["three"], total=3)
    assert await read(3, 100) == LogLines(first=4, lines=[], total=3)
    assert await read(50, 100) == LogLines(first=51, lines=[], total=3)


async def test_read_log_lines__exact_past_what_a_tail_reads(tmp_path: Path, local: LocalDriver) -> None:
    # About 2 MB: more than the 256 KiB a tail reads, so positions are counted over the whole file,
    # and past the first 1 MiB block the lines are read from the block they begin in.
    run_id = await job_log(tmp_path, local, "seq 1 300000")
    drivers = DriverRegistry({"local": local})

    def read(after: int | None, limit: int) -> Awaitable[LogLines]:
        return read_log_lines(drivers, "local", LogSource.JOB_RUN, run_id, after=after, limit=limit)

    assert await read(None, 2) == LogLines(first=299_999, lines=["299999", "300000"], total=300_000)
    assert await read(49_999, 3) == LogLines(first=50_000, lines=["50000", "50001", "50002"], total=300_000)
    # Across a block's end: lines around the 1 MiB mark, and far in the second block.
    around = await read(149_000, 2_000)
    assert around.lines == [str(number) for number in range(149_001, 151_001)]
    assert (await read(249_999, 1)).lines == ["250000"]


async def test_read_logs__a_tail_and_numbered_lines_split_lines_alike(
    tmp_path: Path, local: LocalDriver
) -> None:
    # A progress bar redrawn with "\r" stays one line; "\r\n" ends a line like "\n".
    run_id = await job_log(tmp_path, local, "printf 'start\\r\\nbar 1%%\\rbar 100%%\\nend\\n'")
    drivers = DriverRegistry({"local": local})

    numbered = await read_log_lines(drivers, "local", LogSource.JOB_RUN, run_id, after=None, limit=10)
    tail = await read_logs(drivers, "local", LogSource.JOB_RUN, run_id, lines=10)

    assert numbered.lines == ["start", "bar 1%\rbar 100%", "end"]
    assert tail[-3:] == numbered.lines


async def test_read_logs__unknown_service_is_not_found(local: LocalDriver) -> None:
    with pytest.raises(NotFoundError, match="no log for service 'api'"):
        await read_logs(DriverRegistry({"local": local}), "local", LogSource.SERVICE, "api", lines=10)


async def test_read_logs__a_key_that_cannot_name_a_log_is_refused(local: LocalDriver) -> None:
    with pytest.raises(DriverError, match="not a job run id"):
        await read_logs(DriverRegistry({"local": local}), "local", LogSource.JOB_RUN, "../../etc", lines=10)


async def test_read_logs__driver_without_logs_says_so() -> None:
    with pytest.raises(NotFoundError, match="the fake driver keeps no logs"):
        await read_logs(DriverRegistry({"fake": FakeDriver()}), "fake", LogSource.BUILD, "bld-1", lines=10)


async def test_read_log_lines__driver_without_logs_says_so() -> None:
    with pytest.raises(NotFoundError, match="the fake driver keeps no logs"):
        drivers = DriverRegistry({"fake": FakeDriver()})
        await read_log_lines(drivers, "fake", LogSource.BUILD, "bld-1", after=None, limit=10)
