"""Services of the local driver: long-running processes, deployed, health-checked and supervised.

Layout under ``<root>``::

    services/<service id>/state.json     what should run, the process running it, restarts (atomic)
    services/<service id>/service.log    stdout and stderr of every process of the service, appended
    services/<service id>/exit/          the exit file of each process (its exit code when it ends)
    deployments/<deployment id>.json     one deploy or restart: status, artifacts, error (atomic)

A deployment's id is derived from the service and the idempotency key, so a repeated request finds the
deployment the first one made, even from another releaseflow process. A deploy stops the old process
before it starts the new one (they share the port); when the new one does not become healthy, the
previous release is started again, so a failed deploy leaves the previous release running.

The processes are not releaseflow's children (see ``processes``): ``stop()`` leaves them running and the
next ``start()`` adopts them, if the pid still has the start time recorded in the state file. The shapes
of the state file and of the deployment records are in ``service_records``.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hashlib
import logging
import re
import shlex
import uuid
from collections.abc import Mapping
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from releaseflow.platform.driver import Artifact, DriverError, Resource
from releaseflow.platform.local.health import WaitResult, probe, wait_until_healthy
from releaseflow.platform.local.processes import (
    CommandResult,
    child_environment,
    now_utc,
    run_command,
    spawn,
    stop_process,
    tail,
)
from releaseflow.platform.local.service_records import (
    Deployment,
    DeploymentStatus,
    Release,
    ServiceRecord,
    ServiceState,
    ServiceStatus,
    deployment_from,
    describe,
)
from releaseflow.platform.local.specs import ServiceSpec
from releaseflow.platform.local.state_files import read_json, write_json

log = logging.getLogger(__name__)

SUPERVISE_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 60.0
STABLE_SECONDS = 60.0  # a restarted process up this long is healthy again: backoff starts over
_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class ServiceManager:
    """Deploys, restarts, checks and supervises the services kept under ``root``."""

    def __init__(
        self,
        root: Path,
        *,
        supervise_seconds: float = SUPERVISE_SECONDS,
        backoff_max: float = BACKOFF_MAX_SECONDS,
    ) -> None:
        self.root = root
        self._supervise_seconds = supervise_seconds
        self._backoff_max = backoff_max
        self._locks: dict[str, asyncio.Lock] = {}
        self._begin_lock = asyncio.Lock()
        self._tasks: dict[str, asyncio.Task[None]] = {}  # deployment id -> its task in this process
        self._supervisor: asyncio.Task[None] | None = None

    # -- paths and state -------------------------------------------------------------------------

    def _service_dir(self, service_id: str) -> Path:
        if not _SLUG.match(service_id):
            raise DriverError(
                f"'{service_id}' cannot name a local service (letters, digits, . _ -)", retryable=False
            )
        return self.root / "services" / service_id

    def _load(self, service_id: str) -> ServiceRecord | None:
        data = read_json(self._service_dir(service_id) / "state.json")
        return None if data is None else ServiceRecord.from_data(data)

    def _save(self, state: ServiceRecord) -> None:
        write_json(self._service_dir(state.service_id) / "state.json", state.to_data())

    def _record_path(self, deployment_id: str) -> Path:
        return self.root / "deployments" / f"{deployment_id}.json"

    def _update_record(self, deployment_id: str, **changes: Any) -> None:
        record = read_json(self._record_path(deployment_id)) or {}
        record.update(changes)
        write_json(self._record_path(deployment_id), record)

    def _lock(self, service_id: str) -> asyncio.Lock:
        return self._locks.setdefault(service_id, asyncio.Lock())

    # -- deploy and restart ----------------------------------------------------------------------

    async def deploy(self, service: Resource, artifact: Artifact, artifact_dir: Path, key: str) -> Deployment:
        """Start deploying ``artifact`` (unpacked in ``artifact_dir``); returns at once."""
        ServiceSpec.parse(service)  # a wrong spec is refused now, not in the task
        release = Release(artifact.to_data(), str(artifact_dir), dict(service.spec), None)
        return await self._begin(service.id, release, key, "deploy")

    async def restart(self, service: Resource, key: str) -> Deployment:
        """Restart the service's current artifact (with the spec given now); answers like a deploy."""
        ServiceSpec.parse(service)
        state = self._load(service.id)
        if state is None or state.release is None:
            raise DriverError(
                f"service '{service.id}' has nothing deployed on this host to restart", retryable=False
            )
        release = Release(state.release.artifact, state.release.artifact_dir, dict(service.spec), None)
        return await self._begin(service.id, release, key, "restart")

    def deployment(self, deployment_id: str) -> Deployment:
        record = read_json(self._record_path(deployment_id)) if _SLUG.match(deployment_id) else None
        if record is None:
            raise DriverError(f"deployment '{deployment_id}' does not exist on this host", retryable=False)
        return deployment_from(record)

    async def _begin(self, service_id: str, release: Release, key: str, kind: str) -> Deployment:
        seed = key or uuid.uuid4().hex  # no key: nothing to deduplicate against
        deployment_id = "deploy-" + hashlib.sha256(f"{service_id}\0{seed}".encode()).hexdigest()[:12]
        async with self._begin_lock:
            existing = read_json(self._record_path(deployment_id))
            if existing is not None:
                return deployment_from(existing)
            state = self._load(service_id)
            release.deployment = deployment_id
            record = {
                "id": deployment_id,
                "serviceId": service_id,
                "key": key,
                "kind": kind,
                "status": DeploymentStatus.DEPLOYING.value,
                "artifact": release.artifact,
                "previousArtifact": state.release.artifact if state and state.release else None,
                "startedAt": now_utc().isoformat(),
                "endedAt": None,
                "error": "",
                "pid": None,
                "release": dataclasses.asdict(release),
            }
            write_json(self._record_path(deployment_id), record)
            self._tasks[deployment_id] = asyncio.create_task(self._deploy_task(service_id, deployment_id))
        return deployment_from(record)

    async def _deploy_task(self, service_id: str, deployment_id: str) -> None:
        try:
            async with self._lock(service_id):
                record = read_json(self._record_path(deployment_id)) or {}
                release = Release.from_data(record["release"])
                assert release is not None
                state = self._load(service_id) or ServiceRecord(service_id)
                # What to return to if the new release fails: written before anything changes, so an
                # interrupted deployment can be resolved by the next start().
                self._update_record(
                    deployment_id,
                    previousArtifact=state.release.artifact if state.release else None,
                    restore={
                        "release": dataclasses.asdict(state.release) if state.release else None,
                        "previous": dataclasses.asdict(state.previous) if state.previous else None,
                    },
                )
                state.deployment = deployment_id
                await self._stop_process(state)
                if record["kind"] == "deploy":
                    state.previous = state.release
                state.release = release
                try:
                    await self._launch(state)
                    reason = ""
                except DriverError as error:
                    state.process = None
                    reason = f"the new release ({describe(release.artifact)}) could not be started: {error}"
                await self._settle(state, deployment_id, waited_for=reason)
        except asyncio.CancelledError:
            raise  # releaseflow stops: the next start() resolves this deployment
        except Exception as error:
            log.exception("deployment %s failed unexpectedly", deployment_id)
            stuck = self._load(service_id)
            if stuck is not None and stuck.deployment == deployment_id:
                stuck.deployment = None  # or the supervisor would leave the service alone for good
                self._save(stuck)
            self._update_record(
                deployment_id,
                status=DeploymentStatus.FAILED.value,
                endedAt=now_utc().isoformat(),
                error=str(error),
            )
        finally:
            self._tasks.pop(deployment_id, None)

    async def _settle(self, state: ServiceRecord, deployment_id: str, *, waited_for: str = "") -> None:
        """Wait for the new release to be healthy; otherwise put the previous one back, and say why."""
        assert state.release is not None
        config = _spec(state.service_id, state.release.spec)
        process = state.process
        result = await self._wait_healthy(state, config) if process and not waited_for else None
        if result is not None and result.healthy:
            state.deployment = None
            self._save(state)
            self._update_record(
                deployment_id, status=DeploymentStatus.RUNNING.value, endedAt=now_utc().isoformat()
            )
            return
        problem = waited_for or self._diagnose(state, config, result)
        await self._stop_process(state)
        restore = (read_json(self._record_path(deployment_id)) or {}).get("restore") or {}
        state.release = Release.from_data(restore.get("release"))
        state.previous = Release.from_data(restore.get("previous"))
        if state.release is None:
            state.desired = "stopped"
            outcome = "Nothing ran before it, so the service is stopped."
        else:
            outcome = await self._bring_back(state)
        state.deployment = None
        self._save(state)
        self._update_record(
            deployment_id,
            status=DeploymentStatus.FAILED.value,
            endedAt=now_utc().isoformat(),
            error=f"{problem}\n{outcome}",
        )

    async def _bring_back(self, state: ServiceRecord) -> str:
        assert state.release is not None
        what = describe(state.release.artifact)
        try:
            await self._launch(state)
        except DriverError as error:
            state.process = None
            return f"The previous release ({what}) could not be started again either: {error}"
        config = _spec(state.service_id, state.release.spec)
        result = await self._wait_healthy(state, config)
        if result.healthy:
            return f"The previous release ({what}) runs again and is healthy."
        return (
            f"The previous release ({what}) was started again but is not healthy either "
            f"({result.detail}); the supervisor keeps restarting it. Log: {self._log_path(state.service_id)}"
        )

    async def _wait_healthy(self, state: ServiceRecord, config: ServiceSpec) -> WaitResult:
        process = state.process
        assert process is not None and state.release is not None
        return await wait_until_healthy(
            config.health_check,
            port=config.port,
            cwd=Path(state.release.artifact_dir),
            env=_environment(config),
            alive=process.is_alive,
        )

    def _diagnose(self, state: ServiceRecord, config: ServiceSpec, result: WaitResult | None) -> str:
        assert state.release is not None
        what = describe(state.release.artifact)
        check = config.health_check.describe(config.port)
        process = state.process
        if process is None or result is None:
            return f"the new release ({what}) did not start."
        if result.process_died:
            code = process.exit_code()
            ended = f"exited with code {code}" if code is not None else "ended (killed by a signal?)"
            head = f"the new release ({what}) {ended} before it passed its health check ({check})."
        else:
            head = (
                f"the new release ({what}) did not pass its health check ({check}) within "
                f"{config.health_check.timeout_seconds:g} s: {result.detail}."
            )
        lines = process.log_tail(20)
        shown = "\n".join(f"  | {line}" for line in lines) if lines else "  (the process wrote nothing)"
        return (
            f"{head} Check spec.runCommand ('{config.run_command}'), that the service listens on "
            f"PORT={config.port}, and spec.healthCheck. Last lines of {process.log_path}:\n{shown}"
        )

    # -- processes -------------------------------------------------------------------------------

    def _log_path(self, service_id: str) -> Path:
        return self._service_dir(service_id) / "service.log"

    async def _launch(self, state: ServiceRecord) -> None:
        """Start the state's release and record its process (saved before health is known)."""
        assert state.release is not None
        config = _spec(state.service_id, state.release.spec)
        directory = self._service_dir(state.service_id)
        state.process = await spawn(
            config.run_command,
            cwd=Path(state.release.artifact_dir),
            env=_environment(config),
            log_path=self._log_path(state.service_id),
            exit_file=directory / "exit" / f"{uuid.uuid4().hex[:12]}.code",
            banner=f"starting {describe(state.release.artifact)}: {config.run_command}",
        )
        state.desired = "running"
        state.next_restart_at = None
        if state.deployment:
            state.restarts = 0
            state.failures = 0
            self._update_record(state.deployment, pid=state.process.pid)
        self._save(state)

    async def _stop_process(self, state: ServiceRecord) -> None:
        if state.process is not None:
            spec = state.release.spec if state.release else {}
            seconds = _spec(state.service_id, spec).stop_timeout_seconds if spec else 10.0
            await stop_process(state.process, seconds)
            with contextlib.suppress(FileNotFoundError):
                state.process.exit_file.unlink()
        state.process = None
        self._save(state)

    async def stop_service(self, service_id: str) -> None:
        """Stop the service's process for good: the supervisor leaves it stopped."""
        async with self._lock(service_id):
            state = self._load(service_id)
            if state is not None:
                state.desired = "stopped"
                await self._stop_process(state)

    # -- looking -----------------------------------------------------------------------------------

    async def status(self, service_id: str) -> ServiceStatus:
        state = self._load(service_id)
        if state is None:
            return ServiceStatus(service_id, ServiceState.UNKNOWN, False, "never deployed on this host",
                                 None, None, None, None, 0, None, None)  # fmt: skip
        config = _spec(service_id, state.release.spec) if state.release else None
        process = state.process
        healthy, detail = False, ""
        if process is not None and process.is_alive() and config is not None and state.release is not None:
            kind = ServiceState.RUNNING
            env = _environment(config)
            answer = await probe(
                config.health_check, port=config.port, cwd=Path(state.release.artifact_dir), env=env
            )
            healthy, detail = answer.healthy, answer.detail
        elif state.desired == "stopped" or state.release is None:
            kind, detail = ServiceState.STOPPED, "stopped"
        else:
            kind = ServiceState.CRASHED
            code = state.last_exit_code if process is None else process.exit_code()
            detail = f"the process ended (exit code {code}); the supervisor restarts it"
        return ServiceStatus(
            service_id=service_id,
            state=kind,
            healthy=healthy,
            detail=detail,
            pid=process.pid if process and kind is ServiceState.RUNNING else None,
            artifact=Artifact.from_data(state.release.artifact) if state.release else None,
            port=config.port if config else None,
            since=process.started_at if process and kind is ServiceState.RUNNING else None,
            restarts=state.restarts,
            last_exit_code=state.last_exit_code,
            deployment_id=state.deployment,
        )

    def logs(self, service_id: str, lines: int = 100) -> list[str]:
        return tail(self._log_path(service_id), lines)

    def log_path(self, service_id: str) -> Path:
        """Where the service's output is appended (kept across releases and restarts)."""
        return self._log_path(service_id)

    async def execute(
        self, service: Resource, command: str, shell: bool, timeout: float = 300.0
    ) -> CommandResult:
        """Run ``command`` once in the folder and environment of the service's current release."""
        state = self._load(service.id)
        if state is None or state.release is None:
            raise DriverError(
                f"service '{service.id}' has nothing deployed on this host to run in", retryable=False
            )
        config = _spec(service.id, state.release.spec)
        argv = ["sh", "-c", command] if shell else shlex.split(command)
        if not argv:
            raise DriverError("the command to execute is empty", retryable=False)
        cwd = Path(state.release.artifact_dir)
        return await run_command(argv, cwd=cwd, env=_environment(config), timeout=timeout)

    # -- supervision -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Adopt what runs, resolve deployments a releaseflow exit interrupted, and supervise."""
        for state in self._states():
            if state.deployment and state.deployment not in self._tasks:
                task = asyncio.create_task(self._resolve(state.service_id, state.deployment))
                self._tasks[state.deployment] = task
            elif state.process is not None and state.process.is_alive():
                log.info("service %s: adopted its process %s", state.service_id, state.process.pid)
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise())

    async def stop(self) -> None:
        """Stop supervising; the services keep running (they are not releaseflow's children)."""
        tasks = [*self._tasks.values(), *([self._supervisor] if self._supervisor else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._supervisor = None
        self._tasks.clear()

    def _states(self) -> list[ServiceRecord]:
        base = self.root / "services"
        names = sorted(p.name for p in base.iterdir() if (p / "state.json").exists()) if base.is_dir() else []
        return [state for name in names if (state := self._load(name)) is not None]

    async def _resolve(self, service_id: str, deployment_id: str) -> None:
        try:
            async with self._lock(service_id):
                state = self._load(service_id)
                if state is None or state.deployment != deployment_id:
                    return
                if state.release is not None and state.release.deployment == deployment_id:
                    # The new release was put in place: judge it as the interrupted task would have.
                    live = state.process is not None and state.process.is_alive()
                    reason = "" if live else "the new release's process ended while releaseflow was stopped."
                    await self._settle(state, deployment_id, waited_for=reason)
                    return
                # Interrupted before the new release started: what ran before still counts.
                state.deployment = None
                if state.release is not None and not (state.process and state.process.is_alive()):
                    await self._launch(state)
                self._save(state)
                self._update_record(
                    deployment_id,
                    status=DeploymentStatus.FAILED.value,
                    endedAt=now_utc().isoformat(),
                    error="releaseflow stopped before the new release was started; the previous release "
                    "still runs. Deploy again.",
                )
        finally:
            self._tasks.pop(deployment_id, None)

    async def _supervise(self) -> None:
        while True:
            for state in self._states():
                lock = self._lock(state.service_id)
                if lock.locked() or state.deployment:
                    continue  # a deployment (or its resolution) owns the service now
                async with lock:
                    try:
                        await self._tend(state.service_id)
                    except Exception:
                        log.exception("supervising service %s failed", state.service_id)
            await asyncio.sleep(self._supervise_seconds)

    async def _tend(self, service_id: str) -> None:
        state = self._load(service_id)
        if state is None or state.desired != "running" or state.release is None or state.deployment:
            return
        process, now = state.process, now_utc()
        if process is not None and process.is_alive():
            if state.failures and now - process.started_at >= timedelta(seconds=STABLE_SECONDS):
                state.failures = 0
                self._save(state)
            return
        if process is not None:
            # Just found dead (or its pid now belongs to another process): count it and back off.
            state.last_exit_code = process.exit_code()
            await stop_process(process, 1.0)  # children left behind in its group, if the pid is still ours
            state.process = None
            state.failures += 1
            delay = min(self._backoff_max, 2.0 ** (state.failures - 1))
            state.next_restart_at = (now + timedelta(seconds=delay)).isoformat()
            self._save(state)
            log.warning(
                "service %s crashed (exit code %s); restart in %g s", service_id, state.last_exit_code, delay
            )
            return
        if state.next_restart_at and now < datetime.fromisoformat(state.next_restart_at):
            return
        state.restarts += 1
        try:
            await self._launch(state)
        except DriverError as error:
            state.failures += 1
            delay = min(self._backoff_max, 2.0 ** (state.failures - 1))
            state.next_restart_at = (now + timedelta(seconds=delay)).isoformat()
            self._save(state)
            log.warning("service %s could not be restarted: %s", service_id, error)


def _spec(service_id: str, spec: Mapping[str, Any]) -> ServiceSpec:
    """The spec a release was deployed with (checked then; parsed again from the state file)."""
    return ServiceSpec.parse(Resource(service_id, "service", "local", spec))


def _environment(spec: ServiceSpec) -> dict[str, str]:
    return child_environment(spec.env, {"PORT": str(spec.port)} if spec.port is not None else {})
