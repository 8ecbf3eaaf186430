"""The interface between node executors and the code that touches real infrastructure.

A driver performs one operation on one resource and says whether it is done, still in progress
(with a handle to follow it), or failed. It never touches the store and never changes run state;
it receives an idempotency key per attempt so a repeated call does not act twice.

Idempotency and adoption: ``perform`` with an idempotency key the driver has already seen never acts
again; it adopts the operation started under that key and answers its current state (IN_PROGRESS with
a handle ``follow`` accepts, or DONE / FAILED with its outcome), whether or not the attempt is resumed
and across a restart of the releaseflow process. A driver records an operation durably *before* its
effect starts, so that a kill -9 at any instant leaves it either "never started" (a later request with
the key starts it) or "started and findable" (adopted). ``start`` reconciles records left in flight.

How each action keeps it (both drivers; tested per driver): builds, deploys, restarts of a service,
job runs (``run_job``, ``execute_in_job``), backups and restores derive the id of what they make from
the key and record it before acting, so a repeat adopts it. ``execute_in_service`` and
``restart_addon`` leave nothing to adopt (a command run inside a service, a restart): they are recorded
before they act (``platform/once.py``), and a repeat answers the first answer, or, if the process
acting died meanwhile, FAILED saying that whether it took effect is unknown -- at most once, never
"exactly once": acting again could do it twice. Checks only look, and are asked again on purpose.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol, runtime_checkable

from releaseflow.domain.errors import ReleaseflowError


class Operation(StrEnum):
    # Actions: they change something.
    DEPLOY_BUILD = "deploy_build"  # Release type build: put a build of a build service on the target
    DEPLOY_IMAGE = "deploy_image"  # Release type registry: put an external image on the target
    # Release type deployment (promote): the engine looks up what runs on the origin in its release
    # state and asks to deploy exactly that artifact; also used by rollbacks.
    DEPLOY_ARTIFACT = "deploy_artifact"
    START_BUILD = "start_build"
    RUN_JOB = "run_job"
    BACKUP_ADDON = "backup_addon"
    RESTART_SERVICE = "restart_service"
    EXECUTE_IN_SERVICE = "execute_in_service"
    EXECUTE_IN_JOB = "execute_in_job"
    RESTART_ADDON = "restart_addon"
    RESTORE_BACKUP = "restore_backup"
    # Checks: they only look; "done" means the condition holds.
    SERVICE_RUNNING = "service_running"
    ADDON_RUNNING = "addon_running"
    BUILD_SUCCEEDED = "build_succeeded"
    JOB_RUN_SUCCEEDED = "job_run_succeeded"
    BACKUP_SUCCEEDED = "backup_succeeded"


class AnswerState(StrEnum):
    DONE = "done"
    IN_PROGRESS = "in_progress"
    FAILED = "failed"


@dataclass(frozen=True)
class Resource:
    id: str
    kind: str  # service, job, addon, build_service
    driver: str
    spec: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Artifact:
    """What a service or job runs: a build of a build service, or a container image.

    ``to_data`` is the shape recorded in release state and in a Release node's ``response.data.artifact``.
    """

    kind: str  # "build" or "image"
    build_service: str | None = None
    build_id: str | None = None
    commit: str | None = None
    branch: str | None = None
    image: str | None = None  # the image reference (docker builds and registry images)
    credentials: str | None = None  # id of saved registry credentials, never the secret itself
    committed_at: str | None = None  # ISO 8601 committer date of ``commit``, when the driver knows it

    def to_data(self) -> dict[str, Any]:
        fields = {
            "kind": self.kind,
            "buildService": self.build_service,
            "buildId": self.build_id,
            "commit": self.commit,
            "branch": self.branch,
            "image": self.image,
            "credentials": self.credentials,
            "committedAt": self.committed_at,
        }
        return {key: value for key, value in fields.items() if value is not None}

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Artifact:
        return cls(
            kind=str(data.get("kind", "build")),
            build_service=data.get("buildService"),
            build_id=data.get("buildId"),
            commit=data.get("commit"),
            branch=data.get("branch"),
            image=data.get("image"),
            credentials=data.get("credentials"),
            committed_at=data.get("committedAt"),
        )


@dataclass(frozen=True)
class DriverRequest:
    """One operation on one resource.

    ``params`` are the resolved fields of the node that matter to the operation (for a Release: its
    ``origin``; for a Build, JobRun or AddonBackup: its ``spec``; for Action/Condition: ``spec.spec.data``).
    ``artifact`` is set by the engine where it knows what must run: DEPLOY_ARTIFACT (from release
    state), and for jobs and services the artifact release state says they run now.
    ``resources`` are all resources of the project by id (build services included), so a driver can
    read the build service a deploy names. The ids of project, stage and run let a driver name what it
    makes (a backup records the run that made it).
    """

    operation: Operation
    resource: Resource
    params: Mapping[str, Any]
    idempotency_key: str
    artifact: Artifact | None = None
    resources: Mapping[str, Resource] = field(default_factory=dict)
    project_id: str = ""
    stage: str = ""
    run_id: str = ""
    # Ids of the services, jobs and addons of the stage the run belongs to (e.g. the addons whose
    # connection details a job of that stage receives).
    stage_resources: frozenset[str] = frozenset()


@dataclass(frozen=True)
class DriverAnswer:
    state: AnswerState
    data: Mapping[str, Any] = field(default_factory=dict)  # becomes the node's response data
    message: str = ""
    handle: Any = None  # passed back to ``follow`` while in progress
    # For FAILED: False when another attempt cannot succeed (the new version exited during start-up,
    # the artifact is missing, the spec is invalid): the node then fails at once, without retries.
    retryable: bool = True


class DriverError(ReleaseflowError):
    """The platform refused or failed; ``retryable`` says whether another attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class Driver(Protocol):
    """A platform. ``start`` runs when a worker starts (adopt what runs, resume supervision);
    ``stop`` when it stops (processes and containers keep running: they are not releaseflow's children).

    Answers: DONE with ``data`` (a deploy's data holds ``artifact``: ``Artifact.to_data()`` of what
    now runs), IN_PROGRESS with a ``handle`` that ``follow`` accepts (for checks, a new ``perform``),
    or FAILED with a message that says what happened and what to check. Raise DriverError for
    refusals (retryable=False when another attempt cannot help).
    """

    name: str

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def perform(self, request: DriverRequest) -> DriverAnswer: ...

    async def follow(self, request: DriverRequest, handle: Any) -> DriverAnswer: ...

    async def cancel(self, request: DriverRequest, handle: Any) -> str:
        """Stop the action ``handle`` follows (the run was aborted); says what was stopped ("" when
        there is nothing to stop: a deploy finishes or returns to the previous release on its own)."""
        ...


