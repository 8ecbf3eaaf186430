"""The docker driver: builds, services and jobs on any Docker Engine API (Docker, podman).

It maps each ``Operation`` to the builder, the services or the jobs, and keeps the promise of the
driver contract that one idempotency key acts once: what a key made is remembered under the root and
answered again. Addons are not run by this driver (yet): the local driver serves them.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from releaseflow.platform.docker.builds import BUILDING, SUCCEEDED, Builder, build_answer
from releaseflow.platform.docker.client import DockerClient, RegistryCredentials
from releaseflow.platform.docker.jobs import Jobs, run_answer
from releaseflow.platform.docker.records import LOGGER, KeyIndex, Supervisor
from releaseflow.platform.docker.services import Services, command_of
from releaseflow.platform.docker.specs import SCHEMAS
from releaseflow.platform.driver import (
    AnswerState,
    Artifact,
    DriverAnswer,
    DriverError,
    DriverRequest,
    Operation,
    Resource,
)
from releaseflow.platform.once import HANDLE_KEY, KeyedActions
from releaseflow.platform.spec_check import checked_spec

_ADDON_OPERATIONS = {
    Operation.BACKUP_ADDON,
    Operation.RESTART_ADDON,
    Operation.RESTORE_BACKUP,
    Operation.ADDON_RUNNING,
    Operation.BACKUP_SUCCEEDED,
}
_DEPLOYS = {Operation.DEPLOY_BUILD, Operation.DEPLOY_IMAGE, Operation.DEPLOY_ARTIFACT}


def default_base_url() -> str:
    """The engine address from RELEASEFLOW_DOCKER_HOST, then DOCKER_HOST, then Docker's usual socket."""
    return (
        os.environ.get("RELEASEFLOW_DOCKER_HOST")
        or os.environ.get("DOCKER_HOST")
        or "unix:///var/run/docker.sock"
    )


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


