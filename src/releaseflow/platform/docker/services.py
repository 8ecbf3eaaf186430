"""Services: long-running containers, deployed side by side without downtime.

A deployment starts the new container beside the old one (each gets its own published port) and
removes the old one only once the new one is healthy; an unhealthy new container is removed and the
old one keeps serving, never interrupted.

A service with a fixed ``hostPort`` gets the same guarantee from an ingress: the container publishes
its port on an ephemeral loopback port, and a Caddy process run by the driver (``local.ingress``, under
``<root>/ingress``) holds the host port and proxies to the container that serves. Traffic moves to the
new container once it is healthy; the old one finishes its requests in flight, then is removed. This
needs the engine on this host (a unix socket or a loopback address); with a remote engine the host port
is the engine's, so the old container is stopped first (kept) and started again if the new one fails.

A deployment is driven by a background task and recorded under ``<root>/deployments`` (its id derives
from the idempotency key, so the same key finds the same deployment, even after a restart); what a
service runs now is recorded under ``<root>/services``. Both survive restarts; an unfinished deployment
is picked up again by ``resume``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from releaseflow.domain.errors import describe_error
from releaseflow.platform.docker import health
from releaseflow.platform.docker.builds import SUCCEEDED as BUILD_SUCCEEDED
from releaseflow.platform.docker.builds import Builder
from releaseflow.platform.docker.client import DockerClient, RegistryCredentials
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
from releaseflow.platform.driver import AnswerState, Artifact, DriverAnswer, DriverError, DriverRequest
from releaseflow.platform.local.ingress import Ingress, Route, drained

# How long a replaced container may finish the requests it serves when traffic moves on.
DRAIN_SECONDS = 30.0
INGRESS_CHECK_SECONDS = 1.0  # how often the ingress is looked at (and started again if it ended)
_LOOPBACK = ("127.0.0.1", "localhost", "::1")

DEPLOYING, SUCCEEDED, FAILED = "deploying", "succeeded", "failed"
CredentialsLookup = Callable[[str | None, str], RegistryCredentials | None]


def _int(spec: Mapping[str, Any], key: str, service: str) -> int | None:
    value = spec.get(key)
    if value is None or value == "":
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        raise DriverError(
            f"service '{service}': '{key}' must be a port number, not {value!r}", retryable=False
        ) from None


def container_config(
    image: str,
    spec: Mapping[str, Any],
    labels: Mapping[str, str],
    service: str,
    *,
    restart: bool,
    behind_ingress: bool = False,
) -> dict[str, Any]:
    """The engine's create body for a service (or, with ``restart=False``, a job) container.

    ``behind_ingress``: the ingress holds ``hostPort``; the container publishes an ephemeral port on
    the loopback for it.
    """
    env = spec.get("env") or {}
    if not isinstance(env, Mapping):
        raise DriverError(f"'{service}': env must be an object of names to values", retryable=False)
    config: dict[str, Any] = {
        "Image": image,
        "Env": [f"{key}={value}" for key, value in env.items()],
        "Labels": dict(labels),
        "HostConfig": {},
    }
    if spec.get("command"):
        config["Cmd"] = health.as_command(spec["command"], f"'{service}' command")
    if spec.get("entrypoint"):
        config["Entrypoint"] = health.as_command(spec["entrypoint"], f"'{service}' entrypoint")
    port = _int(spec, "port", service)
    if port is not None:
        host_port = _int(spec, "hostPort", service)
        config["ExposedPorts"] = {f"{port}/tcp": {}}
        binding = {"HostIp": str(spec.get("hostIp") or ""), "HostPort": str(host_port or "")}
        if behind_ingress:
            binding = {"HostIp": "127.0.0.1", "HostPort": ""}
        config["HostConfig"]["PortBindings"] = {f"{port}/tcp": [binding]}
    if restart:
        # The engine restarts a crashed service; a restart during the health check fails the deploy.
        config["HostConfig"]["RestartPolicy"] = {"Name": "unless-stopped"}
    return config


def deployment_answer(record: Mapping[str, Any]) -> DriverAnswer:
    data = {
        "artifact": record["artifact"],
        "deploymentId": record["id"],
        "containerId": record.get("containerId"),
        "image": record.get("image"),
        "ports": record.get("ports", []),
        "status": record["status"],
    }
    handle = {"kind": "deployment", "id": record["id"]}
    if record["status"] == SUCCEEDED:
        message = f"service '{record['service']}' runs {record.get('image')}"
        return DriverAnswer(AnswerState.DONE, data, message, handle)
    if record["status"] == FAILED:
        retryable = record.get("retryable") is not False
        return DriverAnswer(AnswerState.FAILED, data, str(record.get("message")), handle, retryable)
    return DriverAnswer(AnswerState.IN_PROGRESS, data, f"deploying {record.get('image')}", handle)


class Services:
    def __init__(
        self,
        client: DockerClient,
        root: Path,
        supervisor: Supervisor,
        builder: Builder,
        credentials: CredentialsLookup,
    ) -> None:
        self._client = client
        self._deployments = Records(root / "deployments")
        self._current = Records(root / "services")
        self._supervisor = supervisor
        self._builder = builder
        self._credentials = credentials
        self._locks: dict[str, asyncio.Lock] = {}
        self.ingress = Ingress(root / "ingress", owner="the docker driver (for services with a hostPort)")

    @staticmethod
    def _key(project: str, service: str) -> str:
        return safe_name(project, "", service)

    def _lock(self, project: str, service: str) -> asyncio.Lock:
        return self._locks.setdefault(self._key(project, service), asyncio.Lock())

    def current(self, project: str, service: str) -> dict[str, Any] | None:
        return self._current.load(self._key(project, service))

    # -- deploy ---------------------------------------------------------------------------------------

    def deploy(
        self, request: DriverRequest, artifact: Artifact, *, pull: bool, await_build: str | None = None
    ) -> DriverAnswer:
        """Record a deployment of ``artifact`` to the request's service and start driving it.

        A key already seen adopts the deployment it started: its id derives from the key, and its
        record is written before anything is done, so a releaseflow killed at any instant either
        never started it or finds it.
        """
        key = request.idempotency_key
        if not key:
            deployment_id = new_id("deploy")
        else:
            seed = f"{request.project_id}\0{request.resource.id}\0{key}".encode()
            deployment_id = "deploy-" + hashlib.sha256(seed).hexdigest()[:16]
            if self._deployments.load(deployment_id) is not None:
                return self.follow(deployment_id)
        if self._uses_ingress(request.resource.spec, request.resource.id):
            self.ingress.require()
        record: dict[str, Any] = {
            "id": deployment_id,
            "project": request.project_id,
            "stage": request.stage,
            "runId": request.run_id,
            "service": request.resource.id,
            "spec": dict(request.resource.spec),
            "artifact": artifact.to_data(),
            "image": artifact.image,
            "pull": pull,
            "awaitBuild": await_build,
            "status": DEPLOYING,
            "message": "",
            "containerId": None,
            "previousContainerId": None,
            "strategy": None,
            "idempotencyKey": request.idempotency_key,
            "createdAt": utc_now(),
            "finishedAt": None,
        }
        self._deployments.save(deployment_id, record)
        self._drive(deployment_id)
        return deployment_answer(record)

    async def _published_ports(
        self, container_id: str, port: int | None, route: Route | None = None
    ) -> list[dict[str, Any]]:
        """Where this host reaches the service: ``${refs.<ref>.ports.0.url}`` in later nodes."""
        if route is not None:  # the ingress's port, which stays when containers change
            listen_host, _, listen_port = route.listen.rpartition(":")
            public = listen_host or self._client.host
            url = f"http://{public}:{listen_port}"
            return [{"internalPort": port, "host": public, "port": int(listen_port), "url": url}]
        container = await self._client.inspect_container(container_id)
        address = (
            None
            if container is None or port is None
            else health.published_address(container, port, self._client.host)
        )
        if address is None:
            return []
        host, host_port = address
        return [{"internalPort": port, "host": host, "port": host_port, "url": f"http://{host}:{host_port}"}]

    def follow(self, deployment_id: str) -> DriverAnswer:
        record = self._deployments.require(deployment_id, "deployment")
        if record["status"] == DEPLOYING:
            self._drive(deployment_id)  # nobody drives it after a restart: pick it up again
        return deployment_answer(record)

    def resume(self) -> None:
        for record in self._deployments.with_status(DEPLOYING):
            self._drive(str(record["id"]))

    def _drive(self, deployment_id: str) -> None:
        self._supervisor.ensure(f"deploy:{deployment_id}", lambda: self._run(deployment_id))

    async def _run(self, deployment_id: str) -> None:
        record = self._deployments.load(deployment_id)
        if record is None or record["status"] != DEPLOYING:
            return
        async with self._lock(record["project"], record["service"]):
            log_path = self._deployments.log_path(deployment_id)
            with log_path.open("a") as log_file:

                def log(line: str) -> None:
                    log_file.write(line + "\n")
                    log_file.flush()

                try:
                    await self._deploy(record, log)
                except DriverError as error:
                    record.update(status=FAILED, message=str(error), retryable=error.retryable)
                except Exception as error:  # an odd engine answer must still end the deployment
                    record.update(
                        status=FAILED, message=f"deployment failed unexpectedly: {describe_error(error)}"
                    )
                else:
                    record["status"] = SUCCEEDED
                record["finishedAt"] = utc_now()
                log(f"{record['status']}: {record.get('message', '')}")
                self._deployments.save(deployment_id, record)

    async def _deploy(self, record: dict[str, Any], log: Callable[[str], None]) -> None:
        service, project = str(record["service"]), str(record["project"])
        what = f"deploying {record.get('image') or 'a build'} to service '{service}'"
        if record.get("awaitBuild"):
            build = await self._builder.wait(str(record["awaitBuild"]))
            if build["status"] != BUILD_SUCCEEDED:
                raise DriverError(f"{what} failed: the build failed: {build.get('message')}", retryable=False)
        image = str(record["image"])
        credentials = self._credentials(record["artifact"].get("credentials"), image)
        try:
            await self._client.ensure_image(
                image, credentials=credentials, pull=bool(record["pull"]), on_log=log
            )
        except DriverError as error:
            raise DriverError(
                f"{what} failed: {error}. Check the image reference, that its registry is reachable from the"
                " engine, and the registry credentials",
                retryable=error.retryable,
            ) from error

        spec = record["spec"]
        check = health.parse_health_check(spec, service)
        port = _int(spec, "port", service)
        grace = int(spec.get("stopGraceSeconds", 10))
        ingress = self._uses_ingress(spec, service)
        if record["strategy"] is None:
            record["previousContainerId"], record["strategy"] = await self._plan(project, service, spec)
            self._deployments.save(record["id"], record)
        previous, recreate = record["previousContainerId"], record["strategy"] == "recreate"
        if recreate:
            log(f"host port {spec.get('hostPort')} is held by {previous}: stopping it first")
            await self._client.stop_container(previous, grace_seconds=grace)

        container_id = record.get("containerId")
        if not container_id or await self._client.inspect_container(container_id) is None:
            labels = {
                LABEL_MANAGED: "releaseflow",
                LABEL_PROJECT: project,
                LABEL_STAGE: str(record.get("stage") or ""),
                LABEL_RESOURCE: service,
                LABEL_KIND: "service",
                LABEL_RECORD: str(record["id"]),
            }
            name = safe_name("rf", project, service, str(record["id"]).removeprefix("deploy-"))
            await self._client.remove_container(name)  # left over by an interrupted attempt
            config = container_config(image, spec, labels, service, restart=True, behind_ingress=ingress)
            container_id = await self._client.create_container(name, config)
            record["containerId"] = container_id
            self._deployments.save(record["id"], record)
            await self._client.start_container(container_id)
            log(f"started container {container_id[:12]} from {image}")

        problem = await health.wait_healthy(self._client, container_id, check, port)
        if problem is not None:
            logs = (await self._client.logs(container_id, tail=20)).strip()
            await self._client.remove_container(container_id)
            message = f"{what} failed: the new container did not become healthy: {problem}"
            if logs:
                message += f"; its last log lines: {logs[-600:]}"
            if recreate and previous:
                await self._client.start_container(previous)
                message += f". Returned to the previous container {previous[:12]}"
            elif previous:
                message += f". The previous container {previous[:12]} keeps serving, uninterrupted"
            # A container that exits during start-up does so again on another attempt; one that
            # only ran out of time may pass.
            if problem.exited:
                message += ". Not retried: another attempt would end the same way"
            raise DriverError(message, retryable=not problem.exited)

        route = await self._route(container_id, spec, service) if ingress and port is not None else None
        if route is not None:
            await self.ingress.change({self._key(project, service): route}, self._recorded_routes)
            self._supervisor.ensure("ingress", self._watch_ingress)
            log(f"the ingress sends {route.listen} to {route.upstream}")
        record["ports"] = await self._published_ports(container_id, port, route)
        self._current.save(
            self._key(project, service),
            {
                "project": project,
                "service": service,
                "ports": record["ports"],
                "containerId": container_id,
                "deploymentId": record["id"],
                "artifact": record["artifact"],
                "image": image,
                "route": {"listen": route.listen, "upstream": route.upstream} if route else None,
                "updatedAt": utc_now(),
            },
        )
        if previous and previous != container_id:
            await self._drain(previous, port)
            await self._client.stop_container(previous, grace_seconds=grace)
            await self._client.remove_container(previous)
            log(f"removed the previous container {previous[:12]}")

    def _uses_ingress(self, spec: Mapping[str, Any], service: str) -> bool:
        """A fixed host port on an engine of this host is held by the ingress (see the module doc)."""
        return (
            _int(spec, "hostPort", service) is not None
            and _int(spec, "port", service) is not None
            and self._client.host in _LOOPBACK
        )

    async def _route(self, container_id: str, spec: Mapping[str, Any], service: str) -> Route:
        port, host_port = _int(spec, "port", service), _int(spec, "hostPort", service)
        assert port is not None and host_port is not None
        container = await self._client.inspect_container(container_id)
        address = None if container is None else health.published_address(container, port, "127.0.0.1")
        if address is None:
            raise DriverError(f"service '{service}': the new container's port {port} is not published")
        listen = f"{spec.get('hostIp') or ''}:{host_port}"
        return Route(listen, f"{address[0]}:{address[1]}")

    async def _drain(self, container_id: str, port: int | None) -> None:
        """Wait until the ingress has no request in flight to the replaced container (bounded)."""
        container = None if port is None else await self._client.inspect_container(container_id)
        address = (
            None
            if container is None or port is None
            else health.published_address(container, port, "127.0.0.1")
        )
        if address is not None:
            await drained(address[1], DRAIN_SECONDS, side="remote")

    def _recorded_routes(self) -> dict[str, Route]:
        return {
            self._key(str(current["project"]), str(current["service"])): Route(
                str(current["route"]["listen"]), str(current["route"]["upstream"])
            )
            for current in self._current.all()
            if current.get("route")
        }

    async def adopt_ingress(self) -> None:
        """At start: adopt the running Caddy (or start one) with the recorded routes, and watch it."""
        try:
            await self.ingress.restore(self._recorded_routes)
        except DriverError as error:
            LOGGER.error("docker driver: the ingress could not be started: %s", error)
        if self._recorded_routes():
            self._supervisor.ensure("ingress", self._watch_ingress)

    async def _watch_ingress(self) -> None:
        while True:
            await asyncio.sleep(INGRESS_CHECK_SECONDS)
            if not self.ingress.running():
                try:  # Caddy ended (killed, crashed): start it again with the routes
                    await self.ingress.restore(self._recorded_routes)
                except DriverError as error:
                    LOGGER.error("docker driver: the ingress could not be started again: %s", error)

    async def _plan(self, project: str, service: str, spec: Mapping[str, Any]) -> tuple[str | None, str]:
        """The container to replace, and how: ``rolling`` (new beside old) or ``recreate`` (stop first)."""
        current = self.current(project, service)
        if current is None:
            return None, "rolling"
        container = await self._client.inspect_container(str(current["containerId"]))
        if container is None:
            return None, "rolling"
        running = bool((container.get("State") or {}).get("Running"))
        host_port = _int(spec, "hostPort", service)
        port = _int(spec, "port", service)
        if running and host_port is not None and port is not None and not self._uses_ingress(spec, service):
            held = {
                int(binding["HostPort"])
                for bindings in ((container.get("NetworkSettings") or {}).get("Ports") or {}).values()
                for binding in bindings or []
                if binding.get("HostPort")
            }
            if host_port in held:
                return str(container["Id"]), "recreate"
        return str(container["Id"]), "rolling"

    # -- actions and checks on the running container -----------------------------------------------------

    async def _running_container(self, project: str, service: str) -> dict[str, Any]:
        current = self.current(project, service)
        container = None if current is None else await self._client.inspect_container(current["containerId"])
        if container is None:
            raise DriverError(
                f"service '{service}' has no container: deploy it first (a Release node)", retryable=False
            )
        return container

    async def restart(self, request: DriverRequest) -> DriverAnswer:
        """A new container of the same image (with the spec given now) replaces the current one, as a
        deploy does: side by side, traffic moved once it is healthy, so a restart has no downtime."""
        project, service = request.project_id, request.resource.id
        await self._running_container(project, service)  # refuses a service never deployed
        current = self.current(project, service)
        assert current is not None
        artifact = replace(Artifact.from_data(current["artifact"]), image=str(current["image"]))
        return self.deploy(request, artifact, pull=False)

    async def status(self, request: DriverRequest) -> DriverAnswer:
        """DONE when the service's container runs and passes one probe; IN_PROGRESS while it may still."""
        project, service = request.project_id, request.resource.id
        handle = {"kind": "service", "id": service}
        current = self.current(project, service)
        if current is None:
            return DriverAnswer(
                AnswerState.IN_PROGRESS, {}, f"service '{service}' is not deployed yet", handle
            )
        data = {
            "containerId": current["containerId"],
            "artifact": current["artifact"],
            "image": current["image"],
        }
        container = await self._client.inspect_container(str(current["containerId"]))
        if container is None:
            return DriverAnswer(
                AnswerState.FAILED,
                data,
                f"the container of service '{service}' was removed; deploy it again",
                handle,
            )
        state = container.get("State") or {}
        if not state.get("Running"):
            message = f"service '{service}' is not running (exit code {state.get('ExitCode')})"
            return DriverAnswer(AnswerState.IN_PROGRESS, data, message, handle)
        check = health.parse_health_check(request.resource.spec, service)
        problem = await health.probe(
            self._client, container, check, _int(request.resource.spec, "port", service)
        )
        if problem is not None:
            return DriverAnswer(
                AnswerState.IN_PROGRESS, data, f"service '{service}' is not healthy: {problem}", handle
            )
        return DriverAnswer(AnswerState.DONE, data, f"service '{service}' is running", handle)

    async def execute(self, request: DriverRequest) -> DriverAnswer:
        params, service = request.params, request.resource.id
        command = command_of(params, f"service '{service}'")
        container = await self._running_container(request.project_id, service)
        if not (container.get("State") or {}).get("Running"):
            raise DriverError(f"service '{service}' is not running: restart or deploy it first")
        detach = bool((params.get("options") or {}).get("dispatchOnly"))
        user = ":".join(str(part) for part in (params.get("user"), params.get("group")) if part) or None
        result = await self._client.exec(str(container["Id"]), command, user=user, detach=detach)
        data = {"exitCode": result.exit_code, "output": result.output[-4000:], "containerId": container["Id"]}
        if result.exit_code != 0:
            message = f"'{' '.join(command)}' in service '{service}' exited with code {result.exit_code}"
            return DriverAnswer(AnswerState.FAILED, data, f"{message}: {result.output.strip()[-600:]}")
        return DriverAnswer(AnswerState.DONE, data, "dispatched" if detach else "command succeeded")


def command_of(params: Mapping[str, Any], where: str) -> list[str]:
    """An Action's command: run as given (no shell), or through ``shell -c`` when ``shell`` is set."""
    command = params.get("command")
    if not command:
        raise DriverError(f"executing in {where} needs a 'command'", retryable=False)
    shell = params.get("shell")
    if shell and isinstance(command, str):
        return [*health.as_command(shell, "shell"), "-c", command]
    return health.as_command(command, "command")
