"""Jobs: containers run to completion.

A job run starts a container from the job's image (with the job's command and env, and the run's
overrides), is watched by a background task until it exits, and is recorded under
``<root>/jobs``: exit code, status and the tail of its logs (the full log beside the record). The
container is removed once its logs are kept, so runs do not pile up in the engine.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from releaseflow.platform.docker import health
from releaseflow.platform.docker.client import DockerClient, DockerError, RegistryCredentials
from releaseflow.platform.docker.records import (
    LABEL_KIND,
    LABEL_MANAGED,
    LABEL_PROJECT,
    LABEL_RECORD,
    LABEL_RESOURCE,
    LABEL_STAGE,
    LOGGER,
    Records,
    Supervisor,
    new_id,
    safe_name,
    utc_now,
)
from releaseflow.platform.docker.services import container_config
from releaseflow.platform.driver import AnswerState, DriverAnswer, DriverError
from releaseflow.platform.file_lock import file_lock

RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
LOG_TAIL_CHARS = 4000
LAUNCH_TIMEOUT_SECONDS = 60.0  # how long a request waits for another one starting the same run


class RunBeingStarted(DriverError):
    """The run's lock is held: another request (maybe of another process) is starting it."""


def run_answer(record: Mapping[str, Any]) -> DriverAnswer:
    data = {
        "id": record["id"],
        "jobId": record["jobId"],
        "exitCode": record.get("exitCode"),
        "status": record["status"],
        "logs": record.get("logs", ""),
        "image": record["image"],
    }
    handle = {"kind": "jobRun", "id": record["id"]}
    if record["status"] == SUCCEEDED:
        return DriverAnswer(
            AnswerState.DONE, data, f"job '{record['jobId']}' run {record['id']} succeeded", handle
        )
    if record["status"] == FAILED:
        return DriverAnswer(AnswerState.FAILED, data, str(record.get("message")), handle)
    return DriverAnswer(AnswerState.IN_PROGRESS, data, f"job '{record['jobId']}' is running", handle)


