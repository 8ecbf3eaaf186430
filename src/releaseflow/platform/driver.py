"""The interface between node executors and the code that touches real infrastructure.

A driver performs one operation on one resource and says whether it is done, still in progress
(with a handle to follow it), or failed. It never touches the store and never changes run state;
it receives an idempotency key per attempt so a repeated call does not act twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

from releaseflow.domain.errors import ReleaseflowError


class Operation(StrEnum):
    # Actions: they change something.
    DEPLOY_BUILD = "deploy_build"  # Release type build: put a build of a build service on the target
    DEPLOY_IMAGE = "deploy_image"  # Release type registry: put an external image on the target
    PROMOTE = "promote"  # Release type deployment: put what runs on the origin onto the target
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
class DriverRequest:
    operation: Operation
    resource: Resource
    params: Mapping[str, Any]  # the resolved fields of the node that matter to the operation
    idempotency_key: str
    origin: Resource | None = None  # PROMOTE: the resource of the previous stage


@dataclass(frozen=True)
class DriverAnswer:
    state: AnswerState
    data: Mapping[str, Any] = field(default_factory=dict)  # becomes the node's response data
    message: str = ""
    handle: Any = None  # passed back to ``follow`` while in progress


class DriverError(ReleaseflowError):
    """The platform refused or failed; ``retryable`` says whether another attempt may succeed."""

    def __init__(self, message: str, *, retryable: bool = True) -> None:
        super().__init__(message)
        self.retryable = retryable


class Driver(Protocol):
    name: str

    async def perform(self, request: DriverRequest) -> DriverAnswer: ...

    async def follow(self, request: DriverRequest, handle: Any) -> DriverAnswer: ...


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
