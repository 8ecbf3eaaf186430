"""A small real project for end-to-end tests of the docker driver.

A git repository holds a Dockerfile that builds a ``FROM scratch`` image around Debian's static
busybox: its ``httpd`` serves ``index.html``, which holds the version of the commit. The configuration
names the resources of Northflank's documented parallel example (builder, job-staging,
deployment-staging, job-prod, deployment-prod), all on the ``docker`` driver, so that flow runs
unmodified. The jobs run a busybox shell command and exit with ``$EXIT_CODE`` (0 unless a JobRun's
``runtimeEnvironment`` says otherwise).
"""

from __future__ import annotations

import asyncio
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import httpx

from releaseflow.platform.docker import DockerClient
from releaseflow.platform.docker.driver import DockerDriver
from releaseflow.platform.docker.health import published_address

PROJECT = "shop"
CONTAINER_PORT = 8080
SERVES = '["httpd", "-f", "-p", "8080", "-h", "/www"]'
# Without -f busybox httpd puts itself in the background: the container's main process exits at once.
EXITS_AT_ONCE = '["httpd", "-p", "8080", "-h", "/www"]'

GIT = ["git", "-c", "user.name=releaseflow", "-c", "user.email=releaseflow@example.invalid"]


class ImageRepository:
    """A git repository whose commits are versions of the busybox httpd image."""

    def __init__(self, path: Path, busybox: Path) -> None:
        self.path = path
        path.mkdir(parents=True)
        subprocess.run([*GIT, "init", "-q", "-b", "main", str(path)], check=True)
        shutil.copy(busybox, path / "busybox")

    def commit(self, version: str, cmd: str = SERVES) -> str:
        (self.path / "index.html").write_text(version)
        (self.path / "Dockerfile").write_text(
            "FROM scratch\nCOPY busybox /bin/busybox\nCOPY index.html /www/index.html\n"
            f'ENTRYPOINT ["/bin/busybox"]\nCMD {cmd}\n'
        )
        subprocess.run([*GIT, "-C", str(self.path), "add", "-A"], check=True)
        subprocess.run([*GIT, "-C", str(self.path), "commit", "-q", "-m", version], check=True)
        return subprocess.run(
            ["git", "-C", str(self.path), "rev-parse", "HEAD"], check=True, capture_output=True, text=True
        ).stdout.strip()


def configuration(repository: Path) -> dict[str, Any]:
    service: dict[str, Any] = {
        "port": CONTAINER_PORT,
        "healthCheck": {"type": "http", "path": "/index.html", "timeoutSeconds": 15, "intervalSeconds": 0.2},
        "stopGraceSeconds": 1,
    }

    def job(name: str) -> dict[str, Any]:
        return {
            "command": ["sh", "-c", 'echo "$JOB runs $(cat /www/index.html)"; exit "$EXIT_CODE"'],
            "env": {"EXIT_CODE": "0", "JOB": name},
        }

    def docker(resource_id: str, spec: dict[str, Any]) -> dict[str, Any]:
        return {"id": resource_id, "driver": "docker", "spec": spec}

    return {
        "projects": [
            {
                "id": PROJECT,
                "resources": {
                    "buildServices": [docker("builder", {"repository": str(repository)})],
                    "services": [docker("deployment-staging", service), docker("deployment-prod", service)],
                    "jobs": [docker("job-staging", job("job-staging")), docker("job-prod", job("job-prod"))],
                },
                "pipelines": [
                    {
                        "id": "main",
                        "name": "Main",
                        "stages": [
                            {"name": "Development", "resources": []},
                            {"name": "Staging", "resources": ["deployment-staging", "job-staging"]},
                            {"name": "Production", "resources": ["deployment-prod", "job-prod"]},
                        ],
                    }
                ],
            }
        ]
    }


def _template(root: dict[str, Any]) -> dict[str, Any]:
    return {"apiVersion": "v1.2", "spec": root}


