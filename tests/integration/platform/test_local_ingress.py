"""The local ingress shared by several worker processes: no process's route change undoes another's."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from tests.cleanup import kill_processes_under
from tests.postgres_cluster import free_port

from releaseflow.platform.local.ingress import Ingress

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
