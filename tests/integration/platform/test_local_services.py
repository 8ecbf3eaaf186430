"""Services of the local driver as real processes: deploys, failures, health checks, supervision, adoption."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.cleanup import kill_processes_under
from tests.integration.platform.local_support import SERVER, eventually
from tests.integration.platform.polling_client import Client
from tests.postgres_cluster import free_port

from releaseflow.platform.driver import Artifact, DriverError, Resource
from releaseflow.platform.local.service_records import Deployment, DeploymentStatus, ServiceState
from releaseflow.platform.local.services import ServiceManager
from releaseflow.processes import is_alive

FAST = {"intervalSeconds": 0.05, "timeoutSeconds": 10}


class World:
    """A root for managers, artifact folders, a port, and every manager made, stopped at the end."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.root = tmp_path / "root"
        self.port = free_port()
        self.managers: list[ServiceManager] = []

    def manager(self, **options: float) -> ServiceManager:
        manager = ServiceManager(self.root, **options)
        self.managers.append(manager)
        return manager

    def artifact(
        self, version: str, *, delay: float = 0.0, command: str | None = None
    ) -> tuple[Artifact, Path]:
        folder = self.tmp_path / "artifacts" / version
        folder.mkdir(parents=True)
        (folder / "server.py").write_text(SERVER.format(version=version, delay=delay))
        (folder / "VERSION").write_text(version)
        if command is not None:
            (folder / "command").write_text(command)
        return Artifact(kind="build", build_service="api-build", build_id=version), folder

    def service(self, health: Mapping[str, Any] | None = None, **spec: Any) -> Resource:
        run = f"{shlex.quote(sys.executable)} server.py"
        spec = {
            "runCommand": run,
            "port": self.port,
            "healthCheck": dict(health or {"type": "http"}, **FAST),
        } | spec
        return Resource(id="api", kind="service", driver="local", spec=spec)

    async def get(self) -> str:
        async with httpx.AsyncClient(trust_env=False, timeout=2.0) as client:
            return (await client.get(f"http://127.0.0.1:{self.port}/")).text

    async def answers(self) -> str:
        """The service's answer, or "" while nothing listens."""
        try:
            return await self.get()
        except httpx.TransportError:
            return ""

    def state(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.root / "services" / "api" / "state.json").read_text())
        return data


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    world = World(tmp_path)
    yield world
    for manager in world.managers:
        await manager.stop()
    kill_processes_under(tmp_path)


async def settled(manager: ServiceManager, deployment: Deployment, timeout: float = 15.0) -> Deployment:
    deadline = time.monotonic() + timeout
    while (current := manager.deployment(deployment.id)).status is DeploymentStatus.DEPLOYING:
        assert time.monotonic() < deadline, f"deployment {deployment.id} still deploying"
        await asyncio.sleep(0.02)
    return current


async def deploy(
    world: World, manager: ServiceManager, version: str, service: Resource | None = None
) -> Deployment:
    artifact, folder = world.artifact(version)
    started = await manager.deploy(service or world.service(), artifact, folder, key=f"key-{version}")
    return await settled(manager, started)


async def test_service__deploy_replaces_the_release_and_stops_the_old_process(world: World) -> None:
    manager = world.manager()
    first = await deploy(world, manager, "v1")
    assert first.status is DeploymentStatus.RUNNING, first.error
    assert await world.get() == "v1"
    old = world.state()["process"]

    second = await deploy(world, manager, "v2")

    assert second.status is DeploymentStatus.RUNNING, second.error
    assert second.previous_artifact == first.artifact
    assert second.ended_at is not None and second.ended_at >= second.started_at
    assert await world.get() == "v2"
    assert not is_alive(old["pid"], old["startTime"])
    status = await manager.status("api")
    assert (status.state, status.healthy, status.pid) == (ServiceState.RUNNING, True, second.pid)
    assert status.artifact == second.artifact and status.port == world.port and status.restarts == 0
    assert "serving v2" in manager.logs("api", 5)


