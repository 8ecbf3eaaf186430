"""A worker process of its own for the ingress tests: deploys services on a shared root, then exits.

``python -m tests.integration.platform.ingress_deployer ROOT GO SERVICE=PORT ...`` writes each service's
artifact under ROOT, waits until the file GO exists (so several of these deploy at the same moment),
deploys them all at once with a ``ServiceManager`` of ROOT, waits until each has settled and prints
``<service> <status>`` per service. The services and the ingress go on running after it exits.
"""

from __future__ import annotations

import asyncio
import shlex
import sys
import time
from pathlib import Path

from tests.integration.platform.local_support import SERVER

from releaseflow.platform.driver import Artifact, Resource
from releaseflow.platform.local.service_records import DeploymentStatus
from releaseflow.platform.local.services import ServiceManager


def prepare(root: Path, go: Path, services: dict[str, int]) -> None:
    """Write the artifacts, then wait for the word."""
    for service_id in services:
        folder = root.parent / "artifacts" / service_id
        folder.mkdir(parents=True)
        (folder / "server.py").write_text(SERVER.format(version=service_id, delay=0))
    deadline = time.monotonic() + 30
    while not go.exists():
        assert time.monotonic() < deadline, "never told to go"
        time.sleep(0.005)


async def main(root: Path, services: dict[str, int]) -> None:
    manager = ServiceManager(root)
    started = []
    deadline = time.monotonic() + 30
    for service_id, port in services.items():
        spec = {
            "runCommand": f"{shlex.quote(sys.executable)} server.py",
            "port": port,
            "healthCheck": {"type": "http", "intervalSeconds": 0.02, "timeoutSeconds": 20},
        }
        resource = Resource(id=service_id, kind="service", driver="local", spec=spec)
        artifact = Artifact(kind="build", build_service="b", build_id=service_id)
        folder = root.parent / "artifacts" / service_id
        started.append(await manager.deploy(resource, artifact, folder, key=f"key-{service_id}"))
    try:
        for deployment in started:
            while (current := manager.deployment(deployment.id)).status is DeploymentStatus.DEPLOYING:
                assert time.monotonic() < deadline, f"{deployment.id} still deploying"
                await asyncio.sleep(0.02)
            print(current.service_id, current.status.value, flush=True)
    finally:
        await manager.stop()


if __name__ == "__main__":
    root = Path(sys.argv[1])
    services = {name: int(port) for name, port in (arg.split("=", 1) for arg in sys.argv[3:])}
    prepare(root, Path(sys.argv[2]), services)
    asyncio.run(main(root, services))
