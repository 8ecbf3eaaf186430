"""The ``local`` driver: maps each driver operation to the manager that does it on this host.

Builds go to ``builds.BuildManager``, services to ``services.ServiceManager``, jobs to
``jobs.JobManager`` and PostgreSQL addons to ``postgres.PostgresAddons``; ``answers`` turns what they
return into answers. Every answer's ``data`` is documented in ``docs/drivers.md`` (it becomes the node's
``response.data``, reachable as ``${refs.<ref>.<field>}``). Handles are small JSON objects, since the
engine stores them with the waiting node and any worker may follow them.
"""

from __future__ import annotations

import asyncio
import functools
import shlex
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from releaseflow.domain.errors import NotFoundError
from releaseflow.platform.driver import (
    AnswerState,
    Artifact,
    DriverAnswer,
    DriverError,
    DriverRequest,
    LogLines,
    LogSource,
    Operation,
    Resource,
)
from releaseflow.platform.local.answers import (
    backup_answer,
    build_answer,
    build_artifact,
    deployment_answer,
    job_answer,
    restore_answer,
)
from releaseflow.platform.local.artifacts import BuildRecord, BuildStatus
from releaseflow.platform.local.builds import BuildManager
from releaseflow.platform.local.jobs import JobManager
from releaseflow.platform.local.postgres import PostgresAddons
from releaseflow.platform.local.processes import tail
from releaseflow.platform.local.service_records import ServiceState
from releaseflow.platform.local.services import ServiceManager
from releaseflow.platform.local.specs import BuildServiceSpec, JobSpec, ServiceSpec
from releaseflow.platform.log_files import numbered_lines
from releaseflow.platform.once import HANDLE_KEY, KeyedActions

NAME = "local"
EXECUTE_OUTPUT_LINES = 20
# Keys of a Build node's buildOverrides the local driver honours (as extra build environment).
_BUILD_OVERRIDES = ("buildArguments",)

Handler = Callable[[DriverRequest], Awaitable[DriverAnswer]]


