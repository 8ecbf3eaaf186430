"""Services of the local driver: long-running processes, deployed without downtime, checked and supervised.

Layout under ``<root>``::

    services/<service id>/state.json     what should run, the process running it, restarts (atomic)
    services/<service id>/service.log    stdout and stderr of every process of the service, appended
    services/<service id>/exit/          the exit file of each process (its exit code when it ends)
    deployments/<deployment id>.json     one deploy or restart: status, artifacts, error (atomic)
    ingress/                             the Caddy process that holds the public ports (``ingress``)

A service with a ``port`` never listens on it itself: the ingress does, and proxies to the private
port of the version that serves (given to it as PORT). A deploy (or restart) starts the new version
beside the serving one on a new private port, checks its health there, points the route at it only
once it is healthy, lets the old version finish the requests in flight, then stops it. A new version
that never gets healthy is stopped and nothing else changes: the serving version is never interrupted.

A deployment's id is derived from the service and the idempotency key, so a repeated request finds the
deployment the first one made, even from another releaseflow process. Each step is recorded before the
next one begins (the new process before its health is known, the switch before the old one is
stopped), and ``start()`` carries on every deployment still deploying from where it was.

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
from releaseflow.platform.local.health import HOST, WaitResult, probe, wait_until_healthy
from releaseflow.platform.local.ingress import Ingress, Route, drained, free_port
from releaseflow.platform.local.processes import (
    CommandResult,
    ProcessHandle,
    child_environment,
    now_utc,
    run_command,
    spawn,
    stop_process,
    tail,
)
from releaseflow.platform.local.service_records import (
    Candidate,
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
# At most this long a replaced version is given to finish the requests it was serving when traffic
# moved to the new one; then it is stopped (SIGTERM, then after stopTimeoutSeconds SIGKILL).
DRAIN_SECONDS = 30.0
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
        self.ingress = Ingress(root / "ingress")
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
        if ServiceSpec.parse(service).port is not None:  # a wrong spec is refused now, not in the task
            self.ingress.require()
        release = Release(artifact.to_data(), str(artifact_dir), dict(service.spec), None)
        return await self._begin(service.id, release, key, "deploy")

    async def restart(self, service: Resource, key: str) -> Deployment:
        """Restart the service's current artifact (with the spec given now); answers like a deploy."""
        if ServiceSpec.parse(service).port is not None:
            self.ingress.require()
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

    def find(self, service_id: str, key: str) -> Deployment | None:
        """The deployment started under idempotency key ``key``, if there is one."""
        record = read_json(self._record_path(_deployment_id(service_id, key))) if key else None
        return None if record is None else deployment_from(record)

    async def _begin(self, service_id: str, release: Release, key: str, kind: str) -> Deployment:
        deployment_id = _deployment_id(service_id, key or uuid.uuid4().hex)  # no key: nothing to match
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
                "retryable": True,
                "pid": None,
                "release": dataclasses.asdict(release),
            }
            write_json(self._record_path(deployment_id), record)
            self._tasks[deployment_id] = asyncio.create_task(self._deploy_task(service_id, deployment_id))
        return deployment_from(record)

    async def _deploy_task(self, service_id: str, deployment_id: str) -> None:
        try:
            async with self._lock(service_id):
                await self._carry_out(service_id, deployment_id)
        except asyncio.CancelledError:
            raise  # releaseflow stops: the next start() carries this deployment on
        except Exception as error:
            log.exception("deployment %s failed unexpectedly", deployment_id)
            stuck = self._load(service_id)
            if stuck is not None and stuck.deployment == deployment_id:
                stuck.deployment = None  # or the supervisor would leave the service alone for good
                self._save(stuck)
            self._finish(deployment_id, DeploymentStatus.FAILED, str(error))
        finally:
            self._tasks.pop(deployment_id, None)

    async def _carry_out(self, service_id: str, deployment_id: str) -> None:
        """Start the new version beside the serving one, check it, switch traffic, retire the old.

        Each step is recorded before the next begins, so a releaseflow that stops at any point
        carries the deployment on from where it was (``start()`` calls this again).
        """
        record = read_json(self._record_path(deployment_id)) or {}
        if record.get("status") != DeploymentStatus.DEPLOYING.value:
            return
        release = Release.from_data(record["release"])
        assert release is not None
        state = self._load(service_id) or ServiceRecord(service_id)
        if state.release is not None and state.release.deployment == deployment_id:
            await self._retire(state)  # it serves already: what is left is stopping the old version
            self._finish(deployment_id, DeploymentStatus.RUNNING)
            return
        if state.deployment != deployment_id:
            self._update_record(
                deployment_id, previousArtifact=state.release.artifact if state.release else None
            )
            state.deployment = deployment_id
            self._save(state)
        candidate = state.candidate
        if candidate is not None and candidate.release.deployment != deployment_id:
            await self._drop_candidate(state)  # left by a deployment that was given up
            candidate = None
        if candidate is None:
            try:
                candidate = await self._launch_candidate(state, release)
            except DriverError as error:
                what = describe(release.artifact)
                problem = f"the new release ({what}) could not be started: {error}"
                await self._fail(state, deployment_id, problem, retryable=error.retryable)
                return
        config = _spec(service_id, release.spec)
        result = await wait_until_healthy(
            config.health_check,
            port=candidate.port,
            cwd=Path(release.artifact_dir),
            env=_environment(config, candidate.port),
            alive=candidate.process.is_alive,
        )
        if not result.healthy:
            problem = self._diagnose(candidate, config, result)
            # A version that ends during start-up will end the same way next time; a check that
            # only ran out of time may pass on another attempt.
            await self._fail(state, deployment_id, problem, retryable=not result.process_died)
            return
        try:
            await self._switch(state, candidate, kind=str(record["kind"]))
        except DriverError as error:
            problem = f"traffic could not be switched to the new release: {error}"
            await self._fail(state, deployment_id, problem, retryable=error.retryable)
            return
        await self._retire(state)
        self._finish(deployment_id, DeploymentStatus.RUNNING)

    async def _launch_candidate(self, state: ServiceRecord, release: Release) -> Candidate:
        config = _spec(state.service_id, release.spec)
        port = free_port() if config.port is not None else None
        process = await self._spawn(state.service_id, release, config, port)
        candidate = Candidate(release, process, port)
        state.candidate = candidate
        self._save(state)  # recorded before its health is known: a restarted releaseflow finds it
        assert release.deployment is not None
        self._update_record(release.deployment, pid=process.pid)
        return candidate

    async def _switch(self, state: ServiceRecord, candidate: Candidate, *, kind: str) -> None:
        """Point the public port at the healthy candidate; the version it replaces starts retiring."""
        config = _spec(state.service_id, candidate.release.spec)
        old, old_port = state.process, state.port
        if old is not None and old_port is None and config.port is not None and old.is_alive():
            # Started before releaseflow had an ingress, it holds the public port itself: it must go
            # before the ingress can listen there (a short gap, once per service).
            await stop_process(old, config.stop_timeout_seconds)
            old = None
        await self._set_route(state.service_id, _route(config.port, candidate.port))
        if kind == "deploy":
            state.previous = state.release
        state.release = candidate.release
        state.process, state.port = candidate.process, candidate.port
        state.retiring = old if old is not None and old.is_alive() else None
        state.retiring_port = old_port if state.retiring else None
        state.candidate = None
        state.desired = "running"
        state.restarts = state.failures = 0
        state.next_restart_at = None
        self._save(state)

    async def _retire(self, state: ServiceRecord) -> None:
        """Let the replaced version finish its requests in flight, then stop it."""
        old, port = state.retiring, state.retiring_port
        if old is not None:
            spec = state.release.spec if state.release else {}
            grace = _spec(state.service_id, spec).stop_timeout_seconds if spec else 10.0
            if port is not None:
                await drained(port, DRAIN_SECONDS)
            await stop_process(old, grace)
            _forget_exit_file(old)
        state.retiring = state.retiring_port = None
        state.deployment = None
        self._save(state)

    async def _fail(self, state: ServiceRecord, deployment_id: str, problem: str, *, retryable: bool) -> None:
        """Drop the candidate; what served before goes on serving, untouched."""
        await self._drop_candidate(state)
        if state.port is not None:
            # Only a releaseflow that stopped mid-switch leaves the route on the candidate; the
            # route is cheap to put back to what the state says serves.
            try:
                await self._set_route(state.service_id, self._serving_route(state))
            except DriverError as error:
                log.error("service %s: the ingress could not be set back: %s", state.service_id, error)
        if state.release is None:
            outcome = "Nothing ran before it, so the service stays stopped."
        elif state.process is not None and state.process.is_alive():
            what = describe(state.release.artifact)
            outcome = f"The previous release ({what}) keeps serving, uninterrupted."
        else:
            outcome = (
                f"The previous release ({describe(state.release.artifact)}) is not running either; the"
                " supervisor keeps restarting it."
            )
        if not retryable:
            outcome += " Not retried: another attempt would end the same way."
        state.deployment = None
        self._save(state)
        self._finish(deployment_id, DeploymentStatus.FAILED, f"{problem}\n{outcome}", retryable=retryable)

    async def _drop_candidate(self, state: ServiceRecord) -> None:
        candidate = state.candidate
        if candidate is not None:
            seconds = _spec(state.service_id, candidate.release.spec).stop_timeout_seconds
            await stop_process(candidate.process, seconds)
            _forget_exit_file(candidate.process)
        state.candidate = None
        self._save(state)

    def _finish(
        self, deployment_id: str, status: DeploymentStatus, error: str = "", *, retryable: bool = True
    ) -> None:
        self._update_record(
            deployment_id,
            status=status.value,
            endedAt=now_utc().isoformat(),
            error=error,
            retryable=retryable,
        )

    def _diagnose(self, candidate: Candidate, config: ServiceSpec, result: WaitResult) -> str:
        what = describe(candidate.release.artifact)
        check = config.health_check.describe(candidate.port)
        process = candidate.process
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
        port = candidate.port
        listens = f", that the service listens on the port in PORT ({port})" if port else ""
        return (
            f"{head} Check spec.runCommand ('{config.run_command}'){listens}, and spec.healthCheck."
            f" Last lines of {process.log_path}:\n{shown}"
        )

    # -- the ingress -----------------------------------------------------------------------------

    def _recorded_routes(self) -> dict[str, Route]:
        """The public port of every running service, to its serving version's private port."""
        routes: dict[str, Route] = {}
        for state in self._states():
            route = self._serving_route(state)
            if state.desired == "running" and route is not None:
                routes[state.service_id] = route
        return routes

    def _serving_route(self, state: ServiceRecord) -> Route | None:
        if state.release is None:
            return None
        return _route(_spec(state.service_id, state.release.spec).port, state.port)

    async def _set_route(self, service_id: str, route: Route | None) -> None:
        """Point (or, with None, remove) the service's route; other services' routes are kept."""
        await self.ingress.change({service_id: route}, self._recorded_routes)

    # -- processes -------------------------------------------------------------------------------

    def _log_path(self, service_id: str) -> Path:
        return self._service_dir(service_id) / "service.log"

    async def _spawn(
        self, service_id: str, release: Release, config: ServiceSpec, port: int | None
    ) -> ProcessHandle:
        return await spawn(
            config.run_command,
            cwd=Path(release.artifact_dir),
            env=_environment(config, port),
            log_path=self._log_path(service_id),
            exit_file=self._service_dir(service_id) / "exit" / f"{uuid.uuid4().hex[:12]}.code",
            banner=f"starting {describe(release.artifact)}: {config.run_command}"
            + (f" (PORT={port})" if port is not None else ""),
        )

    async def _relaunch(self, state: ServiceRecord) -> None:
        """Start the serving release again after a crash, on its own private port (the route stays)."""
        assert state.release is not None
        config = _spec(state.service_id, state.release.spec)
        port = state.port if state.port is not None or config.port is None else free_port()
        state.process = await self._spawn(state.service_id, state.release, config, port)
        if port != state.port:
            state.port = port
            await self._set_route(state.service_id, _route(config.port, port))
        state.next_restart_at = None
        self._save(state)

    async def _stop_process(self, state: ServiceRecord) -> None:
        if state.process is not None:
            spec = state.release.spec if state.release else {}
            seconds = _spec(state.service_id, spec).stop_timeout_seconds if spec else 10.0
            await stop_process(state.process, seconds)
            _forget_exit_file(state.process)
        state.process = None
        self._save(state)

    async def stop_service(self, service_id: str) -> None:
        """Stop the service's process for good: the supervisor leaves it stopped, its route goes."""
        async with self._lock(service_id):
            state = self._load(service_id)
            if state is not None:
                state.desired = "stopped"
                await self._drop_candidate(state)
                await self._stop_process(state)
                await self._set_route(service_id, None)

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
            port = _serving_port(state, config)
            env = _environment(config, port)
            cwd = Path(state.release.artifact_dir)
            answer = await probe(config.health_check, port=port, cwd=cwd, env=env)
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
            private_port=state.port,
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
        env = _environment(config, _serving_port(state, config))
        return await run_command(argv, cwd=cwd, env=env, timeout=timeout)

    # -- supervision -------------------------------------------------------------------------------

    async def start(self) -> None:
        """Adopt what runs (the ingress too), carry on interrupted deployments, and supervise."""
        # A running Caddy is adopted as it is (see ``Ingress.restore``); a dead one starts again.
        try:
            await self.ingress.restore(self._recorded_routes)
        except DriverError as error:
            log.error("the ingress could not be started: %s", error)
        for state in self._states():
            if state.process is not None and state.process.is_alive():
                log.info("service %s: adopted its process %s", state.service_id, state.process.pid)
        for record in self._unfinished():
            deployment_id = str(record["id"])
            if deployment_id not in self._tasks:
                task = asyncio.create_task(self._deploy_task(str(record["serviceId"]), deployment_id))
                self._tasks[deployment_id] = task
        if self._supervisor is None:
            self._supervisor = asyncio.create_task(self._supervise())

    async def stop(self) -> None:
        """Stop supervising; the services and the ingress keep running (not releaseflow's children)."""
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

    def _unfinished(self) -> list[dict[str, Any]]:
        """Deployments still deploying, oldest first (the order they were asked for)."""
        base = self.root / "deployments"
        records = [read_json(path) for path in base.glob("*.json")] if base.is_dir() else []
        return sorted(
            (r for r in records if r and r.get("status") == DeploymentStatus.DEPLOYING.value),
            key=lambda record: str(record.get("startedAt")),
        )

    async def _supervise(self) -> None:
        while True:
            if not self.ingress.running():
                try:  # Caddy ended (killed, crashed): start it again with the routes
                    await self.ingress.restore(self._recorded_routes)
                except Exception:
                    log.exception("the ingress could not be started again")
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
            await self._relaunch(state)
        except DriverError as error:
            state.failures += 1
            delay = min(self._backoff_max, 2.0 ** (state.failures - 1))
            state.next_restart_at = (now + timedelta(seconds=delay)).isoformat()
            self._save(state)
            log.warning("service %s could not be restarted: %s", service_id, error)


def _deployment_id(service_id: str, key: str) -> str:
    return "deploy-" + hashlib.sha256(f"{service_id}\0{key}".encode()).hexdigest()[:12]


def _spec(service_id: str, spec: Mapping[str, Any]) -> ServiceSpec:
    """The spec a release was deployed with (checked then; parsed again from the state file)."""
    return ServiceSpec.parse(Resource(service_id, "service", "local", spec))


def _route(public: int | None, private: int | None) -> Route | None:
    """The ingress's route from a public port to a version's private one (None without either)."""
    if public is None or private is None:
        return None
    return Route(f"{HOST}:{public}", f"{HOST}:{private}")


def _environment(spec: ServiceSpec, port: int | None) -> dict[str, str]:
    """The version's environment: PORT is its private port (the ingress holds ``spec.port``)."""
    return child_environment(spec.env, {"PORT": str(port)} if port is not None else {})


def _serving_port(state: ServiceRecord, config: ServiceSpec) -> int | None:
    """Where the serving version listens: its private port, or (started before the ingress) the public one."""
    return state.port if state.port is not None else config.port


def _forget_exit_file(process: ProcessHandle) -> None:
    with contextlib.suppress(FileNotFoundError):
        process.exit_file.unlink()