class LogSource(StrEnum):
    """What a log belongs to (the words of ``releaseflow logs``)."""

    SERVICE = "service"  # a service's output, kept across releases and restarts
    JOB_RUN = "job-run"  # one run of a job
    BUILD = "build"  # one build of a build service


# The most lines one read of a log gives: one request stays cheap (the API's bound, the CLI's -n).
MOST_LOG_LINES = 10_000


@dataclass(frozen=True)
class LogLines:
    """Complete lines of a log with their place in it: ``lines[0]`` is line ``first`` counted from the
    log's start (its first line is 1), the next ones follow; ``total`` is how many complete lines the
    log held. A last line not ended by a newline yet is neither counted nor given until it is ended,
    so that a reader asking for the lines past the last one it got sees each line once, whole."""

    first: int
    lines: list[str]
    total: int


@runtime_checkable
class LogReader(Protocol):
    """A capability of drivers that keep the output of what they run; the engine reaches it through
    ``releaseflow.engine.logs``, so that no interface needs to know where a driver keeps its files."""

    async def logs(self, source: LogSource, key: str, *, lines: int) -> list[str]:
        """The last ``lines`` lines of the log of service, job run or build ``key``, oldest first.

        Raise NotFoundError when there is no such log, DriverError when ``key`` cannot name one.
        """
        ...

    async def log_lines(self, source: LogSource, key: str, *, after: int | None, limit: int) -> LogLines:
        """The complete lines of the same log numbered from its start: at most ``limit`` past line
        ``after`` (none when ``after`` is at or past the end), or without ``after`` its last ``limit``.
        What following a log reads: the numbers say exactly which lines are new. Raises as ``logs``.
        """
        ...


@runtime_checkable
class ArtifactChecker(Protocol):
    """A capability of drivers that keep what they deploy: whether an artifact can still be deployed.

    A rollback asks it of every artifact it will put back before it starts, and is refused with the
    list of what is missing (a deleted build, an image gone from the host and its registry).
    """

    async def artifact_exists(self, artifact: Artifact, resources: Mapping[str, Resource]) -> bool:
        """True when ``artifact`` (as recorded in release state) can be deployed again as it is."""
        ...


class DriverRegistry:
    """The drivers this process can use, by name."""

    def __init__(self, drivers: Mapping[str, Driver] | None = None) -> None:
        self._drivers: dict[str, Driver] = dict(drivers or {})

    def register(self, driver: Driver) -> None:
        self._drivers[driver.name] = driver

    def get(self, name: str) -> Driver:
        try:
            return self._drivers[name]
        except KeyError:
            known = ", ".join(sorted(self._drivers)) or "none"
            raise DriverError(
                f"driver '{name}' is not available in this releaseflow process (available: {known})",
                retryable=False,
            ) from None

    def names(self) -> list[str]:
        return sorted(self._drivers)

    async def start_all(self) -> None:
        for driver in self._drivers.values():
            await driver.start()

    async def stop_all(self) -> None:
        for driver in self._drivers.values():
            await driver.stop()