class LocalDriver:
    """Builds, services, jobs and PostgreSQL addons on this host, all kept under ``root``."""

    name = NAME

    def __init__(
        self,
        root: Path,
        *,
        postgres_settings: Mapping[str, str] | None = None,
        addons_root: Path | None = None,
    ) -> None:
        """``postgres_settings``: extra ``postgresql.conf`` lines for new managed addons;
        ``addons_root``: where their clusters live (default ``<root>/postgres``)."""
        self.root = root
        self.builds = BuildManager(root)
        self.services = ServiceManager(root)
        self.jobs = JobManager(root)
        # Addons live in a folder of their own: their layout (<project>/<addon>/) would otherwise
        # share names with the other managers' folders.
        self.addons = PostgresAddons(addons_root or root / "postgres", server_settings=postgres_settings)
        # Commands run in a service and addon restarts leave nothing to adopt: recorded before they act.
        self.keyed = KeyedActions(root / "actions")
        self._background: set[asyncio.Task[Any]] = set()
        self._perform: dict[Operation, Handler] = {
            Operation.START_BUILD: self._start_build,
            Operation.BUILD_SUCCEEDED: self._build_succeeded,
            Operation.DEPLOY_BUILD: self._deploy_build,
            Operation.DEPLOY_ARTIFACT: self._deploy_artifact,
            Operation.DEPLOY_IMAGE: self._deploy_image,
            Operation.RESTART_SERVICE: self._restart_service,
            Operation.EXECUTE_IN_SERVICE: self._execute_in_service,
            Operation.SERVICE_RUNNING: self._service_running,
            Operation.RUN_JOB: self._run_job,
            Operation.EXECUTE_IN_JOB: self._execute_in_job,
            Operation.JOB_RUN_SUCCEEDED: self._job_run_succeeded,
            Operation.ADDON_RUNNING: self._addon_running,
            Operation.RESTART_ADDON: self._restart_addon,
            Operation.BACKUP_ADDON: self._backup_addon,
            Operation.BACKUP_SUCCEEDED: self._backup_succeeded,
            Operation.RESTORE_BACKUP: self._restore_backup,
        }

    async def start(self) -> None:
        # Each manager settles what a stopped or killed releaseflow process left in flight.
        await self.builds.start()
        await self.jobs.start()
        await self.services.start()
        await self.addons.start()

    async def stop(self) -> None:
        tasks = list(self._background)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.addons.stop()
        await self.services.stop()
        await self.builds.stop()

    async def perform(self, request: DriverRequest) -> DriverAnswer:
        handler = self._perform.get(request.operation)
        if handler is None:
            raise DriverError(
                f"{request.operation.value} is not supported by the local driver"
                f" ({_word(request.resource)} '{request.resource.id}')",
                retryable=False,
            )
        return await handler(request)

    async def follow(self, request: DriverRequest, handle: Any) -> DriverAnswer:
        state = handle if isinstance(handle, Mapping) else {}
        if "buildId" in state:
            build = await self.builds.get_build(str(state["buildId"]))
            return build_answer(build, reused=bool(state.get("reused", False)))
        if "jobRunId" in state:
            return job_answer(await self.jobs.get(str(state["jobRunId"])))
        if "backupId" in state:
            return backup_answer(await self.addons.get_backup(str(state["backupId"])))
        if "restoreId" in state:
            return restore_answer(await self.addons.get_restore(str(state["restoreId"])))
        if HANDLE_KEY in state:
            return self.keyed.follow(str(state[HANDLE_KEY]))
        if "deploymentId" in state:
            deployment = self.services.deployment(str(state["deploymentId"]))
            return deployment_answer(deployment, str(state.get("target", request.resource.id)))
        # Checks have no handle worth keeping: looking again is following.
        return await self.perform(request)

    async def logs(self, source: LogSource, key: str, *, lines: int) -> list[str]:
        """The log's last lines; the files stay on this host, under the driver's root."""
        return await asyncio.to_thread(tail, await self._log_path(source, key), lines)

    async def log_lines(self, source: LogSource, key: str, *, after: int | None, limit: int) -> LogLines:
        path = await self._log_path(source, key)
        return await asyncio.to_thread(numbered_lines, path, after=after, limit=limit)

    async def _log_path(self, source: LogSource, key: str) -> Path:
        if source is LogSource.SERVICE:
            path = self.services.log_path(key)
        elif source is LogSource.JOB_RUN:
            path = self.jobs.log_path(key)
        else:
            path = Path((await self.builds.get_build(key)).log_path)
        if not path.exists():
            raise NotFoundError(f"no log for {source} '{key}' on this host ({path})")
        return path

    async def cancel(self, request: DriverRequest, handle: Any) -> str:
        state = handle if isinstance(handle, Mapping) else {}
        if "jobRunId" in state:
            return await self.jobs.cancel(str(state["jobRunId"]))
        # Builds, backups and restores run to their end; a deploy ends healthy or returns to the
        # previous release on its own: none leaves anything half-done behind.
        return ""

    # Builds ----------------------------------------------------------------------------------------

    async def _start_build(self, request: DriverRequest) -> DriverAnswer:
        resource, params = request.resource, request.params
        if resource.kind != "build_service":
            raise DriverError(
                f"{_word(resource)} '{resource.id}' cannot be built by the local driver: it builds build"
                " services (give the Build node a build service's id, then deploy the build to the job)",
                retryable=False,
            )
        if params.get("pullRequestId") is not None:
            raise DriverError(
                f"build service '{resource.id}': the local driver builds branches and commits, not pull"
                " requests; give the Build node a branch or a sha",
                retryable=False,
            )
        started = await self.builds.start_build(
            resource,
            key=request.idempotency_key,
            branch=_text(params.get("branch")),
            sha=_text(params.get("sha")),
            reuse=params.get("reuseExistingBuilds") is not False,
            build_arguments=_build_arguments(resource, params),
        )
        return build_answer(started.build, reused=started.reused)

    async def _build_succeeded(self, request: DriverRequest) -> DriverAnswer:
        build_id = _text(request.params.get("buildId"))
        if build_id is None:
            raise DriverError("a Build condition needs data.buildId (the id of a build)", retryable=False)
        return build_answer(await self.builds.get_build(build_id), reused=False)

    async def resolve_build(
        self, origin: Mapping[str, Any], resources: Mapping[str, Resource], *, commit: str | None = None
    ) -> tuple[Artifact, Path]:
        """The build a Release of type build names (``build``: an id, or "latest"), and its folder.

        ``commit`` (a JobRun's ``buildSHA``) picks the newest successful build of that commit instead.
        """
        service_id = _text(origin.get("id"))
        service = resources.get(service_id) if service_id else None
        if service_id is not None:
            if service is None or service.kind != "build_service":
                raise DriverError(
                    f"build service '{service_id}' does not exist in this project", retryable=False
                )
            if service.driver != NAME:
                raise DriverError(
                    f"build service '{service_id}' uses the {service.driver} driver; its builds cannot run"
                    " on the local driver (deploy them to a resource of the same driver)",
                    retryable=False,
                )
        wanted = _text(origin.get("build")) or "latest"
        if commit is not None and wanted == "latest":
            build = await self._of_commit(service, commit)
        elif wanted == "latest":
            build = await self._latest(service, _text(origin.get("branch")))
        else:
            build = await self.builds.get_build(wanted)
            if service_id is not None and build.build_service != service_id:
                raise DriverError(
                    f"build '{wanted}' was made by build service '{build.build_service}', not '{service_id}'",
                    retryable=False,
                )
        if build.status is BuildStatus.RUNNING:
            raise DriverError(
                f"build '{build.id}' of '{build.build_service}' is still running; give the Build node"
                " `condition: success` so the release waits for it",
                retryable=True,
            )
        if build.status is BuildStatus.FAILED:
            raise DriverError(
                f"build '{build.id}' failed, it cannot be deployed: {build.error}", retryable=False
            )
        return build_artifact(build), await self._artifact_folder(build)

    async def _latest(self, service: Resource | None, branch: str | None) -> BuildRecord:
        if service is None:
            raise DriverError(
                "origin.id (the build service) is required to deploy its latest build", retryable=False
            )
        branch = branch or _text(service.spec.get("branch"))
        build = await self.builds.latest_build(service.id, branch)
        if build is not None:
            return build
        running = await self.builds.latest_build(service.id, branch, status=BuildStatus.RUNNING)
        if running is not None:
            return running  # the caller says it is still running, retryably
        on = f" on branch '{branch}'" if branch else ""
        raise DriverError(
            f"build service '{service.id}' has no successful build{on} yet; start one with a Build node"
            " (with `condition: success`) before this release",
            retryable=False,
        )

    async def _of_commit(self, service: Resource | None, commit: str) -> BuildRecord:
        if service is None:
            raise DriverError("the id of the build service is required with a buildSHA", retryable=False)
        build = await self.builds.build_of_commit(service.id, commit)
        if build is None:
            raise DriverError(
                f"build service '{service.id}' has no successful build of commit {commit}; build it first",
                retryable=False,
            )
        return build

    async def artifact_exists(self, artifact: Artifact, resources: Mapping[str, Resource]) -> bool:
        """A build whose record says it succeeded and whose artifact folder is still there (the
        local driver deploys builds only)."""
        if artifact.kind != "build" or not artifact.build_id:
            return False
        try:
            build = await self.builds.get_build(artifact.build_id)
        except DriverError:
            return False
        if build.status is not BuildStatus.SUCCESS:
            return False
        return await asyncio.to_thread(self.builds.artifact_path(build).is_dir)

    async def _current(self, target: Resource, artifact: Artifact | None) -> tuple[Artifact, Path]:
        """The build release state says ``target`` runs now, and its folder."""
        if artifact is None:
            raise DriverError(
                f"{_word(target)} '{target.id}' has nothing deployed in this stage yet; deploy a build to it"
                " with a Release node (type build) first",
                retryable=False,
            )
        if artifact.kind != "build" or artifact.build_id is None:
            raise _image_refused(target)
        build = await self.builds.get_build(artifact.build_id)
        return build_artifact(build), await self._artifact_folder(build)

    async def _artifact_folder(self, build: BuildRecord) -> Path:
        folder = self.builds.artifact_path(build)
        if not await asyncio.to_thread(folder.is_dir):
            raise DriverError(
                f"the artifact of build '{build.id}' is missing from {folder}; build the commit again",
                retryable=False,
            )
        return folder

    # Deploys ---------------------------------------------------------------------------------------

    async def _deploy_build(self, request: DriverRequest) -> DriverAnswer:
        self._check_target(request.resource)
        if (adopted := self._adopt_deployment(request)) is not None:
            return adopted
        artifact, folder = await self.resolve_build(request.params, request.resources)
        return await self._deploy(request, artifact, folder)

    async def _deploy_artifact(self, request: DriverRequest) -> DriverAnswer:
        self._check_target(request.resource)
        if (adopted := self._adopt_deployment(request)) is not None:
            return adopted
        artifact, folder = await self._current(request.resource, request.artifact)
        return await self._deploy(request, artifact, folder)

    def _adopt_deployment(self, request: DriverRequest) -> DriverAnswer | None:
        """The deployment already started under this idempotency key, answered as it stands now.

        Looked up before anything is resolved: "latest" may name another build by now, and the
        first attempt's deployment is the one that counts.
        """
        if request.resource.kind != "service" or not request.idempotency_key:
            return None
        deployment = self.services.find(request.resource.id, request.idempotency_key)
        return None if deployment is None else deployment_answer(deployment, request.resource.id)

    async def _deploy_image(self, request: DriverRequest) -> DriverAnswer:
        raise _image_refused(request.resource)

    async def _deploy(self, request: DriverRequest, artifact: Artifact, folder: Path) -> DriverAnswer:
        target = request.resource
        if target.kind == "job":
            # A job runs only when a JobRun starts it; deploying records what it will run (the
            # engine keeps that in release state and passes it with each RUN_JOB).
            JobSpec.parse(target)
            data = {"artifact": artifact.to_data(), "deploymentId": None, "target": target.id}
            return DriverAnswer(AnswerState.DONE, data=data)
        ServiceSpec.parse(target)
        target = await self._with_addon_env(request)
        deployment = await self.services.deploy(target, artifact, folder, request.idempotency_key)
        return deployment_answer(deployment, target.id)

    @staticmethod
    def _check_target(target: Resource) -> None:
        if target.kind not in ("service", "job"):
            raise DriverError(
                f"{_word(target)} '{target.id}' cannot be deployed to: a release targets a service or a job",
                retryable=False,
            )

    # Services --------------------------------------------------------------------------------------

    async def _restart_service(self, request: DriverRequest) -> DriverAnswer:
        ServiceSpec.parse(request.resource)
        service = await self._with_addon_env(request)
        deployment = await self.services.restart(service, request.idempotency_key)
        return deployment_answer(deployment, request.resource.id)

    async def _service_running(self, request: DriverRequest) -> DriverAnswer:
        status = await self.services.status(request.resource.id)
        data = {
            "serviceId": status.service_id,
            "state": status.state.value,
            "healthy": status.healthy,
            "pid": status.pid,
            "port": status.port,
            "artifact": status.artifact.to_data() if status.artifact else None,
        }
        if status.state is ServiceState.RUNNING and status.healthy:
            return DriverAnswer(AnswerState.DONE, data=data)
        message = f"service '{status.service_id}' is {status.state.value}: {status.detail}"
        return DriverAnswer(AnswerState.IN_PROGRESS, data=data, message=message)

    async def _execute_in_service(self, request: DriverRequest) -> DriverAnswer:
        command = _text(request.params.get("command"))
        if command is None:
            raise DriverError("an execute action needs data.command", retryable=False)
        # Northflank's `shell` names a shell; locally any value means "through sh -c".
        shell = request.params.get("shell") not in (None, "", False, "false")
        what = f"executing '{command}' in service '{request.resource.id}'"
        act = functools.partial(self._executed_in_service, request, command, shell)
        return await self.keyed.run(request.idempotency_key, what, act)

    async def _executed_in_service(self, request: DriverRequest, command: str, shell: bool) -> DriverAnswer:
        options = request.params.get("options")
        if isinstance(options, Mapping) and options.get("dispatchOnly"):
            task = asyncio.create_task(self.services.execute(request.resource, command, shell))
            self._background.add(task)
            task.add_done_callback(self._background.discard)
            return DriverAnswer(AnswerState.DONE, data={"serviceId": request.resource.id, "dispatched": True})
        result = await self.services.execute(request.resource, command, shell)
        output = "\n".join(result.output.splitlines()[-EXECUTE_OUTPUT_LINES:])
        data = {"serviceId": request.resource.id, "exitCode": result.exit_code, "output": output}
        if result.timed_out:
            return DriverAnswer(AnswerState.FAILED, data=data, message=f"'{command}' timed out:\n{output}")
        if result.exit_code != 0:
            message = f"'{command}' exited with code {result.exit_code}; last output:\n{output}"
            return DriverAnswer(AnswerState.FAILED, data=data, message=message)
        return DriverAnswer(AnswerState.DONE, data=data)

    # Jobs ------------------------------------------------------------------------------------------

    async def _run_job(self, request: DriverRequest) -> DriverAnswer:
        job, params = request.resource, request.params
        JobSpec.parse(job)
        deployment = _mapping(params.get("deployment"))
        if deployment.get("external"):
            raise _image_refused(job)
        internal = _mapping(deployment.get("internal"))
        if internal:
            sha = _text(internal.get("buildSHA"))
            origin = {
                "id": internal.get("id"),
                "branch": internal.get("branch"),
                "build": internal.get("buildId"),
            }
            commit = None if sha in (None, "latest") else sha
            artifact, folder = await self.resolve_build(origin, request.resources, commit=commit)
        else:
            artifact, folder = await self._current(job, request.artifact)
        env = {
            str(name): _env_text(value) for name, value in _mapping(params.get("runtimeEnvironment")).items()
        }
        job = await self._with_addon_env(request)
        run = await self.jobs.run(
            job, folder, artifact, env, request.idempotency_key, command=_custom_command(deployment)
        )
        return job_answer(run)

    async def _execute_in_job(self, request: DriverRequest) -> DriverAnswer:
        command = _text(request.params.get("command"))
        if command is None:
            raise DriverError("an execute action needs data.command", retryable=False)
        JobSpec.parse(request.resource)
        if request.params.get("shell") in (None, "", False, "false"):
            # Northflank runs the command without a shell: quote each word so `sh -c` keeps them literal.
            command = shlex.join(shlex.split(command))
        artifact, folder = await self._current(request.resource, request.artifact)
        job = await self._with_addon_env(request)
        run = await self.jobs.run(job, folder, artifact, {}, request.idempotency_key, command=command)
        return job_answer(run)

    async def _job_run_succeeded(self, request: DriverRequest) -> DriverAnswer:
        run_id = _text(request.params.get("runId"))
        if run_id is None:
            raise DriverError("a JobRun condition needs data.runId (the id of a job run)", retryable=False)
        return job_answer(await self.jobs.get(run_id))

    # Addons ----------------------------------------------------------------------------------------

    async def _with_addon_env(self, request: DriverRequest) -> Resource:
        """The request's service or job with the connection variables of its stage's local addons.

        Each addon gives ``<ADDON>_DATABASE_URL`` and ``<ADDON>_PG*``; a stage with exactly one addon also
        gives plain ``DATABASE_URL``. The resource's own ``env`` wins over these.
        """
        addons = [
            resource
            for resource_id, resource in sorted(request.resources.items())
            if resource_id in request.stage_resources and resource.kind == "addon" and resource.driver == NAME
        ]
        env: dict[str, str] = {}
        for addon in addons:
            await self.addons.ensure_running(addon, request.project_id)
            env.update(await self.addons.connection_env(addon, request.project_id))
        if len(addons) == 1:
            env["DATABASE_URL"] = await self.addons.connection_url(addons[0], request.project_id)
        if not env:
            return request.resource
        spec = dict(request.resource.spec)
        spec["env"] = {**env, **_mapping(spec.get("env"))}
        return replace(request.resource, spec=spec)

    async def _addon_running(self, request: DriverRequest) -> DriverAnswer:
        # A local addon is made on first use: the first check creates and starts a managed cluster,
        # as a declared addon exists on a hosted platform before any flow looks at it.
        status = await self.addons.ensure_running(request.resource, request.project_id)
        return DriverAnswer(AnswerState.DONE, data=status.to_data())

    async def _restart_addon(self, request: DriverRequest) -> DriverAnswer:
        async def restarted() -> DriverAnswer:
            status = await self.addons.restart(request.resource, request.project_id)
            return DriverAnswer(AnswerState.DONE, data=status.to_data())

        what = f"restarting addon '{request.resource.id}'"
        return await self.keyed.run(request.idempotency_key, what, restarted)

    async def _backup_addon(self, request: DriverRequest) -> DriverAnswer:
        params = request.params
        for key in ("customDestinationId", "additionalDestinations"):
            if params.get(key):
                raise DriverError(
                    f"addon '{request.resource.id}': {key} is not supported by the local driver, which"
                    " keeps backups on this host",
                    retryable=False,
                )
        # Like any other use, the first backup of a managed addon creates it (an empty database).
        await self.addons.ensure_running(request.resource, request.project_id)
        backup = await self.addons.backup(
            request.resource,
            request.project_id,
            backup_type=_text(params.get("backupType")) or "snapshot",
            compression=_text(params.get("compressionType")) or "gz",
            run_id=request.run_id,
            key=request.idempotency_key,
        )
        return backup_answer(backup)

    async def _backup_succeeded(self, request: DriverRequest) -> DriverAnswer:
        backup_id = _text(request.params.get("backupId"))
        if backup_id is None:
            raise DriverError("an AddonBackup condition needs data.backupId", retryable=False)
        return backup_answer(await self.addons.get_backup(backup_id))

    async def _restore_backup(self, request: DriverRequest) -> DriverAnswer:
        backup_id = _text(request.params.get("backupId"))
        if backup_id is None:
            raise DriverError("a restore action needs data.backupId", retryable=False)
        restore = await self.addons.restore(
            request.resource, request.project_id, backup_id, request.idempotency_key, run_id=request.run_id
        )
        return restore_answer(restore)


