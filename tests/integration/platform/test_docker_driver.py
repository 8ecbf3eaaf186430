"""The docker driver against a real engine (podman's Docker API) and a real registry: no mocks.

The test service is busybox's httpd in a FROM scratch image built from a git repository made here;
it serves ``index.html``, which holds the version of the commit.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.integration.platform.docker_env import DockerEnvironment, free_port, require_tools
from tests.integration.platform.polling_client import Client

from releaseflow.platform.docker import DockerDriver
from releaseflow.platform.driver import (
    AnswerState,
    Artifact,
    DriverAnswer,
    DriverError,
    DriverRequest,
    Operation,
    Resource,
)

pytestmark = pytest.mark.slow

GOOD = '["httpd", "-f", "-p", "8080", "-h", "/www"]'
# Without -f busybox httpd puts itself in the background: the container's main process exits at once.
EXITS = '["httpd", "-p", "8080", "-h", "/www"]'


@pytest.fixture(scope="session")
def docker_env() -> Iterator[DockerEnvironment]:
    require_tools()
    with DockerEnvironment.start() as environment:
        yield environment


class Repo:
    """A git repository whose commits are versions of the test service."""

    def __init__(self, path: Path, busybox: Path) -> None:
        self.path = path
        path.mkdir()
        self._git("init", "--quiet", "--initial-branch=main")
        shutil.copy(busybox, path / "busybox")

    def _git(self, *args: str) -> str:
        command = ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args]
        return subprocess.run(
            command, cwd=self.path, check=True, capture_output=True, text=True
        ).stdout.strip()

    def commit(self, version: str, cmd: str = GOOD) -> str:
        (self.path / "index.html").write_text(version)
        (self.path / "Dockerfile").write_text(
            "FROM scratch\nCOPY busybox /bin/busybox\nCOPY index.html /www/index.html\n"
            f'ENTRYPOINT ["/bin/busybox"]\nCMD {cmd}\n'
        )
        self._git("add", "-A")
        self._git("commit", "--quiet", "-m", version)
        return self._git("rev-parse", "HEAD")


class Harness:
    """A driver, the resources of one project, and helpers to ask and to wait."""

    def __init__(self, driver: DockerDriver, repo: Repo, project: str) -> None:
        self.driver = driver
        self.repo = repo
        self.project = project
        self.resources = {
            "web-builder": Resource("web-builder", "build_service", "docker", {"repository": str(repo.path)}),
        }
        self._keys = 0

    def add(self, resource_id: str, kind: str, spec: Mapping[str, Any]) -> Resource:
        self.resources[resource_id] = Resource(resource_id, kind, "docker", spec)
        return self.resources[resource_id]

    def request(
        self,
        operation: Operation,
        resource_id: str,
        params: Mapping[str, Any],
        *,
        key: str | None = None,
        artifact: Artifact | None = None,
    ) -> DriverRequest:
        self._keys += 1
        return DriverRequest(
            operation,
            self.resources[resource_id],
            params,
            key or f"{self.project}-key-{self._keys}",
            artifact=artifact,
            resources=self.resources,
            project_id=self.project,
            stage="development",
            run_id="run-1",
        )

    async def settle(self, request: DriverRequest, timeout: float = 30.0) -> DriverAnswer:
        """Perform, then follow until the answer is no longer in progress (or the deadline passes)."""
        answer = await self.driver.perform(request)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while answer.state is AnswerState.IN_PROGRESS:
            assert loop.time() < deadline, f"still in progress after {timeout}s: {answer}"
            await asyncio.sleep(0.1)
            answer = await self.driver.follow(request, answer.handle)
        return answer

    async def build(self, sha: str, **params: Any) -> DriverAnswer:
        spec = {"id": "web-builder", "type": "service", "sha": sha, "branch": "main", **params}
        answer = await self.settle(self.request(Operation.START_BUILD, "web-builder", spec))
        assert answer.state is AnswerState.DONE, answer.message
        return answer

    async def deployed_web(self) -> None:
        """Service 'web' added and running version v1."""
        self.add("web", "service", web_spec())
        build = await self.build(self.repo.commit("v1"))
        assert (await self.deploy_build("web", build.data["id"])).state is AnswerState.DONE

    async def deploy_build(self, service: str, build: str) -> DriverAnswer:
        origin = {"id": "web-builder", "branch": "main", "build": build}
        return await self.settle(self.request(Operation.DEPLOY_BUILD, service, origin))

    async def page(self, service: str) -> str:
        """What the service's current container serves, fetched from this host on its published port."""
        current = self.driver.services.current(self.project, service)
        assert current is not None
        container = await self.driver.client.inspect_container(current["containerId"])
        assert container is not None
        port = container["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
        return await fetch(int(port))


async def fetch(port: int) -> str:
    async with httpx.AsyncClient(timeout=5) as http:
        response = await http.get(f"http://127.0.0.1:{port}/index.html")
    response.raise_for_status()
    return response.text


def web_spec(**extra: Any) -> dict[str, Any]:
    check = {"type": "http", "path": "/index.html", "timeoutSeconds": 10, "intervalSeconds": 0.2}
    return {"port": 8080, "healthCheck": check, "stopGraceSeconds": 1, **extra}


@pytest.fixture
async def harness(
    docker_env: DockerEnvironment, tmp_path: Path, request: pytest.FixtureRequest
) -> AsyncIterator[Harness]:
    driver = DockerDriver(tmp_path / "driver", docker_env.base_url, registry=docker_env.registry)
    await driver.start()
    project = "p" + request.node.name.split("__")[-1].replace("_", "")[:20]
    made = Harness(driver, Repo(tmp_path / "repo", docker_env.busybox), project)
    try:
        yield made
    finally:
        # A test may have replaced the driver with a successor (a restart): stop the one in use too.
        for each in {id(driver): driver, id(made.driver): made.driver}.values():
            await each.stop()
        await driver.services.ingress.shutdown()  # Caddy outlives the driver on purpose: stop ours


def registry_tags(registry: str, repository: str) -> list[str]:
    with urllib.request.urlopen(f"http://{registry}/v2/{repository}/tags/list", timeout=5) as response:
        return list(json.load(response)["tags"])


async def test_docker_driver__builds_deploys_replaces_and_survives_a_broken_image(
    harness: Harness, docker_env: DockerEnvironment
) -> None:
    v1 = harness.repo.commit("v1")
    build1 = await harness.build(v1)
    data = build1.data
    assert (data["sha"], data["branch"], data["buildService"], data["status"]) == (
        v1,
        "main",
        "web-builder",
        "succeeded",
    )
    repository = f"{harness.project}-web-builder"
    assert data["image"] == f"{docker_env.registry}/{repository}:{data['id']}"
    assert {data["id"], v1} <= set(registry_tags(docker_env.registry, repository))
    # The same commit is not built twice, and one idempotency key acts once.
    again = await harness.build(v1)
    assert again.data["id"] == data["id"]
    spec = {"id": "web-builder", "type": "service", "sha": v1, "reuseExistingBuilds": False}
    fresh = await harness.settle(harness.request(Operation.START_BUILD, "web-builder", spec, key="same-key"))
    repeated = await harness.settle(
        harness.request(Operation.START_BUILD, "web-builder", spec, key="same-key")
    )
    assert fresh.data["id"] != data["id"] and repeated.data["id"] == fresh.data["id"]

    harness.add("web", "service", web_spec())
    first = await harness.deploy_build("web", data["id"])
    assert first.state is AnswerState.DONE, first.message
    assert first.data["artifact"]["image"] == data["image"]
    assert first.data["artifact"]["buildId"] == data["id"]
    assert await harness.page("web") == "v1"

    build2 = await harness.build(harness.repo.commit("v2"))
    second = await harness.deploy_build("web", "latest")
    assert second.state is AnswerState.DONE, second.message
    assert second.data["artifact"]["buildId"] == build2.data["id"]
    assert await harness.page("web") == "v2"
    assert await harness.driver.client.inspect_container(first.data["containerId"]) is None

    broken = await harness.build(harness.repo.commit("v3", cmd=EXITS))
    failed = await harness.deploy_build("web", broken.data["id"])
    assert failed.state is AnswerState.FAILED
    # It exits at once; the engine's restart policy may already have brought it back (and down) again.
    assert "did not become healthy: the container" in failed.message, failed.message
    assert "stopped" in failed.message or "keeps exiting" in failed.message, failed.message
    assert "keeps serving" in failed.message
    assert await harness.page("web") == "v2"
    assert await harness.driver.client.inspect_container(failed.data["containerId"]) is None


async def test_docker_driver__fixed_host_port_deploys_without_downtime(harness: Harness) -> None:
    host_port = free_port()
    harness.add("web", "service", web_spec(hostPort=host_port))
    build1 = await harness.build(harness.repo.commit("v1"))
    first = await harness.deploy_build("web", build1.data["id"])
    assert first.state is AnswerState.DONE, first.message
    assert first.data["ports"][0]["port"] == host_port  # the ingress's port, not the container's
    assert await fetch(host_port) == "v1"
    broken = await harness.build(harness.repo.commit("v2-broken", cmd=EXITS))
    build3 = await harness.build(harness.repo.commit("v3"))
    client = Client(host_port, "/index.html")
    client.start()

    failed = await harness.deploy_build("web", broken.data["id"])
    assert await fetch(host_port) == "v1"
    third = await harness.deploy_build("web", build3.data["id"])
    await asyncio.sleep(0.2)
    client.finish()

    assert client.failures == []
    assert sorted(set(client.answers)) == ["v1", "v3"] and client.answers[-1] == "v3"
    assert failed.state is AnswerState.FAILED and failed.retryable is False
    assert "keeps serving, uninterrupted" in failed.message and "Not retried" in failed.message
    assert third.state is AnswerState.DONE, third.message
    assert await harness.driver.client.inspect_container(first.data["containerId"]) is None
    assert await harness.page("web") == "v3"  # the container itself answers on its own port too


async def test_docker_driver__ingress_is_adopted_after_a_driver_restart(
    harness: Harness, docker_env: DockerEnvironment
) -> None:
    host_port = free_port()
    harness.add("web", "service", web_spec(hostPort=host_port))
    build = await harness.build(harness.repo.commit("v1"))
    assert (await harness.deploy_build("web", build.data["id"])).state is AnswerState.DONE
    caddy = harness.driver.services.ingress.process()
    client = Client(host_port, "/index.html")
    client.start()

    await harness.driver.stop()
    restarted = DockerDriver(harness.driver.root, docker_env.base_url, registry=docker_env.registry)
    await restarted.start()
    await asyncio.sleep(0.3)
    client.finish()
    await restarted.stop()

    assert restarted.services.ingress.process() == caddy and caddy is not None and caddy.is_alive()
    assert client.failures == [] and set(client.answers) == {"v1"}


async def test_docker_driver__same_deploy_key_makes_one_container(
    harness: Harness, docker_env: DockerEnvironment
) -> None:
    harness.add("web", "service", web_spec())
    build = await harness.build(harness.repo.commit("v1"))
    origin = {"id": "web-builder", "branch": "main", "build": build.data["id"]}
    request = harness.request(Operation.DEPLOY_BUILD, "web", origin, key="run/deploy/1")

    first = await harness.driver.perform(request)
    # The key index is lost (as when releaseflow dies before writing it): the record still answers.
    for entry in (harness.driver.root / "keys").iterdir():
        entry.unlink()
    again = await harness.driver.perform(request)
    done = await harness.settle(request)

    assert again.data["deploymentId"] == first.data["deploymentId"] == done.data["deploymentId"]
    assert done.state is AnswerState.DONE, done.message
    labels = [f"io.releaseflow.project={harness.project}", "io.releaseflow.resource=web"]
    transport = httpx.AsyncHTTPTransport(uds=str(docker_env.socket_path))
    async with httpx.AsyncClient(transport=transport, base_url="http://engine") as engine:
        params = {"all": "true", "filters": json.dumps({"label": labels})}
        containers = (await engine.get("/containers/json", params=params)).json()
    assert [container["Id"] for container in containers] == [done.data["containerId"]]


async def test_docker_driver__jobs_run_to_completion_with_exit_code_and_logs(harness: Harness) -> None:
    build = await harness.build(harness.repo.commit("v1"))
    image = Artifact(kind="build", build_id=build.data["id"], image=build.data["image"])
    harness.add(
        "migrate", "job", {"command": ["sh", "-c", "echo migrating $TARGET"], "env": {"TARGET": "db"}}
    )

    ok = await harness.settle(
        harness.request(Operation.RUN_JOB, "migrate", {"jobId": "migrate"}, artifact=image)
    )
    assert ok.state is AnswerState.DONE, ok.message
    assert (ok.data["exitCode"], ok.data["status"], ok.data["jobId"]) == (0, "succeeded", "migrate")
    assert ok.data["logs"].strip() == "migrating db"

    params = {
        "jobId": "migrate",
        "runtimeEnvironment": {"TARGET": "other"},
        "deployment": {
            "docker": {"configType": "customCommand", "customCommand": "sh -c 'echo bad $TARGET; exit 3'"}
        },
    }
    bad = await harness.settle(harness.request(Operation.RUN_JOB, "migrate", params, artifact=image))
    assert bad.state is AnswerState.FAILED
    assert bad.data["exitCode"] == 3 and bad.data["logs"].strip() == "bad other"
    assert "exited with code 3" in bad.message and "bad other" in bad.message

    check = harness.request(
        Operation.JOB_RUN_SUCCEEDED, "migrate", {"jobId": "migrate", "runId": ok.data["id"]}
    )
    assert (await harness.driver.perform(check)).state is AnswerState.DONE


async def test_docker_driver__cancel_stops_a_running_job_container(harness: Harness) -> None:
    build = await harness.build(harness.repo.commit("v1"))
    image = Artifact(kind="build", build_id=build.data["id"], image=build.data["image"])
    harness.add("migrate", "job", {"command": ["sh", "-c", "sleep 60"]})
    request = harness.request(Operation.RUN_JOB, "migrate", {"jobId": "migrate"}, artifact=image)
    started = await harness.driver.perform(request)
    assert started.state is AnswerState.IN_PROGRESS, started.message

    said = await harness.driver.cancel(request, started.handle)
    assert said.startswith(f"job run {started.data['id']}") and said.endswith("was stopped")

    loop = asyncio.get_running_loop()
    deadline = loop.time() + 30
    answer = started
    while answer.state is AnswerState.IN_PROGRESS:
        assert loop.time() < deadline, f"the stopped job still runs: {answer}"
        await asyncio.sleep(0.1)
        answer = await harness.driver.follow(request, started.handle)
    assert answer.state is AnswerState.FAILED
    assert answer.data["exitCode"] != 0


async def test_docker_driver__executes_restarts_and_checks_a_service(harness: Harness) -> None:
    await harness.deployed_web()

    cat = await harness.settle(
        harness.request(
            Operation.EXECUTE_IN_SERVICE,
            "web",
            {"serviceId": "web", "command": "/bin/busybox cat /www/index.html"},
        )
    )
    assert cat.state is AnswerState.DONE and cat.data["output"] == "v1"
    failing = await harness.settle(
        harness.request(
            Operation.EXECUTE_IN_SERVICE,
            "web",
            {"serviceId": "web", "command": "exit 4", "shell": "/bin/busybox sh"},
        )
    )
    assert failing.state is AnswerState.FAILED and failing.data["exitCode"] == 4

    before = harness.driver.services.current(harness.project, "web")
    assert before is not None
    restarted = await harness.settle(harness.request(Operation.RESTART_SERVICE, "web", {"serviceId": "web"}))
    assert restarted.state is AnswerState.DONE, restarted.message
    # A restart is a new container beside the old one, which goes once the new one is healthy.
    assert restarted.data["containerId"] != before["containerId"]
    assert await harness.driver.client.inspect_container(before["containerId"]) is None
    running = await harness.driver.perform(
        harness.request(Operation.SERVICE_RUNNING, "web", {"serviceId": "web"})
    )
    assert running.state is AnswerState.DONE, running.message
    assert await harness.page("web") == "v1"


async def test_docker_driver__execute_in_service_with_a_seen_key_runs_once(
    docker_env: DockerEnvironment, harness: Harness, tmp_path: Path
) -> None:
    await harness.deployed_web()
    count = "echo ran >> /www/count && /bin/busybox wc -l < /www/count"
    params = {"serviceId": "web", "command": count, "shell": "/bin/busybox sh"}
    request = harness.request(Operation.EXECUTE_IN_SERVICE, "web", params, key="run-1/exec/1")

    first = await harness.driver.perform(request)
    again = await harness.driver.perform(request)
    await harness.driver.stop()
    successor = DockerDriver(tmp_path / "driver", docker_env.base_url, registry=docker_env.registry)
    await successor.start()
    harness.driver = successor
    after_restart = await successor.perform(request)
    another_key = await successor.perform(
        harness.request(Operation.EXECUTE_IN_SERVICE, "web", params, key="run-1/exec/2")
    )

    assert first.state is AnswerState.DONE, first.message
    assert first.data["output"].strip() == "1"
    assert again.data == after_restart.data == first.data
    assert another_key.data["output"].strip() == "2"  # the first key's command ran once, not three times


# Executes one command in service 'web' through a DockerDriver of its own, to be killed while it runs.
EXECUTE = """\
import asyncio, json, sys
from pathlib import Path
from releaseflow.platform.docker import DockerDriver
from releaseflow.platform.driver import DriverRequest, Operation, Resource

root, base_url, web_json, project, command = sys.argv[1:6]
web = Resource(**json.loads(web_json))
params = {"serviceId": "web", "command": command, "shell": "/bin/busybox sh"}

async def main():
    driver = DockerDriver(Path(root), base_url)
    await driver.perform(DriverRequest(Operation.EXECUTE_IN_SERVICE, web, params, "run-1/exec/1",
                                       project_id=project, stage="development"))

asyncio.run(main())
"""


async def test_docker_driver__execute_in_service_killed_mid_command__the_same_key_does_not_run_it_again(
    docker_env: DockerEnvironment, harness: Harness, tmp_path: Path
) -> None:
    await harness.deployed_web()
    web = {"id": "web", "kind": "service", "driver": "docker", "spec": dict(harness.resources["web"].spec)}
    look = {"serviceId": "web", "command": "/bin/busybox cat /www/count || true", "shell": "/bin/busybox sh"}
    worker = await asyncio.create_subprocess_exec(
        sys.executable, "-c", EXECUTE, str(tmp_path / "driver"), docker_env.base_url, json.dumps(web),
        harness.project, "echo ran >> /www/count; sleep 3",
    )  # fmt: skip

    async def written() -> str:
        """What the commands wrote so far (looked at under a new key each time)."""
        answer = await harness.driver.perform(harness.request(Operation.EXECUTE_IN_SERVICE, "web", look))
        return str(answer.data["output"])

    deadline = time.monotonic() + 30
    while "ran" not in await written():
        assert time.monotonic() < deadline and worker.returncode is None, "the command never ran"
        await asyncio.sleep(0.1)
    worker.kill()
    await worker.wait()
    params = {"serviceId": "web", "command": "echo ran >> /www/count", "shell": "/bin/busybox sh"}

    answer = await harness.driver.perform(
        harness.request(Operation.EXECUTE_IN_SERVICE, "web", params, key="run-1/exec/1")
    )
    await asyncio.sleep(3.5)  # the first command's sleep ends: nothing more may be written

    assert answer.state is AnswerState.FAILED
    assert "whether it took effect is unknown" in answer.message
    assert (await written()).split() == ["ran"]


async def test_docker_driver__a_new_driver_adopts_the_running_containers(
    docker_env: DockerEnvironment, harness: Harness, tmp_path: Path
) -> None:
    harness.add("web", "service", web_spec())
    build1 = await harness.build(harness.repo.commit("v1"))
    first = await harness.deploy_build("web", build1.data["id"])
    build2 = await harness.build(harness.repo.commit("v2"))
    await harness.driver.stop()  # a worker stops: its containers keep running

    successor = DockerDriver(tmp_path / "driver", docker_env.base_url, registry=docker_env.registry)
    await successor.start()
    try:
        harness.driver = successor
        assert await harness.page("web") == "v1"
        running = await successor.perform(
            harness.request(Operation.SERVICE_RUNNING, "web", {"serviceId": "web"})
        )
        assert running.state is AnswerState.DONE and running.data["containerId"] == first.data["containerId"]
        second = await harness.deploy_build("web", build2.data["id"])
        assert second.state is AnswerState.DONE, second.message
        assert await harness.page("web") == "v2"
        assert await successor.client.inspect_container(first.data["containerId"]) is None
    finally:
        await successor.stop()


async def test_docker_driver__a_refusing_registry_fails_clearly(
    docker_env: DockerEnvironment, harness: Harness, tmp_path: Path
) -> None:
    nobody = f"127.0.0.1:{free_port()}"
    driver = DockerDriver(tmp_path / "wrong", docker_env.base_url, registry=nobody)
    try:
        wrong = Harness(driver, harness.repo, harness.project)
        sha = harness.repo.commit("v1")
        spec = {"id": "web-builder", "type": "service", "sha": sha}
        failed = await wrong.settle(wrong.request(Operation.START_BUILD, "web-builder", spec))
        assert failed.state is AnswerState.FAILED
        assert f"pushing {nobody}/" in failed.message and "Check that the registry runs" in failed.message
        assert failed.data["status"] == "failed"

        wrong.add("web", "service", web_spec())
        origin = {"imagePath": f"{nobody}/nothing:v1"}
        refused = await wrong.settle(wrong.request(Operation.DEPLOY_IMAGE, "web", origin))
        assert refused.state is AnswerState.FAILED
        assert f"pull {nobody}/nothing:v1" in refused.message, refused.message
    finally:
        await driver.stop()


async def test_docker_driver__refuses_addon_operations(harness: Harness) -> None:
    harness.add("db", "addon", {"type": "postgresql"})
    with pytest.raises(DriverError, match="does not run addons") as refused:
        await harness.driver.perform(harness.request(Operation.BACKUP_ADDON, "db", {"addonId": "db"}))
    assert refused.value.retryable is False


def test_docker_env__the_engine_answers(docker_env: DockerEnvironment) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(docker_env.socket_path))