class DockerDriver:
    name = "docker"

    def __init__(
        self,
        root: Path,
        base_url: str,
        registry: str | None = None,
        credentials: Mapping[str, RegistryCredentials] | None = None,
    ) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        self._credentials = dict(credentials or {})
        self.client = DockerClient(base_url)
        self._supervisor = Supervisor()
        self._keys = KeyIndex(self.root / "keys")
        # An exec leaves nothing to adopt: recorded before it runs (KeyIndex records answers after).
        self._keyed = KeyedActions(self.root / "actions")
        self.builds = Builder(
            self.client, self.root, self._supervisor, registry=registry, credentials=self._credentials
        )
        self.services = Services(self.client, self.root, self._supervisor, self.builds, self._credentials_for)
        self.jobs = Jobs(self.client, self.root, self._supervisor)

    # -- lifecycle ------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Adopt what runs: pick up unfinished builds, deployments and job runs. Containers keep running."""
        try:
            await self.client.version()
        except DriverError as error:
            # Not fatal for the worker: the engine may come up later, and every operation says so.
            LOGGER.warning("docker driver: %s", error)
        self.builds.resume()
        await self.services.adopt_ingress()
        self.services.resume()
        await self.jobs.resume()

    async def stop(self) -> None:
        """Stop watching; containers are not releaseflow's children and keep running."""
        await self._supervisor.stop()
        await self.client.close()

    # -- the contract ---------------------------------------------------------------------------------

    async def perform(self, request: DriverRequest) -> DriverAnswer:
        operation = request.operation
        if operation in _ADDON_OPERATIONS:
            raise DriverError(
                f"the docker driver does not run addons yet ({operation.value} on '{request.resource.id}'):"
                " give the addon the local driver",
                retryable=False,
            )
        # Checks are performed again and again on purpose; only actions are made idempotent.
        if operation is Operation.BUILD_SUCCEEDED:
            return self._build_status(request)
        if operation is Operation.JOB_RUN_SUCCEEDED:
            return self._job_run_status(request)
        if operation is Operation.SERVICE_RUNNING:
            return await self.services.status(request)
        done = self._keys.get(request.idempotency_key)
        if done is not None:
            return await self.follow(request, done.get("handle") or done)
        answer = await self._act(request)
        if answer.handle is not None:
            self._keys.put(request.idempotency_key, {"operation": operation.value, "handle": answer.handle})
        elif answer.state is not AnswerState.IN_PROGRESS:
            self._keys.put(request.idempotency_key, {"operation": operation.value, "answer": _dump(answer)})
        return answer

    async def follow(self, request: DriverRequest, handle: Any) -> DriverAnswer:
        handle = _mapping(handle)
        if "answer" in handle:
            saved = _mapping(handle["answer"])
            return DriverAnswer(
                AnswerState(saved["state"]), dict(_mapping(saved.get("data"))), str(saved["message"])
            )
        if HANDLE_KEY in handle:
            return self._keyed.follow(str(handle[HANDLE_KEY]))
        kind, record_id = handle.get("kind"), str(handle.get("id", ""))
        if kind == "build":
            return self.builds.follow(record_id)
        if kind == "deployment":
            return self.services.follow(record_id)
        if kind == "jobRun":
            return self.jobs.follow(record_id)
        if kind == "service":
            return await self.services.status(request)
        if kind == "release":
            return DriverAnswer(AnswerState.DONE, dict(_mapping(handle.get("data"))), "recorded")
        # No handle (or a foreign one): performing again is safe, the idempotency key guards it.
        if self._keys.get(request.idempotency_key) is None:
            return await self.perform(request)
        raise DriverError(f"the docker driver cannot follow {dict(handle)!r}", retryable=False)

    async def cancel(self, request: DriverRequest, handle: Any) -> str:
        handle = _mapping(handle)
        if handle.get("kind") == "jobRun":
            return await self.jobs.cancel(str(handle.get("id", "")))
        # Builds run to their end; a deploy ends healthy or returns to the previous container itself.
        return ""

    # -- actions --------------------------------------------------------------------------------------

    async def _act(self, request: DriverRequest) -> DriverAnswer:
        operation, resource = request.operation, request.resource
        schema = SCHEMAS.get(resource.kind)
        if schema is not None:
            # Before anything acts: a spec stored before its schema, or edited since, fails at once.
            checked_spec(resource, schema)
        if operation is Operation.START_BUILD:
            if resource.kind != "build_service":
                raise DriverError(
                    f"'{resource.id}' is a {resource.kind}, not a build service", retryable=False
                )
            record = await self.builds.start(
                project=request.project_id,
                build_service=resource,
                params=request.params,
                key=request.idempotency_key,
            )
            return build_answer(record)
        if operation in _DEPLOYS:
            return await self._deploy(request)
        if operation is Operation.RUN_JOB:
            return await self._run_job(request, None)
        if operation is Operation.EXECUTE_IN_JOB:
            return await self._run_job(request, command_of(request.params, f"job '{resource.id}'"))
        if operation is Operation.RESTART_SERVICE:
            return await self.services.restart(request)
        if operation is Operation.EXECUTE_IN_SERVICE:
            what = f"executing a command in service '{resource.id}'"
            return await self._keyed.run(
                request.idempotency_key, what, lambda: self.services.execute(request)
            )
        raise DriverError(f"the docker driver does not know operation {operation.value}", retryable=False)

    async def _deploy(self, request: DriverRequest) -> DriverAnswer:
        artifact, pull, await_build = self._artifact(request)
        resource = request.resource
        if resource.kind == "job":
            # A job has nothing running: deploying records what its next runs use, once the image is there.
            if await_build:
                raise DriverError(
                    f"build '{await_build}' is still building; deploy to the job once it is done"
                )
            assert artifact.image is not None
            credentials = self._credentials_for(artifact.credentials, artifact.image)
            await self.client.ensure_image(
                artifact.image, credentials=credentials, pull=pull, on_log=lambda _: None
            )
            data = {"artifact": artifact.to_data(), "image": artifact.image}
            return DriverAnswer(AnswerState.DONE, data, f"job '{resource.id}' will run {artifact.image}")
        if resource.kind != "service":
            raise DriverError(f"cannot deploy to '{resource.id}', a {resource.kind}", retryable=False)
        return self.services.deploy(request, artifact, pull=pull, await_build=await_build)

    def _artifact(self, request: DriverRequest) -> tuple[Artifact, bool, str | None]:
        """What to deploy, whether to pull it first, and the build to wait for (if it is still building)."""
        params = request.params
        if request.operation is Operation.DEPLOY_IMAGE:
            image = params.get("imagePath")
            if not isinstance(image, str) or not image:
                raise DriverError("a registry release needs origin.imagePath", retryable=False)
            credentials = params.get("credentials") or None
            if credentials is not None and credentials not in self._credentials:
                raise DriverError(
                    f"registry credentials '{credentials}' are not configured for the docker driver",
                    retryable=False,
                )
            return Artifact(kind="image", image=image, credentials=credentials), True, None
        if request.operation is Operation.DEPLOY_ARTIFACT:
            if request.artifact is None:
                raise DriverError("nothing to promote: the origin has no recorded artifact", retryable=False)
            artifact = request.artifact
            if artifact.image is None and artifact.build_id:
                build = self.builds.get(artifact.build_id)
                if build is None:
                    raise DriverError(
                        f"build '{artifact.build_id}' is unknown to the docker driver", retryable=False
                    )
                artifact = Artifact(
                    kind="build",
                    build_service=build["buildService"],
                    build_id=build["id"],
                    commit=build["sha"],
                    branch=build.get("branch"),
                    image=build["image"],
                )
            if artifact.image is None:
                raise DriverError("the artifact to promote names no image", retryable=False)
            # An external image is pulled again (its tag may have moved); a build's image is immutable.
            return artifact, artifact.kind == "image", None
        build_service = str(params.get("id") or "")
        if build_service not in request.resources:
            raise DriverError(f"build service '{build_service}' does not exist", retryable=False)
        build = self.builds.find(
            request.project_id, build_service, _text(params.get("build")), _text(params.get("branch"))
        )
        if build["status"] not in (BUILDING, SUCCEEDED):
            raise DriverError(f"build '{build['id']}' failed: {build.get('message')}", retryable=False)
        artifact = Artifact(
            kind="build",
            build_service=build_service,
            build_id=build["id"],
            commit=build["sha"],
            branch=build.get("branch"),
            image=build["image"],
        )
        return artifact, False, build["id"] if build["status"] == BUILDING else None

    async def _run_job(self, request: DriverRequest, command: list[str] | None) -> DriverAnswer:
        resource, params = request.resource, request.params
        if resource.kind != "job":
            raise DriverError(f"'{resource.id}' is a {resource.kind}, not a job", retryable=False)
        deployment = _mapping(params.get("deployment"))
        artifact = request.artifact
        external, internal = _mapping(deployment.get("external")), _mapping(deployment.get("internal"))
        pull = False
        if external.get("imagePath"):
            artifact = Artifact(
                kind="image", image=str(external["imagePath"]), credentials=external.get("credentials")
            )
            pull = True
        elif internal.get("id"):
            sha = _text(internal.get("buildSHA"))
            build = self.builds.find(
                request.project_id,
                str(internal["id"]),
                _text(internal.get("buildId")) or sha,
                _text(internal.get("branch")),
            )
            artifact = Artifact(kind="build", build_id=build["id"], image=build["image"])
        if artifact is None or artifact.image is None:
            raise DriverError(
                f"job '{resource.id}' has no image: deploy a build or an image to it first (a Release node),"
                " or name one in the JobRun's deployment",
                retryable=False,
            )
        docker = _mapping(deployment.get("docker"))
        entrypoint = None
        if command is None and docker.get("customCommand"):
            command = shlex.split(str(docker["customCommand"]))
        if docker.get("customEntrypoint"):
            entrypoint = shlex.split(str(docker["customEntrypoint"]))
        if command is None and params.get("command"):
            command = command_of(params, f"job '{resource.id}'")
        env = _mapping(params.get("runtimeEnvironment")) or _mapping(params.get("env"))
        return await self.jobs.run(
            project=request.project_id,
            stage=request.stage,
            job=resource.id,
            image=artifact.image,
            credentials=self._credentials_for(artifact.credentials, artifact.image),
            spec=resource.spec,
            env=env,
            command=command,
            entrypoint=entrypoint,
            key=request.idempotency_key,
            pull=pull,
        )

    # -- checks ---------------------------------------------------------------------------------------

    async def artifact_exists(self, artifact: Artifact, resources: Mapping[str, Resource]) -> bool:
        """A build: its record and its image on the Docker host. An external image: on the host, or
        pullable from its registry (deploying it pulls it anyway)."""
        image = artifact.image
        if artifact.build_id:
            record = self.builds.get(artifact.build_id)
            if record is None or record.get("status") != SUCCEEDED:
                return False
            image = record.get("image") or image
        if not image:
            return False
        if await self.client.inspect_image(image) is not None:
            return True
        if artifact.build_id:
            return False  # a build's image lives on this host (or was pushed, and is then pulled by tag)
        try:
            credentials = self._credentials_for(artifact.credentials, image)
            await self.client.pull_image(image, credentials=credentials, on_log=lambda _: None)
        except DriverError:
            return False
        return True

    def _build_status(self, request: DriverRequest) -> DriverAnswer:
        build_id = _text(request.params.get("buildId")) or _text(request.params.get("id"))
        record = self.builds.get(build_id or "") if build_id else None
        if record is None:
            raise DriverError(f"build '{build_id}' does not exist", retryable=False)
        return build_answer(record)

    def _job_run_status(self, request: DriverRequest) -> DriverAnswer:
        run_id = _text(request.params.get("runId"))
        record = self.jobs.get(run_id or "") if run_id else None
        if record is None:
            raise DriverError(
                f"job run '{run_id}' of job '{request.resource.id}' does not exist", retryable=False
            )
        return run_answer(record)

    def _credentials_for(self, credentials_id: str | None, image: str) -> RegistryCredentials | None:
        if credentials_id:
            found = self._credentials.get(credentials_id)
            if found is None:
                raise DriverError(
                    f"registry credentials '{credentials_id}' are not configured", retryable=False
                )
            return found
        return self.builds.credentials_for(image)


def _text(value: Any) -> str | None:
    return str(value) if value not in (None, "") else None


def _dump(answer: DriverAnswer) -> dict[str, Any]:
    return {"state": answer.state.value, "data": dict(answer.data), "message": answer.message}