def _image_refused(target: Resource) -> DriverError:
    return DriverError(
        f"{_word(target)} '{target.id}' uses the local driver, which runs builds of build services;"
        " images need the docker driver",
        retryable=False,
    )


def _build_arguments(resource: Resource, params: Mapping[str, Any]) -> dict[str, str]:
    """A Build node's ``buildOverrides.buildArguments``, given to the build command as environment."""
    overrides = params.get("buildOverrides")
    if params.get("buildRules") is not None:
        raise DriverError(
            f"build service '{resource.id}': buildRules are not supported by the local driver",
            retryable=False,
        )
    if not isinstance(overrides, Mapping):
        return {}
    unsupported = sorted(key for key, value in overrides.items() if key not in _BUILD_OVERRIDES and value)
    if unsupported:
        raise DriverError(
            f"build service '{resource.id}': buildOverrides.{unsupported[0]} is not supported by the local"
            " driver (it honours buildOverrides.buildArguments, given to the build command as environment)",
            retryable=False,
        )
    arguments = overrides.get("buildArguments") or {}
    if not isinstance(arguments, Mapping):
        raise DriverError(
            "buildOverrides.buildArguments must be a mapping of names to values", retryable=False
        )
    BuildServiceSpec.parse(resource)  # the build service's own spec errors come first
    return {str(name): _env_text(value) for name, value in arguments.items()}


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "" if value is None else str(value)


def _custom_command(deployment: Mapping[str, Any]) -> str | None:
    """A JobRun's ``deployment.docker|buildpack.customCommand``: what runs instead of spec.command."""
    for key in ("docker", "buildpack"):
        command = _text(_mapping(deployment.get(key)).get("customCommand"))
        if command is not None:
            return command
    return None


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value.strip() else None


def _word(resource: Resource) -> str:
    return {"build_service": "build service"}.get(resource.kind, resource.kind)