# Each effect at most once: job runs and builds per idempotency key --------------------------------

# Runs one RUN_JOB through a DockerDriver in a process of its own, held at an exact instant so that
# the test can kill -9 it there: ``before-start`` (the run recorded and its container made, not
# started) or ``after-start`` (the container started; the driver has not answered yet); or
# ``before-record``: held after it found no run for the key, until ``<root>/release`` exists, then it
# goes on and prints its answer.
PERFORM_JOB = """\
import asyncio, json, sys
from pathlib import Path
from releaseflow.platform.docker import DockerDriver
from releaseflow.platform.driver import Artifact, DriverRequest, Operation, Resource

root, base_url, job_json, image, key, mode, project = sys.argv[1:8]

async def main():
    driver = DockerDriver(Path(root), base_url)
    await driver.start()
    real_start = driver.client.start_container
    real_ensure_image = driver.client.ensure_image

    async def held_before_record(*args, **kwargs):
        print("held", flush=True)
        while not (Path(root) / "release").exists():
            await asyncio.sleep(0.05)
        await real_ensure_image(*args, **kwargs)

    async def held(container):
        if mode == "before-start":
            print("held", flush=True)
            await asyncio.sleep(3600)
        await real_start(container)
        print("held", flush=True)
        await asyncio.sleep(3600)

    if mode == "before-record":
        driver.client.ensure_image = held_before_record
    else:
        driver.client.start_container = held
    job = Resource(**json.loads(job_json))
    request = DriverRequest(Operation.RUN_JOB, job, {"jobId": job.id}, key,
                            artifact=Artifact(kind="image", image=image), project_id=project,
                            stage="development")
    answer = await driver.perform(request)
    print(answer.state.value, answer.data.get("id"), flush=True)

asyncio.run(main())
"""


