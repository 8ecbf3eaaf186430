"""Builds: from a git commit and a Dockerfile to a tagged (and pushed) image.

The repository of a build service is fetched into a bare mirror under the driver's root; the exact
commit (of a branch, or a given sha) is exported with ``git archive`` as the build context, so nothing
uncommitted or newer can slip in. Images are tagged ``<registry>/<project>-<build service>:<build id>``
and ``:<commit>``, and pushed when a registry is configured. A build of a commit that was already
built (or is being built) with the same Dockerfile is reused.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import tarfile
import tempfile
from collections.abc import AsyncIterator, Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from releaseflow.domain.errors import describe_error
from releaseflow.platform.docker.client import DockerClient, DockerError, RegistryCredentials, registry_of
from releaseflow.platform.docker.records import Records, Supervisor, new_id, safe_name, utc_now
from releaseflow.platform.driver import (
    AnswerState,
    DriverAnswer,
    DriverError,
    Resource,
)

BUILDING, SUCCEEDED, FAILED = "building", "succeeded", "failed"
_EXTRA_DOCKERFILE = ".releaseflow.Dockerfile"
_BUILD_LABEL = "io.releaseflow.build"  # on each image: the build that made it
_COMMIT_LABEL = "io.releaseflow.commit"
_CHUNK = 1 << 20


def build_data(record: Mapping[str, Any]) -> dict[str, Any]:
    """A Build node's response data (``${refs.<ref>.id}`` and friends)."""
    return {
        "id": record["id"],
        "sha": record["sha"],
        "branch": record.get("branch"),
        "buildService": record["buildService"],
        "image": record["image"],
        "status": record["status"],
    }


def build_answer(record: Mapping[str, Any]) -> DriverAnswer:
    data = build_data(record)
    handle = {"kind": "build", "id": record["id"]}
    if record["status"] == SUCCEEDED:
        return DriverAnswer(AnswerState.DONE, data, f"build {record['id']} succeeded", handle)
    if record["status"] == FAILED:
        return DriverAnswer(AnswerState.FAILED, data, str(record.get("message", "")), handle)
    return DriverAnswer(AnswerState.IN_PROGRESS, data, f"building {record['image']}", handle)


async def _git(*args: str, cwd: Path | None = None, what: str) -> str:
    process = await asyncio.create_subprocess_exec(
        "git",
        *args,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        stdin=asyncio.subprocess.DEVNULL,
    )
    out, err = await process.communicate()
    if process.returncode != 0:
        raise DriverError(f"{what}: git {args[0]} failed: {err.decode(errors='replace').strip()}")
    return out.decode().strip()