async def test_service__deploy_returns_at_once_and_same_key_is_one_deployment(world: World) -> None:
    manager = world.manager()
    artifact, folder = world.artifact("v1", delay=0.5)

    started = time.monotonic()
    first = await manager.deploy(world.service(), artifact, folder, key="attempt-1")
    again = await manager.deploy(world.service(), artifact, folder, key="attempt-1")

    assert time.monotonic() - started < 0.4
    assert first.status is DeploymentStatus.DEPLOYING and first.id.startswith("deploy-")
    assert again.id == first.id
    assert (await settled(manager, first)).status is DeploymentStatus.RUNNING
    assert (
        await manager.deploy(world.service(), artifact, folder, key="attempt-1")
    ).status is DeploymentStatus.RUNNING
    assert len(list((world.root / "deployments").iterdir())) == 1
    assert sum("--- releaseflow" in line for line in manager.logs("api")) == 1  # one process started


async def test_service__failed_deploy_of_a_crashing_release_keeps_the_previous_one(world: World) -> None:
    manager = world.manager()
    await deploy(world, manager, "v2")
    broken = world.service(runCommand="echo 'cannot open config.yaml' >&2; exit 3")

    failed = await deploy(world, manager, "v3", broken)

    assert failed.status is DeploymentStatus.FAILED
    assert "new release (build v3) exited with code 3" in failed.error
    assert "cannot open config.yaml" in failed.error
    assert "previous release (build v2) keeps serving, uninterrupted" in failed.error
    assert "Not retried" in failed.error and failed.retryable is False
    assert await world.get() == "v2"
    status = await manager.status("api")
    assert status.state is ServiceState.RUNNING and status.artifact is not None
    assert status.artifact.build_id == "v2"


async def test_service__failed_deploy_of_a_silent_release_says_which_check_failed(world: World) -> None:
    manager = world.manager()
    await deploy(world, manager, "v2")
    silent = world.service(health={"type": "http", "path": "/health"}, runCommand="echo started; sleep 30")
    silent = Resource(silent.id, silent.kind, silent.driver, {**silent.spec, "healthCheck": {"type": "http",
                      "path": "/health", "timeoutSeconds": 1, "intervalSeconds": 0.1}})  # fmt: skip

    failed = await deploy(world, manager, "v3", silent)

    assert failed.status is DeploymentStatus.FAILED
    assert "did not pass its health check (http GET http://127.0.0.1:" in failed.error
    assert "/health) within 1 s" in failed.error
    assert "| started" in failed.error
    assert failed.retryable is True  # a check that ran out of time may pass on another attempt
    assert await world.get() == "v2"


async def test_service__first_deploy_that_fails_leaves_the_service_stopped(world: World) -> None:
    manager = world.manager()

    failed = await deploy(world, manager, "v1", world.service(runCommand="exit 1"))

    assert failed.status is DeploymentStatus.FAILED and "Nothing ran before it" in failed.error
    assert failed.retryable is False
    assert (await manager.status("api")).state is ServiceState.STOPPED


async def test_service__tcp_health_check(world: World) -> None:
    manager = world.manager()
    done = await deploy(world, manager, "v1", world.service(health={"type": "tcp"}))

    assert done.status is DeploymentStatus.RUNNING, done.error
    assert (await manager.status("api")).healthy


async def test_service__command_health_check(world: World) -> None:
    manager = world.manager()
    # The check runs in the release's environment: it finds the port in PORT.
    fetch = "import os, urllib.request; urllib.request.urlopen(f'http://127.0.0.1:{os.environ[\"PORT\"]}/')"
    check = {"type": "command", "command": f"{shlex.quote(sys.executable)} -c {shlex.quote(fetch)}"}
    good = await deploy(world, manager, "v1", world.service(health=check))
    assert good.status is DeploymentStatus.RUNNING, good.error

    never = {"type": "command", "command": "echo not yet; exit 1"}
    service = world.service(health=never)
    service = Resource(service.id, service.kind, service.driver, {**service.spec, "healthCheck": {**never,
                       "timeoutSeconds": 0.5, "intervalSeconds": 0.1}})  # fmt: skip
    bad = await deploy(world, manager, "v2", service)

    assert bad.status is DeploymentStatus.FAILED
    assert "command 'echo not yet; exit 1' exited with code 1: not yet" in bad.error
    assert await world.get() == "v1"


async def test_service__wrong_spec_is_refused_before_anything_starts(world: World) -> None:
    manager = world.manager()
    artifact, folder = world.artifact("v1")

    with pytest.raises(DriverError, match=r"healthCheck\.type") as error:
        await manager.deploy(world.service(health={"type": "ping"}), artifact, folder, key="k")
    assert error.value.retryable is False