async def container_starts(docker_env: DockerEnvironment, since: float, run_id: str) -> int:
    """How many containers of job run ``run_id`` the engine started: counted by the engine itself.

    The callers ask after the driver reported the run done, so at least one start happened; the engine
    writes its events log behind the API on a busy machine, so a count of 0 is read again (up to 10 s),
    and a count is taken only once two reads half a second apart agree.
    """
    label = f"io.releaseflow.record={run_id}"
    filters = json.dumps({"type": ["container"], "event": ["start"], "label": [label]})
    transport = httpx.AsyncHTTPTransport(uds=str(docker_env.socket_path))
    counts: list[int] = []
    deadline = time.monotonic() + 10
    async with httpx.AsyncClient(transport=transport, base_url="http://docker", timeout=10) as http:
        while True:
            params = {"since": str(int(since)), "until": str(int(time.time()) + 1), "filters": filters}
            response = await http.get("/events", params=params)
            response.raise_for_status()
            counts.append(sum(1 for line in response.text.splitlines() if line.strip()))
            settled = counts[-1] > 0 and counts[-2:] == [counts[-1]] * 2
            if settled or time.monotonic() > deadline:
                return counts[-1]
            await asyncio.sleep(0.5)


def kill_when_held(argv: list[str]) -> None:
    """Run ``argv``; kill -9 it once it says it is held at the instant the test wants."""
    # As a context manager, Popen closes its pipe and reaps the process whatever the assertion says.
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as process:
        try:
            assert process.stdout is not None and process.stdout.readline().strip() == "held"
        finally:
            process.kill()