def _parallel(*steps: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "Workflow", "spec": {"type": "parallel", "steps": list(steps)}}


def _release_build(ref: str, target: str, kind: str, **extra: Any) -> dict[str, Any]:
    origin = {"id": "builder", "branch": "main", "build": "${refs.build.id}"}
    spec = {"type": "build", "origin": origin, "target": {"id": target, "type": kind}}
    return {"kind": "Release", "ref": ref, "spec": spec, **extra}


def _promote(ref: str, origin: str, target: str, kind: str, **extra: Any) -> dict[str, Any]:
    spec = {
        "type": "deployment",
        "origin": {"id": origin, "type": kind},
        "target": {"id": target, "type": kind},
    }
    return {"kind": "Release", "ref": ref, "spec": spec, **extra}


# Build, then release that build to the job and the service in parallel; the service's Release waits
# until it runs. A failed deploy is tried once more, soon (the default is 3 attempts, 10 s apart).
STAGING_FLOW = _template(
    {
        "kind": "Workflow",
        "spec": {
            "type": "sequential",
            "steps": [
                {
                    "kind": "Build",
                    "ref": "build",
                    "spec": {"id": "builder", "type": "service", "branch": "main"},
                    "condition": "success",
                },
                _parallel(
                    _release_build("job", "job-staging", "job"),
                    _release_build(
                        "service",
                        "deployment-staging",
                        "service",
                        condition="running",
                        timeoutDuration=60,
                        settings={"maxAttempts": 2, "backoff": {"type": "fixed", "delay": 1}},
                    ),
                ),
            ],
        },
    }
)

# A job run that succeeds, then one whose runtime environment makes the command exit with code 3.
JOB_RUN_FLOW = _template(
    {
        "kind": "Workflow",
        "spec": {
            "type": "sequential",
            "steps": [
                {"kind": "JobRun", "ref": "check", "spec": {"jobId": "job-prod"}, "condition": "success"},
                {
                    "kind": "JobRun",
                    "ref": "failing",
                    "spec": {"jobId": "job-prod", "runtimeEnvironment": {"EXIT_CODE": "3"}},
                    "condition": "success",
                    "settings": {"maxAttempts": 1},
                },
            ],
        },
    }
)

# Promotion: what staging runs goes to production, the service once it runs.
PROMOTE_FLOW = _template(
    _parallel(
        _promote("job", "job-staging", "job-prod", "job"),
        _promote("service", "deployment-staging", "deployment-prod", "service", condition="running"),
    )
)


async def host_port(client: DockerClient, container_id: str) -> int:
    """Where this host reaches a service container, as the driver's health checks find it."""
    container = await client.inspect_container(container_id)
    assert container is not None, f"container {container_id} does not exist"
    address = published_address(container, CONTAINER_PORT, client.host)
    assert address is not None, f"container {container_id} publishes no port {CONTAINER_PORT}"
    return address[1]


async def page(client: DockerClient, container_id: str) -> str:
    """What a service container serves, fetched from this host on its published port."""
    port = await host_port(client, container_id)
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(f"http://{client.host}:{port}/index.html")
    response.raise_for_status()
    return response.text


def current_container(driver: DockerDriver, service: str) -> str:
    """The container the driver records as what ``service`` runs now."""
    current = driver.services.current(PROJECT, service)
    assert current is not None, f"the docker driver records no container for {service}"
    return str(current["containerId"])


async def eventually_serves(
    client: DockerClient, driver: DockerDriver, service: str, expected: str, timeout: float = 30.0
) -> str:
    """What ``service`` serves once it serves ``expected`` (a deploy nobody waited for), else the last."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        try:
            last = await page(client, current_container(driver, service))
        except (AssertionError, httpx.HTTPError) as error:
            last = repr(error)
        if last == expected:
            return last
        await asyncio.sleep(0.1)
    return last