async def test_service__supervisor_restarts_a_crashed_service_with_backoff(world: World) -> None:
    manager = world.manager()
    await manager.start()
    await deploy(world, manager, "v1")

    for crash, backoff in enumerate((1.0, 2.0), start=1):
        pid = world.state()["process"]["pid"]
        killed = time.monotonic()
        os.killpg(pid, signal.SIGKILL)

        def replaced(old: int = pid) -> bool:
            return (world.state()["process"] or {}).get("pid") not in (None, old)

        await eventually(replaced)
        assert time.monotonic() - killed >= backoff - 0.05
        assert world.state()["restarts"] == crash and world.state()["failures"] == crash
        await eventually(world.answers, timeout=5)
        assert await world.get() == "v1"
    status = await manager.status("api")
    assert status.state is ServiceState.RUNNING and status.restarts == 2


async def test_service__a_new_manager_adopts_the_running_process(world: World) -> None:
    first = world.manager()
    await first.start()
    await deploy(world, first, "v1")
    await first.stop()
    pid = world.state()["process"]["pid"]
    assert await world.get() == "v1"  # stop() left it running

    second = world.manager(supervise_seconds=0.05)
    await second.start()
    await asyncio.sleep(0.5)  # ten supervisor rounds: time enough to (wrongly) restart it

    status = await second.status("api")
    assert (status.state, status.pid, status.restarts, status.healthy) == (ServiceState.RUNNING, pid, 0, True)
    assert await world.get() == "v1"


async def test_service__adoption_refuses_a_pid_now_owned_by_another_process(world: World) -> None:
    first = world.manager()
    await deploy(world, first, "v1")
    state = world.state()
    original = dict(state["process"])
    state["process"]["startTime"] += 1  # as if the pid had been reused by an unrelated process
    (world.root / "services" / "api" / "state.json").write_text(json.dumps(state))

    second = world.manager(supervise_seconds=0.05)
    await second.start()
    await eventually(lambda: world.state()["process"] is None)  # judged crashed, not adopted

    assert (await second.status("api")).state is ServiceState.CRASHED
    assert is_alive(original["pid"], original["startTime"])  # and not killed: it is not ours
    os.killpg(original["pid"], signal.SIGKILL)
    await eventually(lambda: (world.state()["process"] or {}).get("pid") not in (None, original["pid"]))
    await eventually(world.answers, timeout=5)
    assert (await second.status("api")).restarts == 1


async def test_service__a_deployment_interrupted_by_an_exit_is_resolved_at_start(world: World) -> None:
    first = world.manager()
    await deploy(world, first, "v1")
    artifact, folder = world.artifact("v2", delay=0.5)
    started = await first.deploy(world.service(), artifact, folder, key="slow")
    await eventually(lambda: first.deployment(started.id).pid is not None)
    await first.stop()  # releaseflow exits while v2 is still starting
    assert first.deployment(started.id).status is DeploymentStatus.DEPLOYING

    second = world.manager()
    await second.start()

    assert (await settled(second, started)).status is DeploymentStatus.RUNNING
    assert await world.get() == "v2"


async def test_service__restart_starts_the_same_artifact_in_a_new_process(world: World) -> None:
    manager = world.manager()
    deployed = await deploy(world, manager, "v1")

    restarted = await settled(manager, await manager.restart(world.service(env={"GREETING": "hi"}), key="r1"))

    assert restarted.status is DeploymentStatus.RUNNING and restarted.kind == "restart"
    assert restarted.artifact == deployed.artifact and restarted.pid != deployed.pid
    assert await world.get() == "v1 hi"


async def test_service__execute_runs_in_the_release_folder_and_environment(world: World) -> None:
    manager = world.manager()
    await deploy(world, manager, "v1", world.service(env={"GREETING": "hello"}))

    shell = await manager.execute(
        world.service(), 'echo "$(cat VERSION) $GREETING $PORT"; exit 4', shell=True
    )
    plain = await manager.execute(world.service(), "cat VERSION", shell=False)
    late = await manager.execute(world.service(), "sleep 5", shell=False, timeout=0.2)

    private = (await manager.status("api")).private_port
    assert private is not None and private != world.port  # the version's own port, behind the ingress
    assert (shell.exit_code, shell.output) == (4, f"v1 hello {private}\n")
    assert (plain.exit_code, plain.output, plain.timed_out) == (0, "v1", False)
    assert late.timed_out