async def job_image(harness: Harness, job: str) -> Artifact:
    build = await harness.build(harness.repo.commit("v1"))
    harness.add(job, "job", {"command": ["sh", "-c", "sleep 0.3"]})
    return Artifact(kind="image", image=build.data["image"])


async def test_docker_driver__run_job_with_a_seen_key_adopts_the_run__one_container_started(
    docker_env: DockerEnvironment, harness: Harness, tmp_path: Path
) -> None:
    image = await job_image(harness, "once")
    since = time.time() - 1
    request = harness.request(
        Operation.RUN_JOB, "once", {"jobId": "once"}, key="run-1/once/1", artifact=image
    )

    first = await harness.driver.perform(request)
    again = await harness.driver.perform(request)
    await harness.driver.stop()
    successor = DockerDriver(tmp_path / "driver", docker_env.base_url, registry=docker_env.registry)
    await successor.start()  # a restart over the same state
    harness.driver = successor
    adopted = await harness.settle(request)

    assert first.data["id"] == again.data["id"] == adopted.data["id"]
    assert adopted.state is AnswerState.DONE, adopted.message
    assert await container_starts(docker_env, since, adopted.data["id"]) == 1


@pytest.mark.parametrize("instant", ["before-start"])
async def test_docker_driver__run_job_killed_mid_perform__the_same_key_runs_it_exactly_once(
    docker_env: DockerEnvironment, harness: Harness, tmp_path: Path, instant: str
) -> None:
    image = await job_image(harness, "killed")
    await harness.driver.stop()
    since = time.time() - 1
    job = {"id": "killed", "kind": "job", "driver": "docker", "spec": dict(harness.resources["killed"].spec)}
    kill_when_held(
        [sys.executable, "-c", PERFORM_JOB, str(tmp_path / "driver"), docker_env.base_url, json.dumps(job),
         str(image.image), "run-1/killed/1", instant, harness.project]
    )  # fmt: skip

    successor = DockerDriver(tmp_path / "driver", docker_env.base_url, registry=docker_env.registry)
    await successor.start()  # settles the run left in flight: never started, or started and adopted
    harness.driver = successor
    [record] = successor.jobs._runs.all()
    if instant == "before-start":
        assert record["status"] == "failed" and "it never ran" in record["message"]
    else:
        assert record["status"] == "running"
    request = harness.request(
        Operation.RUN_JOB, "killed", {"jobId": "killed"}, key="run-1/killed/1", artifact=image
    )
    answer = await harness.settle(request)

    assert answer.state is AnswerState.DONE, answer.message
    assert answer.data["id"] == record["id"]
    assert await container_starts(docker_env, since, record["id"]) == 1