class Jobs:
    def __init__(self, client: DockerClient, root: Path, supervisor: Supervisor) -> None:
        self._client = client
        self._runs = Records(root / "jobs")
        self._supervisor = supervisor

    def get(self, run_id: str) -> dict[str, Any] | None:
        return self._runs.load(run_id)

    async def run(
        self,
        *,
        project: str,
        stage: str,
        job: str,
        image: str,
        credentials: RegistryCredentials | None,
        spec: Mapping[str, Any],
        env: Mapping[str, Any],
        command: Sequence[str] | None,
        entrypoint: Sequence[str] | None,
        key: str,
        pull: bool,
    ) -> DriverAnswer:
        """Start a run of ``job`` in a new container; answers IN_PROGRESS with the run's handle.

        At most one container runs per job and idempotency key: the run's id, and so its container's
        name, derive from the key, and the record is written before the container is made. A request
        with a key seen before adopts that run: it makes the container if the first request died
        before that, starts it if it was made but never started, and otherwise only follows it.
        """
        run_id = run_id_for(self._runs.directory, project, job, key)
        if (adopted := await self._adopt_earlier(run_id)) is not None:
            return adopted
        # Outside the run's lock (a pull may take minutes); pulling twice does no harm.
        await self._client.ensure_image(image, credentials=credentials, pull=pull, on_log=lambda _: None)
        merged = {**(spec.get("env") or {}), **{str(k): str(v) for k, v in env.items()}}
        run_spec: dict[str, Any] = {"env": merged}
        if command is not None:
            run_spec["command"] = list(command)
        elif spec.get("command"):
            run_spec["command"] = health.as_command(spec["command"], f"job '{job}' command")
        if entrypoint is not None:
            run_spec["entrypoint"] = list(entrypoint)
        labels = {
            LABEL_MANAGED: "releaseflow",
            LABEL_PROJECT: project,
            LABEL_STAGE: stage,
            LABEL_RESOURCE: job,
            LABEL_KIND: "job",
            LABEL_RECORD: run_id,
        }
        record: dict[str, Any] = {
            "id": run_id,
            "project": project,
            "stage": stage,
            "jobId": job,
            "image": image,
            "command": run_spec.get("command"),
            "containerName": safe_name("rf", project, job, run_id),
            "containerConfig": container_config(image, run_spec, labels, job, restart=False),
            "containerId": None,
            "status": RUNNING,
            "exitCode": None,
            "logs": "",
            "message": "",
            "idempotencyKey": key,
            "createdAt": utc_now(),
            "finishedAt": None,
        }
        async with self._launching(run_id):
            # Looked at again under the lock: another process may have started the run meanwhile.
            if (adopted := await self._adopt_earlier(run_id, locked=True)) is not None:
                return adopted
            # Recorded before the container exists: a request with the same key finds it by its name.
            self._runs.save(run_id, record)
            return await self._adopt(record)

    def _launching(
        self, run_id: str, timeout: float = LAUNCH_TIMEOUT_SECONDS
    ) -> contextlib.AbstractAsyncContextManager[None]:
        """The run's lock, shared by every releaseflow process on this root: held from the decision
        to start the run until its container was started, so two requests with one key (two workers
        adopting the same lost attempt) never both make or start a container, and a driver starting
        meanwhile never settles the run as "never ran" while it is being started."""
        stuck = RunBeingStarted(f"job run {run_id} stayed locked for {timeout:g} s: a start hangs")
        path = self._runs.directory / f"{run_id}.lock"
        return file_lock(path, mode=0o600, timeout=timeout, stuck=stuck)

    async def _adopt_earlier(self, run_id: str, *, locked: bool = False) -> DriverAnswer | None:
        """The answer of the run an earlier request with the key started (adopting it), or None when
        there is none, or it never ran (then it is started anew)."""
        earlier = self._runs.load(run_id)
        if earlier is None or earlier.get("neverRan"):
            return None
        if earlier["status"] != RUNNING:
            return run_answer(earlier)
        if locked:
            return await self._adopt(earlier)
        async with self._launching(run_id):
            return await self._adopt_earlier(run_id, locked=True)

    async def _adopt(self, record: dict[str, Any]) -> DriverAnswer:
        """Bring a recorded run to "started" (its container made and started once) and watch it."""
        run_id, name = str(record["id"]), str(record["containerName"])
        container = await self._client.inspect_container(str(record.get("containerId") or name))
        if container is None and record.get("containerId"):
            # It was made, so it may have run: never make another one for this key.
            await self._finish(record, None, f"the container of job run {run_id} disappeared before it ended")
            return run_answer(record)
        if container is None:
            try:
                record["containerId"] = await self._client.create_container(name, record["containerConfig"])
            except DockerError as error:
                if error.status != 409:  # 409: another request made it a moment ago
                    raise
            container = await self._client.inspect_container(name)
            if container is None:
                raise DriverError(f"the container {name} of job run {run_id} vanished as it was made")
        record["containerId"] = str(container["Id"])
        self._runs.save(run_id, record)
        if _state(container) == "created":
            # Made but never started: no run has happened yet, so starting it is the first run.
            try:
                await self._client.start_container(str(record["containerId"]))
            except DriverError as error:
                await self._finish(record, None, f"job '{record['jobId']}' could not start: {error}")
                return run_answer(record)
        self._drive(run_id)
        return run_answer(record)

    def follow(self, run_id: str) -> DriverAnswer:
        record = self._runs.require(run_id, "job run")
        if record["status"] == RUNNING:
            self._drive(run_id)
        return run_answer(record)

    async def cancel(self, run_id: str) -> str:
        """Stop a running job container; its watcher then records the run as failed."""
        record = self._runs.load(run_id)
        if record is None or record["status"] != RUNNING:
            return ""
        record["message"] = f"job run {run_id} was stopped: its release run was aborted"
        self._runs.save(run_id, record)
        await self._client.stop_container(str(record["containerId"]), grace_seconds=5)
        return f"job run {run_id} (container {str(record['containerId'])[:12]}) was stopped"

    async def resume(self) -> None:
        """Settle the runs a stopped releaseflow left in flight, and watch the ones that run."""
        for record in self._runs.with_status(RUNNING):
            try:
                await self._settle(record)
            except DriverError as error:
                # The engine may be away now: the next follow (or start) looks again.
                LOGGER.warning("docker driver: job run %s: %s", record["id"], error)

    async def _settle(self, record: dict[str, Any]) -> None:
        try:
            async with self._launching(str(record["id"]), timeout=0):
                record = self._runs.load(str(record["id"])) or record
                if record["status"] == RUNNING:
                    await self._settle_unlocked(record)
        except RunBeingStarted:
            pass  # another process is starting it right now: it is in good hands

    async def _settle_unlocked(self, record: dict[str, Any]) -> None:
        name = str(record.get("containerName") or "")
        container = await self._client.inspect_container(str(record.get("containerId") or name))
        if (container is not None and _state(container) != "created") or (
            container is None and record.get("containerId")
        ):
            if container is not None:
                record["containerId"] = str(container["Id"])
                self._runs.save(str(record["id"]), record)
            self._drive(str(record["id"]))  # it ran or runs (or vanished): its watcher settles it
            return
        # No container, or one that was never started: the run never happened.
        if container is not None:
            await self._client.remove_container(str(container["Id"]))
        record.update(
            status=FAILED,
            neverRan=True,
            finishedAt=utc_now(),
            message=(
                f"releaseflow stopped while it was starting job '{record['jobId']}'; it never ran"
                " (a new request with the same idempotency key starts it)"
            ),
        )
        self._runs.save(str(record["id"]), record)

    def _drive(self, run_id: str) -> None:
        self._supervisor.ensure(f"job:{run_id}", lambda: self._watch(run_id))

    async def _watch(self, run_id: str) -> None:
        record = self._runs.load(run_id)
        if record is None or record["status"] != RUNNING:
            return
        container_id = str(record["containerId"])
        try:
            container = await self._client.inspect_container(container_id)
            if container is None:
                await self._finish(
                    record, None, f"the container of job run {run_id} disappeared before it ended"
                )
                return
            if _state(container) == "created":
                return  # never started: whoever made it starts it, or a restart settles it
            # No time limit here: the node's timeoutDuration bounds how long the engine waits.
            exit_code = await self._client.wait_container(container_id, timeout=None)
            logs = await self._client.logs(container_id, tail=2000)
        except DriverError as error:
            # The engine went away while we waited; the next follow (or start) watches again.
            record["message"] = f"lost sight of the job run for now: {error}"
            self._runs.save(run_id, record)
            return
        self._runs.log_path(run_id).write_text(logs)
        record["logs"] = logs[-LOG_TAIL_CHARS:]
        message = ""
        if exit_code != 0:
            tail = logs.strip()[-600:]
            message = f"job '{record['jobId']}' run {run_id} exited with code {exit_code}"
            message += f"; its last log lines: {tail}" if tail else " and printed nothing"
        await self._finish(record, exit_code, message)

    async def _finish(self, record: dict[str, Any], exit_code: int | None, message: str) -> None:
        record.update(
            exitCode=exit_code,
            status=SUCCEEDED if exit_code == 0 else FAILED,
            message=message,
            finishedAt=utc_now(),
        )
        self._runs.save(str(record["id"]), record)
        await self._client.remove_container(str(record["containerId"]))


def run_id_for(root: Path, project: str, job: str, key: str) -> str:
    """The id of the run a key starts (a fresh one without a key: nothing to deduplicate against).

    The driver's root is part of it: two releaseflow installations may share one engine, and the id
    names the run's container."""
    if not key:
        return new_id("run")
    return "run-" + hashlib.sha256(f"{root}\0{project}\0{job}\0{key}".encode()).hexdigest()[:12]


def _state(container: Mapping[str, Any]) -> str:
    return str((container.get("State") or {}).get("Status") or "").lower()