async def test_service__status_of_a_service_never_deployed_is_unknown(world: World) -> None:
    status = await world.manager().status("api")

    assert status.state is ServiceState.UNKNOWN and status.pid is None


@pytest.mark.parametrize("outcome", ["good", "exits at start"])
async def test_service__deploy_without_downtime__a_client_sees_no_failed_request(
    world: World, outcome: str
) -> None:
    manager = world.manager()
    assert (await deploy(world, manager, "v1")).status is DeploymentStatus.RUNNING
    client = Client(world.port)
    client.start()
    await asyncio.sleep(0.2)
    # The new version takes a while to listen, as real ones do; the broken one exits at start.
    artifact, folder = world.artifact("v2", delay=0.4)
    service = world.service() if outcome == "good" else world.service(runCommand="exit 3")

    done = await settled(manager, await manager.deploy(service, artifact, folder, key="v2"))
    await asyncio.sleep(0.2)
    client.finish()

    assert client.failures == []
    expected = {"good": DeploymentStatus.RUNNING, "exits at start": DeploymentStatus.FAILED}[outcome]
    assert done.status is expected, done.error
    served = {"good": ["v1", "v2"], "exits at start": ["v1"]}[outcome]
    assert sorted(set(client.answers)) == served and client.answers[-1] == served[-1]
    assert len(client.answers) > 10


async def test_service__new_version_listens_on_a_private_port_behind_the_ingress(world: World) -> None:
    manager = world.manager()
    await deploy(world, manager, "v1")

    status = await manager.status("api")

    assert status.port == world.port and status.private_port not in (None, world.port)
    assert await manager.ingress.routes() == {f"127.0.0.1:{world.port}": f"127.0.0.1:{status.private_port}"}
    async with httpx.AsyncClient(trust_env=False) as client:
        assert (await client.get(f"http://127.0.0.1:{status.private_port}/")).text == "v1"


async def test_service__ingress_is_adopted_after_a_restart_and_restarted_when_it_dies(world: World) -> None:
    first = world.manager()
    await first.start()
    await deploy(world, first, "v1")
    await first.stop()
    caddy = first.ingress.process()
    assert caddy is not None and caddy.is_alive()
    client = Client(world.port)
    client.start()

    second = world.manager(supervise_seconds=0.05)
    await second.start()
    await asyncio.sleep(0.3)

    assert second.ingress.process() == caddy  # adopted, not replaced
    client.finish()
    assert client.failures == [] and set(client.answers) == {"v1"}
    os.killpg(caddy.pid, signal.SIGKILL)
    await eventually(lambda: second.ingress.running() and second.ingress.process() != caddy)
    await eventually(world.answers, timeout=5)
    assert await world.get() == "v1"


async def test_service__a_deploy_needs_caddy_and_says_what_to_install(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    manager = world.manager()
    artifact, folder = world.artifact("v1")
    monkeypatch.setenv("PATH", str(world.tmp_path / "empty"))

    with pytest.raises(DriverError, match=r"apt-get install caddy") as error:
        await manager.deploy(world.service(), artifact, folder, key="k")
    assert error.value.retryable is False


async def test_service__a_deploy_interrupted_while_the_old_version_drains_is_finished_at_start(
    world: World,
) -> None:
    first = world.manager()
    # v1 ignores SIGTERM, so retiring it takes the whole stop timeout: time to stop releaseflow then.
    stubborn = world.service(runCommand=f"trap '' TERM; exec {shlex.quote(sys.executable)} server.py")
    await deploy(world, first, "v1", stubborn)
    old = world.state()["process"]
    artifact, folder = world.artifact("v2")
    started = await first.deploy(world.service(stopTimeoutSeconds=2), artifact, folder, key="v2")
    await eventually(lambda: world.state()["retiring"] is not None)
    await first.stop()  # releaseflow exits after the switch, before the old version is stopped
    assert first.deployment(started.id).status is DeploymentStatus.DEPLOYING
    assert await world.get() == "v2"

    second = world.manager()
    await second.start()

    assert (await settled(second, started)).status is DeploymentStatus.RUNNING
    assert not is_alive(old["pid"], old["startTime"]) and world.state()["retiring"] is None
    assert await world.get() == "v2"