async def test_docker_driver__run_job_two_processes_one_key__one_container_started(
    docker_env: DockerEnvironment, harness: Harness, tmp_path: Path
) -> None:
    """Two workers adopt the same lost attempt: the second looked for the run before the first made
    it, and goes on only once the first one's container has run and been removed."""
    image = await job_image(harness, "raced")
    since = time.time() - 1
    job = {"id": "raced", "kind": "job", "driver": "docker", "spec": dict(harness.resources["raced"].spec)}
    other = subprocess.Popen(  # noqa: ASYNC220 - read from a thread, killed at the end
        [sys.executable, "-c", PERFORM_JOB, str(tmp_path / "driver"), docker_env.base_url, json.dumps(job),
         str(image.image), "run-1/raced/1", "before-record", harness.project],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert other.stdout is not None
        assert (await asyncio.to_thread(other.stdout.readline)).strip() == "held"
        request = harness.request(
            Operation.RUN_JOB, "raced", {"jobId": "raced"}, key="run-1/raced/1", artifact=image
        )
        first = await harness.settle(request)
        await asyncio.to_thread((tmp_path / "driver" / "release").touch)
        answered = await asyncio.wait_for(asyncio.to_thread(other.stdout.readline), 60)
    finally:
        other.kill()
        other.wait()
        if other.stdout is not None:
            other.stdout.close()

    assert first.state is AnswerState.DONE, first.message
    assert answered.split() == ["done", first.data["id"]]
    assert await container_starts(docker_env, since, first.data["id"]) == 1


async def test_docker_driver__start_build_with_a_seen_key_adopts_the_build(
    docker_env: DockerEnvironment, harness: Harness, tmp_path: Path
) -> None:
    sha = harness.repo.commit("v1")
    spec = {"id": "web-builder", "sha": sha, "reuseExistingBuilds": False}
    request = harness.request(Operation.START_BUILD, "web-builder", spec, key="run-1/build/1")

    first = await harness.driver.perform(request)
    await harness.driver.stop()  # killed mid-build: a restart resumes it
    successor = DockerDriver(tmp_path / "driver", docker_env.base_url, registry=docker_env.registry)
    await successor.start()
    harness.driver = successor
    adopted = await harness.settle(request)

    assert adopted.state is AnswerState.DONE, adopted.message
    assert adopted.data["id"] == first.data["id"]
    assert len(successor.builds._records.all()) == 1  # one build record, no second build
