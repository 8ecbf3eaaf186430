"""Jobs of the local driver: commands run to completion as detached processes, one folder per run.

Layout under ``<root>/jobs/<run id>/``::

    run.json      the run's record (atomically replaced; final once the run ended)
    launch.lock   flock held while the run is being started
    process.json  the started process (pid, start time), written by it before its command runs
    output.log    stdout and stderr of the command
    exit-code     written by the wrapper shell when the command ends (see ``processes``)

A run's id is derived from the job and the idempotency key, so a repeated request finds the run the
first one started and adopts it, across restarts and kill -9 of releaseflow (see ``JobManager``).
Nothing watches a run in the background: each ``get`` looks at the process (pid and start time) and
at the exit file, so any releaseflow process, restarted or not, reads the same answer, and the end time
is the exit file's own modification time.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Any

from releaseflow.platform.driver import Artifact, DriverError, Resource
from releaseflow.platform.file_lock import open_lock, try_lock
from releaseflow.platform.local.processes import (
    ProcessHandle,
    child_environment,
    launch_lock,
    now_utc,
    read_exit_code,
    read_marker,
    spawn,
    stop_process,
    tail,
)
from releaseflow.platform.local.specs import JobSpec
from releaseflow.platform.local.state_files import optional_time, read_json, write_json

# A run recorded by an older releaseflow (before launch markers) without a pid is still being started
# by some releaseflow process; past this age the process that was starting it must have died.
STARTING_GRACE = timedelta(seconds=60)
# How long a request waits for another one starting the same run (a launch takes milliseconds).
LAUNCH_TIMEOUT_SECONDS = 30.0
_LOCK = "launch.lock"  # held while a run is being started (see processes.launch_lock)
_MARKER = "process.json"  # written by the started process itself before its command runs
_RUN_ID = re.compile(r"^run-[0-9a-f]{12}$")


class JobRunStatus(StrEnum):
    RUNNING = "running"  # set by run(): the command was started and has not ended yet
    SUCCEEDED = "succeeded"  # set by get(): the command exited 0
    FAILED = "failed"  # set by get(): non-zero exit, killed, or it could not be started


@dataclass(frozen=True)
class JobRun:
    id: str  # run-<12 hex>
    job_id: str
    key: str
    status: JobRunStatus
    command: str
    artifact: Artifact
    exit_code: int | None
    log_path: Path
    started_at: datetime
    ended_at: datetime | None
    error: str  # what happened and what to check; empty unless failed
    pid: int | None

    @property
    def duration_seconds(self) -> float | None:
        return (self.ended_at - self.started_at).total_seconds() if self.ended_at else None


class JobManager:
    """Starts job runs under ``root`` and reports on them, across releaseflow restarts.

    A run is started at most once per job and idempotency key. ``run`` decides under the run's launch
    lock (``processes.launch_lock``), which the launcher holds until the started process has written
    its marker; so whatever instant a releaseflow process dies at, the run is either "never started"
    (no marker, lock free: the next request with the key starts it) or "started and findable".
    """

    def __init__(self, root: Path) -> None:
        self.root = root

    def _dir(self, run_id: str) -> Path:
        if not _RUN_ID.match(run_id):
            raise DriverError(f"'{run_id}' is not a job run id (run-<12 hex digits>)", retryable=False)
        return self.root / "jobs" / run_id

    async def start(self) -> None:
        """Settle the runs left in flight: each ended one is concluded, one that never ran is failed."""
        jobs = self.root / "jobs"
        names = await asyncio.to_thread(lambda: sorted(os.listdir(jobs)) if jobs.is_dir() else [])
        for name in names:
            # A folder without its record: the request died between taking the launch lock and
            # recording the run, so nothing ran (the next request with the key starts it), or it is
            # recording it right now.
            recorded = await asyncio.to_thread((jobs / name / "run.json").exists)
            if _RUN_ID.match(name) and recorded:
                await self.get(name)

    async def run(
        self,
        job: Resource,
        artifact_dir: Path,
        artifact: Artifact,
        env_overrides: Mapping[str, str],
        key: str,
        command: str | None = None,
    ) -> JobRun:
        """Start the job (or ``command`` in its folder and environment); returns once it is started.

        A key seen before answers the run it started (running or ended) instead of starting another.
        """
        spec = JobSpec.parse(job)
        text = command if command is not None else spec.command
        env = child_environment(spec.env, env_overrides)
        seed = key or uuid.uuid4().hex
        run_id = "run-" + hashlib.sha256(f"{job.id}\0{seed}".encode()).hexdigest()[:12]
        folder = self._dir(run_id)
        async with launch_lock(folder / _LOCK, timeout=LAUNCH_TIMEOUT_SECONDS) as lock_fd:
            earlier = read_json(folder / "run.json")
            if earlier is not None and not _never_ran(earlier, folder):
                return await self.get(run_id)  # adopt what that request started
            record: dict[str, Any] = {
                "id": run_id,
                "jobId": job.id,
                "key": key,
                "command": text,
                "artifact": artifact.to_data(),
                "artifactDir": str(artifact_dir),
                "status": JobRunStatus.RUNNING.value,
                "startedAt": now_utc().isoformat(),
                "endedAt": None,
                "exitCode": None,
                "error": "",
                "process": None,
                "launch": _MARKER,  # this run's start is proven by its marker file
            }
            # Recorded before the process exists, so a request with the same key finds it.
            write_json(folder / "run.json", record)
            try:
                handle = await spawn(
                    text,
                    cwd=artifact_dir,
                    env=env,
                    log_path=folder / "output.log",
                    exit_file=folder / "exit-code",
                    marker=folder / _MARKER,
                    lock_fd=lock_fd,
                )
            except DriverError as error:
                if read_marker(folder / _MARKER) is not None:
                    return await self.get(run_id)  # it did start: the launcher failed after that
                record.update(
                    status=JobRunStatus.FAILED.value, endedAt=now_utc().isoformat(), error=str(error)
                )
                write_json(folder / "run.json", record)
                return _run_from(record, folder)
            record["process"] = handle.to_data()
            write_json(folder / "run.json", record)
        return _run_from(record, folder)

    async def get(self, run_id: str) -> JobRun:
        """The run as it stands now; a run found ended is recorded as final."""
        folder = self._dir(run_id)
        record = read_json(folder / "run.json")
        if record is None:
            raise DriverError(f"job run '{run_id}' does not exist on this host", retryable=False)
        if record["status"] != JobRunStatus.RUNNING.value:
            return _run_from(record, folder)
        if not record["process"] and record.get("launch") == _MARKER:
            record = await asyncio.to_thread(_settle_start, record, folder)
        if record["status"] == JobRunStatus.RUNNING.value and _conclude(record, folder):
            write_json(folder / "run.json", record)
        return _run_from(record, folder)

    async def cancel(self, run_id: str, grace_seconds: float = 5.0) -> str:
        """Stop a running job run (its whole process group); says what was done."""
        folder = self._dir(run_id)
        async with launch_lock(folder / _LOCK, timeout=LAUNCH_TIMEOUT_SECONDS):
            record = read_json(folder / "run.json")
            if record is None or record["status"] != JobRunStatus.RUNNING.value:
                return ""
            process = record["process"] or _marker_data(folder)
            if not process:
                return ""
            await stop_process(ProcessHandle.from_data(process), grace_seconds)
            record.update(
                status=JobRunStatus.FAILED.value,
                endedAt=now_utc().isoformat(),
                exitCode=read_exit_code(folder / "exit-code"),
                process=process,
                error=f"job run {run_id} of '{record['jobId']}' was stopped: its release run was aborted",
            )
            write_json(folder / "run.json", record)
        return f"job run {run_id} was stopped"

    def logs(self, run_id: str, lines: int = 100) -> list[str]:
        return tail(self.log_path(run_id), lines)

    def log_path(self, run_id: str) -> Path:
        return self._dir(run_id) / "output.log"


def _marker_data(folder: Path) -> dict[str, Any] | None:
    handle = read_marker(folder / _MARKER)
    return handle.to_data() if handle is not None else None


def _never_ran(record: Mapping[str, Any], folder: Path) -> bool:
    """Whether a run's command certainly never ran (call it holding the run's launch lock).

    Either a restart settled it so, or it is recorded running without a process while nobody holds
    the lock and the launcher left no marker: the releaseflow process that meant to start it died
    before the launcher got as far as running it.
    """
    if record.get("neverRan"):
        return True
    return (
        record.get("launch") == _MARKER
        and record["status"] == JobRunStatus.RUNNING.value
        and not record["process"]
        and read_marker(folder / _MARKER) is None
    )


def _settle_start(record: dict[str, Any], folder: Path) -> dict[str, Any]:
    """A run recorded without its process: the process from its marker, or "never ran", or as it is
    while some releaseflow process still starts it (its launch lock is held; never waited for)."""
    fd = open_lock(folder / _LOCK)
    try:
        if not try_lock(fd):
            return record
        # Read again under the lock: the starter may have finished since the first read.
        record = read_json(folder / "run.json") or record
        if record["status"] != JobRunStatus.RUNNING.value or record["process"]:
            return record
        record["process"] = _marker_data(folder)
        if record["process"] is None:
            # Nobody is starting it and its launcher left no marker: its command never ran.
            record.update(
                status=JobRunStatus.FAILED.value,
                endedAt=now_utc().isoformat(),
                neverRan=True,
                error=(
                    f"releaseflow stopped while it was starting job '{record['jobId']}'; it never ran"
                    " (a new request with the same idempotency key starts it)"
                ),
            )
        write_json(folder / "run.json", record)
        return record
    finally:
        os.close(fd)


def _conclude(record: dict[str, Any], folder: Path) -> bool:
    """Fill in the end of a run whose process is gone; False while it still runs."""
    process = ProcessHandle.from_data(record["process"]) if record["process"] else None
    exit_file = folder / "exit-code"
    if process is not None and process.is_alive():
        return False
    code = read_exit_code(exit_file)
    if process is None and code is None:
        started = datetime.fromisoformat(str(record["startedAt"]))
        if record.get("launch") == _MARKER or now_utc() - started < STARTING_GRACE:
            return False  # still being started (a run recorded by an older releaseflow: for a while)
    log_path = folder / "output.log"
    ended = datetime.fromtimestamp(os.stat(exit_file).st_mtime, UTC) if code is not None else now_utc()
    record.update(endedAt=ended.isoformat(), exitCode=code)
    if code == 0:
        record["status"] = JobRunStatus.SUCCEEDED.value
        return True
    record["status"] = JobRunStatus.FAILED.value
    if code is not None:
        last = tail(log_path, 10)
        shown = "\n".join(f"  | {line}" for line in last) if last else "  (the command wrote nothing)"
        record["error"] = (
            f"job '{record['jobId']}' exited with code {code} running '{record['command']}'. "
            f"Last lines of {log_path}:\n{shown}"
        )
    elif process is None:
        record["error"] = (
            f"releaseflow stopped while starting job '{record['jobId']}'; it may or may not have run "
            f"(see {log_path}). Run it again if it is safe to."
        )
    else:
        record["error"] = (
            f"job '{record['jobId']}' ended without an exit code: it (or its wrapper) was killed by a "
            f"signal. Check {log_path} and the host's logs (out of memory?)."
        )
    return True


def _run_from(record: Mapping[str, Any], folder: Path) -> JobRun:
    ended = record.get("endedAt")
    process = record.get("process")
    return JobRun(
        id=str(record["id"]),
        job_id=str(record["jobId"]),
        key=str(record["key"]),
        status=JobRunStatus(record["status"]),
        command=str(record["command"]),
        artifact=Artifact.from_data(record["artifact"]),
        exit_code=record.get("exitCode"),
        log_path=folder / "output.log",
        started_at=datetime.fromisoformat(str(record["startedAt"])),
        ended_at=optional_time(ended),
        error=str(record.get("error") or ""),
        pid=int(process["pid"]) if process else None,
    )