class Builder:
    def __init__(
        self,
        client: DockerClient,
        root: Path,
        supervisor: Supervisor,
        *,
        registry: str | None,
        credentials: Mapping[str, RegistryCredentials],
    ) -> None:
        self._client = client
        self._records = Records(root / "builds")
        self._mirrors = root / "git"
        self._supervisor = supervisor
        self._registry = registry.rstrip("/") if registry else None
        self._credentials = credentials
        self._mirror_locks: dict[str, asyncio.Lock] = {}

    # -- lookups --------------------------------------------------------------------------------------

    def get(self, build_id: str) -> dict[str, Any] | None:
        return self._records.load(build_id)

    def find(self, project: str, build_service: str, build: str | None, branch: str | None) -> dict[str, Any]:
        """A build by id (or commit), or the latest successful one of a branch (``build`` absent/latest)."""
        records = [
            r for r in self._records.all() if r["project"] == project and r["buildService"] == build_service
        ]
        if build and build != "latest":
            for record in records:
                if build in (record["id"], record["sha"]) or (
                    len(build) >= 7 and record["sha"].startswith(build)
                ):
                    return record
            raise DriverError(
                f"build '{build}' of build service '{build_service}' does not exist (start a build first)",
                retryable=False,
            )
        done = [r for r in records if r["status"] == SUCCEEDED and (not branch or r.get("branch") == branch)]
        if not done:
            on = f" on branch '{branch}'" if branch else ""
            raise DriverError(
                f"build service '{build_service}' has no successful build{on} yet: run a Build node first",
                retryable=False,
            )
        return max(done, key=lambda r: str(r.get("finishedAt") or ""))

    def follow(self, build_id: str) -> DriverAnswer:
        record = self._records.require(build_id, "build")
        if record["status"] == BUILDING:
            self._drive(record)  # nobody drives it after a restart: pick it up again
        return build_answer(record)

    async def wait(self, build_id: str) -> dict[str, Any]:
        """The build's record once it is no longer building (resuming it if nobody drives it)."""
        record = self.get(build_id)
        if record is not None and record["status"] == BUILDING:
            self._drive(record)
            await self._supervisor.wait(self._task_name(build_id))
            record = self.get(build_id)
        if record is None:
            raise DriverError(f"build '{build_id}' does not exist", retryable=False)
        return record

    def credentials_for(self, reference: str) -> RegistryCredentials | None:
        host = registry_of(reference)
        for credentials in self._credentials.values():
            if credentials.registry == host:
                return credentials
        return None

    # -- starting -------------------------------------------------------------------------------------

    async def start(
        self, *, project: str, build_service: Resource, params: Mapping[str, Any], key: str
    ) -> dict[str, Any]:
        build_id = _build_id(self._records.directory, project, build_service.id, key)
        earlier = self._records.load(build_id)
        if earlier is not None:
            # The key started this build before (maybe in a releaseflow process since killed): adopt it.
            if earlier["status"] == BUILDING:
                self._drive(earlier)
            return earlier
        spec = build_service.spec
        repository = spec.get("repository")
        if not isinstance(repository, str) or not repository:
            raise DriverError(
                f"build service '{build_service.id}' has no 'repository' in its spec (a git URL or path)",
                retryable=False,
            )
        overrides = params.get("buildOverrides") or {}
        docker = overrides.get("docker") or {} if isinstance(overrides, Mapping) else {}
        dockerfile = _clean(str(docker.get("dockerFilePath") or spec.get("dockerfile") or "Dockerfile"))
        context = _clean(str(docker.get("dockerWorkDir") or spec.get("context") or "."))
        target = docker.get("dockerfileTarget") or None
        branch = params.get("branch") or spec.get("branch")
        sha = params.get("sha")
        mirror = await self._fetch(repository)
        commit, branch = await self._resolve(mirror, repository, branch, sha)

        if params.get("reuseExistingBuilds", True) is not False:
            reusable = self._reusable(project, build_service.id, commit, dockerfile, context)
            if reusable is not None:
                return reusable
        repo = self._repository_name(project, build_service.id)
        arguments = overrides.get("buildArguments") if isinstance(overrides, Mapping) else None
        record: dict[str, Any] = {
            "id": build_id,
            "project": project,
            "buildService": build_service.id,
            "repository": repository,
            "branch": branch,
            "sha": commit,
            "dockerfile": dockerfile,
            "context": context,
            "target": target,
            "buildArguments": {str(k): str(v) for k, v in (arguments or {}).items()},
            "image": f"{repo}:{build_id}",
            "tags": [f"{repo}:{build_id}", f"{repo}:{commit}"],
            "registry": self._registry,
            "status": BUILDING,
            "message": "",
            "idempotencyKey": key,
            "createdAt": utc_now(),
            "finishedAt": None,
        }
        self._records.save(build_id, record)
        self._drive(record)
        return record

    def _reusable(
        self, project: str, build_service: str, commit: str, dockerfile: str, context: str
    ) -> dict[str, Any] | None:
        """A build (done or under way) of the same commit with the same Dockerfile and context."""
        wanted = (project, build_service, commit, dockerfile, context)
        for existing in self._records.all():
            same = (
                existing["project"],
                existing["buildService"],
                existing["sha"],
                existing["dockerfile"],
                existing["context"],
            ) == wanted
            if same and existing["status"] != FAILED:
                if existing["status"] == BUILDING:
                    self._drive(existing)
                return existing
        return None

    def resume(self) -> None:
        for record in self._records.with_status(BUILDING):
            self._drive(record)

    def _repository_name(self, project: str, build_service: str) -> str:
        name = safe_name(project, build_service)
        # Without a registry the image stays in the engine's own store, under an explicit local name.
        return f"{self._registry}/{name}" if self._registry else f"localhost/releaseflow/{name}"

    @staticmethod
    def _task_name(build_id: str) -> str:
        return f"build:{build_id}"

    def _drive(self, record: Mapping[str, Any]) -> None:
        build_id = str(record["id"])
        self._supervisor.ensure(self._task_name(build_id), lambda: self._run(build_id))

    # -- git ------------------------------------------------------------------------------------------

    async def _fetch(self, repository: str) -> Path:
        mirror = self._mirrors / (hashlib.sha256(repository.encode()).hexdigest()[:16] + ".git")
        lock = self._mirror_locks.setdefault(str(mirror), asyncio.Lock())
        what = f"fetching {repository}"
        async with lock:
            if not (mirror / "HEAD").exists():
                mirror.mkdir(parents=True, exist_ok=True)
                await _git("init", "--bare", "--quiet", str(mirror), what=what)
            await _git(
                "fetch",
                "--quiet",
                "--prune",
                "--force",
                repository,
                "+refs/heads/*:refs/heads/*",
                "+refs/tags/*:refs/tags/*",
                cwd=mirror,
                what=f"{what} (check the build service's repository URL and access to it)",
            )
        return mirror

    @staticmethod
    async def _resolve(mirror: Path, repository: str, branch: Any, sha: Any) -> tuple[str, str | None]:
        if isinstance(sha, str) and sha:
            try:
                commit = await _git(
                    "rev-parse", "--verify", "--quiet", f"{sha}^{{commit}}", cwd=mirror, what=""
                )
            except DriverError:
                raise DriverError(f"commit {sha} is not in {repository}", retryable=False) from None
            return commit, str(branch) if branch else None
        if not branch:
            heads = (
                await _git("for-each-ref", "--format=%(refname:short)", "refs/heads", cwd=mirror, what="")
            ).split()
            if len(heads) != 1:
                raise DriverError(
                    f"name a branch to build (in the Build node or the build service's spec): {repository}"
                    f" has branches {', '.join(heads) or 'none'}",
                    retryable=False,
                )
            branch = heads[0]
        try:
            commit = await _git(
                "rev-parse", "--verify", "--quiet", f"refs/heads/{branch}^{{commit}}", cwd=mirror, what=""
            )
        except DriverError:
            raise DriverError(f"branch '{branch}' does not exist in {repository}", retryable=False) from None
        return commit, str(branch)

    async def _context(self, record: Mapping[str, Any], into: Path) -> str:
        """Write the build context of the record's commit as a tar; answers the Dockerfile's path in it."""
        mirror = await self._fetch(str(record["repository"]))
        context = str(record["context"])
        tree = str(record["sha"]) if context == "." else f"{record['sha']}:{context}"
        await _git(
            "archive", "--format=tar", f"--output={into}", tree, cwd=mirror, what="exporting the commit"
        )
        dockerfile = PurePosixPath(str(record["dockerfile"]))
        if context == ".":
            return str(dockerfile)
        if dockerfile.is_relative_to(context):
            return str(dockerfile.relative_to(context))
        # The Dockerfile lives outside the context: ship it inside under a name of ours.
        content = await _git(
            "show", f"{record['sha']}:{dockerfile}", cwd=mirror, what="reading the Dockerfile"
        )
        data = content.encode()
        with tarfile.open(into, "a") as archive:
            info = tarfile.TarInfo(_EXTRA_DOCKERFILE)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
        return _EXTRA_DOCKERFILE

    # -- the build itself -----------------------------------------------------------------------------

    async def _run(self, build_id: str) -> None:
        record = self._records.load(build_id)
        if record is None or record["status"] != BUILDING:
            return
        log_path = self._records.log_path(build_id)
        with log_path.open("a") as log_file:

            def log(line: str) -> None:
                log_file.write(line + "\n")
                log_file.flush()

            try:
                await self._build_and_push(record, log)
            except DriverError as error:
                log(f"FAILED: {error}")
                record.update(status=FAILED, message=str(error), finishedAt=utc_now())
            except Exception as error:  # a bug or an odd engine answer: the build must still end
                log(f"FAILED: {describe_error(error)}")
                record.update(
                    status=FAILED,
                    message=f"build failed unexpectedly: {describe_error(error)}",
                    finishedAt=utc_now(),
                )
            else:
                record.update(status=SUCCEEDED, finishedAt=utc_now())
            self._records.save(build_id, record)

    async def _build_and_push(self, record: dict[str, Any], log: Any) -> None:
        short = f"build {record['id']} of '{record['buildService']}' at {str(record['sha'])[:12]}"
        log(f"{short}: {record['repository']} ({record['branch'] or 'detached'})")
        built = await self._client.inspect_image(str(record["image"]))
        labels = ((built or {}).get("Config") or {}).get("Labels") or {}
        if (labels.get(_BUILD_LABEL), labels.get(_COMMIT_LABEL)) == (record["id"], record["sha"]):
            # Built before its releaseflow process died (a restart resumes the build): not again.
            log(f"{short}: the image {record['image']} was built already")
        else:
            await self._build(record, log, short)
        if not self._registry:
            return
        credentials = self.credentials_for(record["image"])
        for tag in record["tags"]:
            log(f"pushing {tag}")
            try:
                await self._client.push_image(tag, credentials=credentials, on_log=log)
            except DockerError as error:
                raise DockerError(
                    f"{short} built, but pushing {tag} to registry {self._registry} failed: {error}."
                    " Check that the registry runs at that address and accepts pushes from the engine"
                    " (plain-HTTP registries must be allowed as insecure in the engine's configuration)"
                    " and the credentials",
                    retryable=True,
                ) from error

    async def _build(self, record: dict[str, Any], log: Any, short: str) -> None:
        with tempfile.TemporaryDirectory(prefix="releaseflow-build-") as directory:
            archive = Path(directory) / "context.tar"
            dockerfile = await self._context(record, archive)
            try:
                await self._client.build_image(
                    _chunks(archive),
                    tags=record["tags"],
                    dockerfile=dockerfile,
                    on_log=log,
                    labels={_BUILD_LABEL: record["id"], _COMMIT_LABEL: record["sha"]},
                    target=record.get("target"),
                    build_args=record.get("buildArguments") or None,
                )
            except DockerError as error:
                raise DockerError(
                    f"{short} failed: {error} (the build log is {self._records.log_path(record['id'])})",
                    retryable=False,
                ) from error


def _build_id(root: Path, project: str, build_service: str, key: str) -> str:
    """The id of the build a key starts (a fresh one without a key: nothing to deduplicate against).

    The driver's root is part of it: two releaseflow installations may share one engine."""
    if not key:
        return new_id(safe_name(build_service)[:30])
    digest = hashlib.sha256(f"{root}\0{project}\0{build_service}\0{key}".encode()).hexdigest()[:12]
    return f"{safe_name(build_service)[:30]}-{digest}"


def _clean(path: str) -> str:
    """A repository-relative path from Northflank-style ``/Dockerfile`` or ``./dir`` forms."""
    cleaned = str(PurePosixPath("/", path)).lstrip("/")
    return cleaned or "."


async def _chunks(path: Path) -> AsyncIterator[bytes]:
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            yield chunk
