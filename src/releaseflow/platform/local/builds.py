"""Local builds: an exact git commit, built by a shell command, kept as an immutable artifact.

Each build service has a bare mirror under ``<root>/mirrors`` that every build fetches into
(``git_mirror``), so a branch head is resolved once, at start, to the commit that is then built and
recorded. A build runs
as an asyncio task of the process that started it; its record lives on disk (``artifacts.py``) so
any process sharing the root can follow it, and a build whose process died is marked failed.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import secrets
import signal
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from releaseflow.platform.driver import Resource
from releaseflow.platform.file_lock import file_lock
from releaseflow.platform.local.artifacts import (
    ArtifactStore,
    BuildError,
    BuildRecord,
    BuildStatus,
    append_log,
    keep_artifact,
    log_tail,
    now_utc,
    remove_tree,
)
from releaseflow.platform.local.git_mirror import GIT_TIMEOUT_SECONDS, checkout, commit_time, resolve
from releaseflow.platform.local.processes import child_environment
from releaseflow.platform.local.specs import BuildServiceSpec
from releaseflow.processes import is_alive, read_start_time

LOG_TAIL_LINES = 20
INTERRUPTED = "interrupted: the releaseflow process running this build stopped before it finished"


class BuildNotFoundError(BuildError):
    def __init__(self, build_id: str) -> None:
        super().__init__(f"build '{build_id}' does not exist on this host (local driver)", retryable=False)


@dataclass(frozen=True)
class BuildStart:
    """What ``start_build`` answered: the build, and whether it existed already (reuse, same key)."""

    build: BuildRecord
    reused: bool


class BuildManager:
    """Starts, follows and keeps the builds of build services on this host."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.store = ArtifactStore(root)
        self._mirrors = root / "mirrors"
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._identity = (os.getpid(), read_start_time(os.getpid()))

    # Lifecycle -------------------------------------------------------------------------------------

    async def start(self) -> None:
        """Mark failed every build left running by a process that is gone."""
        for record in await asyncio.to_thread(lambda: list(self.store.records())):
            if record.status is BuildStatus.RUNNING:
                await self._check_owner(record)

    async def stop(self) -> None:
        """Cancel the builds this process runs; each is recorded as failed (interrupted)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # Queries ---------------------------------------------------------------------------------------

    async def get_build(self, build_id: str) -> BuildRecord:
        record = await asyncio.to_thread(self.store.load, build_id)
        if record is None:
            raise BuildNotFoundError(build_id)
        if record.status is BuildStatus.RUNNING:
            record = await self._check_owner(record)
        return record

    async def latest_build(
        self, build_service: str, branch: str | None = None, *, status: BuildStatus = BuildStatus.SUCCESS
    ) -> BuildRecord | None:
        """The newest successful build of ``build_service`` (on ``branch`` when given; or of ``status``)."""

        def newest() -> BuildRecord | None:
            found = [
                record
                for record in self.store.records()
                if record.build_service == build_service
                and record.status is status
                and (branch is None or record.branch == branch)
            ]
            return max(found, key=lambda record: record.ended_at or record.started_at, default=None)

        return await asyncio.to_thread(newest)

    async def build_of_commit(self, build_service: str, commit: str) -> BuildRecord | None:
        """The newest successful build of ``commit`` (a full sha, or a prefix of one)."""

        def newest() -> BuildRecord | None:
            found = [
                record
                for record in self.store.records()
                if record.build_service == build_service
                and record.status is BuildStatus.SUCCESS
                and record.commit.startswith(commit.lower())
            ]
            return max(found, key=lambda record: record.ended_at or record.started_at, default=None)

        return await asyncio.to_thread(newest)

    def artifact_path(self, record: BuildRecord) -> Path:
        return Path(record.artifact_path)

    async def wait(self, build_id: str, timeout: float) -> BuildRecord:
        """The build once it has finished (for callers that must block, such as tests and the CLI)."""
        deadline = time.monotonic() + timeout
        while True:
            record = await self.get_build(build_id)
            if record.finished:
                return record
            if time.monotonic() >= deadline:
                raise BuildError(f"build '{build_id}' still running after {timeout:g} s")
            task = self._tasks.get(build_id)
            if task is not None:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(task), timeout=deadline - time.monotonic())
            else:
                await asyncio.sleep(0.1)

    # Starting a build ------------------------------------------------------------------------------

    async def start_build(
        self,
        build_service: Resource,
        *,
        key: str,
        branch: str | None = None,
        sha: str | None = None,
        reuse: bool = True,
        build_arguments: Mapping[str, str] | None = None,
    ) -> BuildStart:
        """Resolve the commit, then return at once: an existing build, or a new one running."""
        known = await asyncio.to_thread(self.store.build_for_key, key)
        if known is not None:
            return BuildStart(await self.get_build(known), reused=True)
        spec = BuildServiceSpec.parse(build_service)
        env = {**spec.env, **(build_arguments or {})}
        recipe = _recipe(spec, env)
        mirror = self._mirrors / f"{build_service.id}.git"
        async with self._mirror_lock(build_service.id):
            commit, branch = await resolve(build_service.id, spec, mirror, branch, sha)
            committed_at = await commit_time(mirror, commit)
        if reuse:
            existing = await asyncio.to_thread(self._find_reusable, build_service.id, commit, recipe)
            if existing is not None and existing.status is BuildStatus.RUNNING:
                existing = await self._check_owner(existing)  # a build of a dead process is no reuse
            if existing is not None and existing.status is not BuildStatus.FAILED:
                winner = await asyncio.to_thread(self.store.claim_key, key, existing.id)
                return BuildStart(await self.get_build(winner), reused=True)
        build_id = f"bld-{secrets.token_hex(6)}"
        folder = self.store.folder(build_id)
        record = BuildRecord(
            id=build_id,
            build_service=build_service.id,
            repository=spec.repository,
            branch=branch,
            commit=commit,
            status=BuildStatus.RUNNING,
            started_at=now_utc(),
            recipe=recipe,
            log_path=str(folder / "build.log"),
            artifact_path=str(folder / "artifact"),
            owner_pid=self._identity[0],
            owner_start_time=self._identity[1],
            committed_at=committed_at,
        )
        await asyncio.to_thread(self.store.create, record)
        # The record exists before the key names it, so whoever reads the key finds the build.
        winner = await asyncio.to_thread(self.store.claim_key, key, build_id)
        if winner != build_id:
            await asyncio.to_thread(self.store.discard, build_id)
            return BuildStart(await self.get_build(winner), reused=True)
        task = asyncio.create_task(self._run(record, spec, env, mirror), name=f"build {build_id}")
        self._tasks[build_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(build_id, None))
        return BuildStart(record, reused=False)

    def _find_reusable(self, build_service: str, commit: str, recipe: str) -> BuildRecord | None:
        # A running build of the same commit is reused too: starting a second one would only race it.
        candidates = [
            record
            for record in self.store.records()
            if record.build_service == build_service
            and record.commit == commit
            and record.recipe == recipe
            and record.status is not BuildStatus.FAILED
        ]
        return max(candidates, key=lambda record: record.started_at, default=None)

    # Running a build -------------------------------------------------------------------------------

    async def _run(
        self, record: BuildRecord, spec: BuildServiceSpec, env: Mapping[str, str], mirror: Path
    ) -> None:
        source = self.store.source_path(record.id)
        log_path = Path(record.log_path)
        timings: dict[str, float] = {}
        process: asyncio.subprocess.Process | None = None
        try:
            began = time.monotonic()
            await asyncio.to_thread(
                append_log, log_path, f"$ git checkout {record.commit} ({record.repository})\n"
            )
            await checkout(mirror, record.commit, source)
            timings["checkout"] = round(time.monotonic() - began, 3)
            began = time.monotonic()
            await asyncio.to_thread(append_log, log_path, f"$ sh -c {json.dumps(spec.build_command)}\n")
            log_fd = await asyncio.to_thread(os.open, log_path, os.O_WRONLY | os.O_APPEND)
            try:
                process = await asyncio.create_subprocess_exec(
                    "sh",
                    "-c",
                    spec.build_command,
                    cwd=source,
                    env=_build_env(record, env),
                    stdin=asyncio.subprocess.DEVNULL,
                    stdout=log_fd,
                    stderr=asyncio.subprocess.STDOUT,
                    start_new_session=True,  # its own process group, so a timeout stops all of it
                )
            finally:
                os.close(log_fd)
            record = _with_command(record, process.pid)
            await asyncio.to_thread(self.store.save, record)
            try:
                code = await asyncio.wait_for(process.wait(), timeout=spec.timeout_seconds)
            except TimeoutError:
                await _kill_group(process)
                timings["command"] = round(time.monotonic() - began, 3)
                message = (
                    f"build of '{record.build_service}' timed out after {spec.timeout_seconds:g} s"
                    " (raise spec.timeoutSeconds of the build service if it needs longer)"
                )
                await self._finish(record, BuildStatus.FAILED, message, timings=timings, with_log=True)
                return
            finally:
                _signal_group(process.pid, signal.SIGKILL)  # whatever the command left in the background
            timings["command"] = round(time.monotonic() - began, 3)
            await asyncio.to_thread(
                append_log, log_path, f"# exit code {code} after {timings['command']:g} s\n"
            )
            if code != 0:
                message = f"build command of '{record.build_service}' failed with exit code {code}"
                await self._finish(
                    record, BuildStatus.FAILED, message, exit_code=code, timings=timings, with_log=True
                )
                return
            problem = await asyncio.to_thread(
                keep_artifact, source, spec.artifact_path, Path(record.artifact_path)
            )
            if problem:
                await self._finish(record, BuildStatus.FAILED, problem, exit_code=code, timings=timings)
                return
            await self._finish(record, BuildStatus.SUCCESS, None, exit_code=code, timings=timings)
        except asyncio.CancelledError:
            if process is not None and process.returncode is None:
                await _kill_group(process)
            await asyncio.shield(self._finish(record, BuildStatus.FAILED, INTERRUPTED, timings=timings))
            raise
        except Exception as error:  # any surprise still ends the build visibly, never leaves it running
            await self._finish(record, BuildStatus.FAILED, f"build failed: {error}", timings=timings)
        finally:
            await asyncio.to_thread(remove_tree, source)

    async def _finish(
        self,
        record: BuildRecord,
        status: BuildStatus,
        error: str | None,
        *,
        exit_code: int | None = None,
        timings: Mapping[str, float] | None = None,
        with_log: bool = False,
    ) -> None:
        if error is not None and with_log:
            tail = await asyncio.to_thread(log_tail, Path(record.log_path), LOG_TAIL_LINES)
            error = f"{error}; last lines of {record.log_path}:\n{tail}"
        final = record.finish(status, error=error, exit_code=exit_code, timings=timings)
        await asyncio.to_thread(self.store.save, final)

    async def _check_owner(self, record: BuildRecord) -> BuildRecord:
        """A running build whose process is gone is failed (interrupted); its command is stopped."""
        if record.id in self._tasks or is_alive(record.owner_pid, record.owner_start_time):
            return record
        if record.command_pid is not None and is_alive(record.command_pid, record.command_start_time):
            _signal_group(record.command_pid, signal.SIGKILL)
        final = record.finish(BuildStatus.FAILED, error=INTERRUPTED)
        await asyncio.to_thread(self.store.save, final)
        await asyncio.to_thread(remove_tree, self.store.source_path(record.id))
        return final

    @contextlib.asynccontextmanager
    async def _mirror_lock(self, build_service: str) -> AsyncIterator[None]:
        # Fetches into one mirror must not overlap: in this process (asyncio lock) nor across
        # processes sharing the root (flock, polled so the event loop never blocks on it).
        stuck = BuildError(f"the git mirror of '{build_service}' stayed locked")
        path = self._mirrors / f"{build_service}.lock"
        async with (
            self._locks.setdefault(build_service, asyncio.Lock()),
            file_lock(path, mode=0o644, timeout=GIT_TIMEOUT_SECONDS, stuck=stuck),
        ):
            yield


# Processes and files --------------------------------------------------------------------------------


def _build_env(record: BuildRecord, env: Mapping[str, str]) -> dict[str, str]:
    # releaseflow's own variables (database URL, ...) are not handed to build commands.
    own = {
        "RELEASEFLOW_BUILD_ID": record.id,
        "RELEASEFLOW_BUILD_SERVICE": record.build_service,
        "RELEASEFLOW_COMMIT": record.commit,
        "RELEASEFLOW_BRANCH": record.branch or "",
    }
    return child_environment(own, env)


def _recipe(spec: BuildServiceSpec, env: Mapping[str, str]) -> str:
    # What decides the artifact's content besides the commit; a build is reused only if all match.
    recipe = {
        "repository": spec.repository,
        "command": spec.build_command,
        "env": dict(sorted(env.items())),
        "artifactPath": spec.artifact_path,
    }
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:16]


def _with_command(record: BuildRecord, pid: int) -> BuildRecord:
    return replace(record, command_pid=pid, command_start_time=read_start_time(pid))


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)


async def _kill_group(process: asyncio.subprocess.Process) -> None:
    _signal_group(process.pid, signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), timeout=5)
    except TimeoutError:
        _signal_group(process.pid, signal.SIGKILL)
        await process.wait()
