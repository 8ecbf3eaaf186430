"""The local ingress: shared by several worker processes, no process's route change undoes another's;
under steady traffic, no route change fails a request."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from tests.cleanup import kill_processes_under
from tests.integration.platform.local_support import SERVER, eventually
from tests.integration.platform.polling_client import Client
from tests.postgres_cluster import free_port

from releaseflow.platform.local.ingress import (
    MIGRATE_QUEUED_CONNECTIONS,
    Ingress,
    Route,
    keep_queued_connections,
)

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[3]
PER_PROCESS = 3  # services each process deploys at once: six route changes within a few milliseconds


@pytest.fixture
async def root(tmp_path: Path) -> AsyncIterator[Path]:
    yield tmp_path / "root"
    await Ingress(tmp_path / "root" / "ingress").shutdown()
    kill_processes_under(tmp_path)


async def test_ingress__concurrent_deploys_from_two_processes_keep_every_route(root: Path) -> None:
    go = root.parent / "go"
    services = {f"svc-{process}-{index}": free_port() for process in "ab" for index in range(PER_PROCESS)}
    deployers = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.integration.platform.ingress_deployer",
            str(root),
            str(go),
            *(f"{name}={port}" for name, port in services.items() if name.startswith(f"svc-{process}-")),
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            stdout=asyncio.subprocess.PIPE,
        )
        for process in "ab"
    ]
    try:
        await asyncio.sleep(0.5)  # both have written their artifacts and wait for the word
        go.touch()
        outputs = [await asyncio.wait_for(deployer.communicate(), 60) for deployer in deployers]
    finally:
        for deployer in deployers:
            if deployer.returncode is None:
                deployer.kill()
                await deployer.communicate()
    assert [deployer.returncode for deployer in deployers] == [0, 0]
    reported = sorted(line for stdout, _ in outputs for line in stdout.decode().splitlines())
    assert reported == sorted(f"{name} running" for name in services)

    routes = await Ingress(root / "ingress").routes()

    assert routes is not None and sorted(routes) == sorted(f"127.0.0.1:{port}" for port in services.values())
    async with httpx.AsyncClient(trust_env=False, timeout=5.0) as client:
        for name, port in services.items():
            assert (await client.get(f"http://127.0.0.1:{port}/")).text == name


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


@pytest.fixture
def fresh_host() -> Iterator[None]:
    """net.ipv4.tcp_migrate_req off, as on a fresh host (the ingress must turn it on); as found after."""
    found = MIGRATE_QUEUED_CONNECTIONS.read_text()
    try:
        MIGRATE_QUEUED_CONNECTIONS.write_text("0\n")
    except OSError as error:
        pytest.skip(f"needs root, to set net.ipv4.tcp_migrate_req as releaseflow does: {error}")
    yield
    MIGRATE_QUEUED_CONNECTIONS.write_text(found)


@pytest.mark.usefixtures("fresh_host")
async def test_ingress__route_changes_under_steady_traffic__no_client_sees_a_reset(root: Path) -> None:
    """Found in CI (a deploy test saw "connection reset by peer"): each configuration Caddy loads binds
    new listening sockets and closes the old ones, and Linux reset the connections queued on a closing
    one until the ingress turned on net.ipv4.tcp_migrate_req (39 resets in 100 changes without it)."""
    public = free_port()
    versions = {name: free_port() for name in ("one", "two")}
    servers = []
    for name, port in versions.items():
        (root.parent / name).mkdir(parents=True)
        (root.parent / name / "server.py").write_text(SERVER.format(version=name, delay=0))
        servers.append(
            subprocess.Popen(  # noqa: ASYNC220 - our test servers, killed below
                [sys.executable, "server.py"], cwd=root.parent / name, env={**os.environ, "PORT": str(port)}
            )
        )
    clients = [Client(public, interval=0) for _ in range(3)]
    try:
        # Both versions listen before traffic starts: only route changes are measured.
        for port in versions.values():
            await eventually(lambda port=port: listening(port), timeout=30)
        ingress = Ingress(root / "ingress")
        await ingress.change({"api": Route(f"127.0.0.1:{public}", f"127.0.0.1:{versions['one']}")}, dict)
        for client in clients:
            client.start()

        for change in range(100):
            serving = "two" if change % 2 == 0 else "one"
            route = Route(f"127.0.0.1:{public}", f"127.0.0.1:{versions[serving]}")
            await ingress.change({"api": route}, dict)
            await asyncio.sleep(0.02)
    finally:
        for client in clients:
            client.finish()
        for server in servers:
            server.kill()
            server.wait()

    assert [failure for client in clients for failure in client.failures] == []
    assert {answer for client in clients for answer in client.answers} == {"one", "two"}
    assert MIGRATE_QUEUED_CONNECTIONS.read_text().strip() == "1"


def test_keep_queued_connections__turns_the_setting_on_or_says_how(tmp_path: Path) -> None:
    setting = tmp_path / "tcp_migrate_req"
    setting.write_text("0\n")

    assert keep_queued_connections(setting) is None and setting.read_text() == "1\n"
    problem = keep_queued_connections(tmp_path / "no such setting")
    assert problem is not None and "sysctl -w net.ipv4.tcp_migrate_req=1" in problem
