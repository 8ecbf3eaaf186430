"""Jobs of the local driver: commands run to completion as detached processes, one folder per run.

Layout under ``<root>/jobs/<run id>/``::

    run.json     the run's record (atomically replaced; final once the run ended)
    output.log   stdout and stderr of the command
    exit-code    written by the wrapper shell when the command ends (see ``processes``)

A run's id is derived from the job and the idempotency key, so a repeated request finds the run the
first one started. Nothing watches a run in the background: each ``get`` looks at the process (pid
and start time) and at the exit file, so any releaseflow process, restarted or not, reads the same
answer, and the end time is the exit file's own modification time.
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
from releaseflow.platform.local.processes import (
    ProcessHandle,
    child_environment,
    now_utc,
    read_exit_code,
    spawn,
    stop_process,
    tail,
)
from releaseflow.platform.local.specs import JobSpec
from releaseflow.platform.local.state_files import optional_time, read_json, write_json

# A run recorded without a pid is still being started by some releaseflow process; past this age the
# process that was starting it must have died before it could record the pid.
STARTING_GRACE = timedelta(seconds=60)
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
    """Starts job runs under ``root`` and reports on them, across releaseflow restarts."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._lock = asyncio.Lock()  # one run() at a time: a repeated key must find the first run

    def _dir(self, run_id: str) -> Path:
        if not _RUN_ID.match(run_id):
            raise DriverError(f"'{run_id}' is not a job run id (run-<12 hex digits>)", retryable=False)
        return self.root / "jobs" / run_id

    async def run(
        self,
        job: Resource,
        artifact_dir: Path,
        artifact: Artifact,
        env_overrides: Mapping[str, str],
        key: str,
        command: str | None = None,
    ) -> JobRun:
        """Start the job (or ``command`` in its folder and environment); returns once it is started."""
        spec = JobSpec.parse(job)
        text = command if command is not None else spec.command
        env = child_environment(spec.env, env_overrides)
        seed = key or uuid.uuid4().hex
        run_id = "run-" + hashlib.sha256(f"{job.id}\0{seed}".encode()).hexdigest()[:12]
        folder = self._dir(run_id)
        async with self._lock:
            if read_json(folder / "run.json") is not None:
                return await self.get(run_id)
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
            }
            # Recorded before the process exists: a crash in between must not let a retry run it twice.
            write_json(folder / "run.json", record)
            try:
                handle = await spawn(
                    text,
                    cwd=artifact_dir,
                    env=env,
                    log_path=folder / "output.log",
                    exit_file=folder / "exit-code",
                )
            except DriverError as error:
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
        if record["status"] == JobRunStatus.RUNNING.value and _conclude(record, folder):
            write_json(folder / "run.json", record)
        return _run_from(record, folder)

    async def cancel(self, run_id: str, grace_seconds: float = 5.0) -> str:
        """Stop a running job run (its whole process group); says what was done."""
        folder = self._dir(run_id)
        async with self._lock:
            record = read_json(folder / "run.json")
            if record is None or record["status"] != JobRunStatus.RUNNING.value or not record["process"]:
                return ""
            await stop_process(ProcessHandle.from_data(record["process"]), grace_seconds)
            record.update(
                status=JobRunStatus.FAILED.value,
                endedAt=now_utc().isoformat(),
                exitCode=read_exit_code(folder / "exit-code"),
                error=f"job run {run_id} of '{record['jobId']}' was stopped: its release run was aborted",
            )
            write_json(folder / "run.json", record)
        return f"job run {run_id} was stopped"

    def logs(self, run_id: str, lines: int = 100) -> list[str]:
        return tail(self.log_path(run_id), lines)

    def log_path(self, run_id: str) -> Path:
        return self._dir(run_id) / "output.log"


def _conclude(record: dict[str, Any], folder: Path) -> bool:
    """Fill in the end of a run whose process is gone; False while it still runs."""
    process = ProcessHandle.from_data(record["process"]) if record["process"] else None
    exit_file = folder / "exit-code"
    if process is not None and process.is_alive():
        return False
    code = read_exit_code(exit_file)
    if process is None and code is None:
        started = datetime.fromisoformat(str(record["startedAt"]))
        if now_utc() - started < STARTING_GRACE:
            return False  # still being started, by this or another releaseflow process
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
