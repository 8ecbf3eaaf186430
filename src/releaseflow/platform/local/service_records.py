"""What the local driver records about services: their state file and their deployments.

``services.ServiceManager`` keeps one ``ServiceRecord`` per service (``services/<id>/state.json``) and one
record per deployment (``deployments/<id>.json``); these are the shapes of both, and the answers built
from them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from releaseflow.platform.driver import Artifact
from releaseflow.platform.local.processes import ProcessHandle
from releaseflow.platform.local.state_files import optional_time


class DeploymentStatus(StrEnum):
    DEPLOYING = "deploying"  # set by deploy/restart: the new process is being started and checked
    RUNNING = "running"  # set by the deployment task: the new release serves, the old one is stopped
    FAILED = "failed"  # set by the deployment task: the new release never got healthy; the old one serves


class ServiceState(StrEnum):
    RUNNING = "running"  # the recorded process lives (``healthy`` says whether it answers its check)
    STOPPED = "stopped"  # nothing should run: stopped, or a first deploy failed
    CRASHED = "crashed"  # something should run but its process is gone; the supervisor restarts it
    UNKNOWN = "unknown"  # never deployed under this root


@dataclass(frozen=True)
class Deployment:
    id: str
    service_id: str
    key: str
    kind: str  # "deploy" or "restart"
    status: DeploymentStatus
    artifact: Artifact
    previous_artifact: Artifact | None
    started_at: datetime
    ended_at: datetime | None
    error: str  # what happened and what to check; empty unless failed
    pid: int | None  # the process of the new release, once started
    # False when another attempt cannot succeed (the new release exits during start-up, its folder
    # is gone, its spec is wrong); a health check that timed out may pass next time.
    retryable: bool = True


@dataclass(frozen=True)
class ServiceStatus:
    service_id: str
    state: ServiceState
    healthy: bool  # a probe made now passed (always False unless running)
    detail: str  # why it is not healthy, or crashed
    pid: int | None
    artifact: Artifact | None
    port: int | None
    since: datetime | None  # when the current process started
    restarts: int  # restarts by the supervisor since the last deploy
    last_exit_code: int | None
    deployment_id: str | None  # a deployment under way
    private_port: int | None = None  # where the serving version listens; the ingress holds ``port``


@dataclass
class Release:
    """What should run: an artifact, its folder and the spec it runs with."""

    artifact: dict[str, Any]
    artifact_dir: str
    spec: dict[str, Any]
    deployment: str | None  # the deployment that put it in place

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | None) -> Release | None:
        return None if data is None else cls(**data)


@dataclass
class Candidate:
    """A new version started beside the serving one by a deployment, not yet serving."""

    release: Release
    process: ProcessHandle
    port: int | None  # its private port (given to it as PORT)

    def to_data(self) -> dict[str, Any]:
        release = dataclasses.asdict(self.release)
        return {"release": release, "process": self.process.to_data(), "port": self.port}

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | None) -> Candidate | None:
        if not data:
            return None
        release = Release.from_data(data["release"])
        assert release is not None
        return cls(release, ProcessHandle.from_data(data["process"]), data.get("port"))


@dataclass
class ServiceRecord:
    service_id: str
    desired: str = "stopped"  # "running" or "stopped"
    release: Release | None = None
    previous: Release | None = None
    process: ProcessHandle | None = None
    # The private port ``process`` listens on (the ingress routes the public port there). None for a
    # service without a port, or a process started before releaseflow had an ingress (it holds the
    # public port itself).
    port: int | None = None
    candidate: Candidate | None = None  # the version a deployment is starting and checking
    retiring: ProcessHandle | None = None  # the version replaced by a deployment, stopped once drained
    retiring_port: int | None = None
    restarts: int = 0
    failures: int = 0  # consecutive crashes: the exponent of the restart backoff
    next_restart_at: str | None = None
    last_exit_code: int | None = None
    deployment: str | None = None

    def to_data(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["process"] = self.process.to_data() if self.process else None
        data["candidate"] = self.candidate.to_data() if self.candidate else None
        data["retiring"] = self.retiring.to_data() if self.retiring else None
        return data

    @classmethod
    def from_data(cls, data: dict[str, Any]) -> ServiceRecord:
        # Keys added later (port, candidate, retiring) are absent from older state files.
        state = cls(**data)
        state.release = Release.from_data(data["release"])
        state.previous = Release.from_data(data["previous"])
        state.process = ProcessHandle.from_data(data["process"]) if data["process"] else None
        state.candidate = Candidate.from_data(data.get("candidate"))
        state.retiring = ProcessHandle.from_data(data["retiring"]) if data.get("retiring") else None
        return state


def describe(artifact: Mapping[str, Any] | None) -> str:
    if not artifact:
        return "nothing"
    if artifact.get("buildId"):
        return f"build {artifact['buildId']}"
    return str(artifact.get("image") or artifact.get("commit") or "an artifact")


def deployment_from(record: Mapping[str, Any]) -> Deployment:
    previous = record.get("previousArtifact")
    ended = record.get("endedAt")
    return Deployment(
        id=str(record["id"]),
        service_id=str(record["serviceId"]),
        key=str(record["key"]),
        kind=str(record["kind"]),
        status=DeploymentStatus(record["status"]),
        artifact=Artifact.from_data(record["artifact"]),
        previous_artifact=Artifact.from_data(previous) if previous else None,
        started_at=datetime.fromisoformat(str(record["startedAt"])),
        ended_at=optional_time(ended),
        error=str(record.get("error") or ""),
        pid=record.get("pid"),
        retryable=record.get("retryable") is not False,
    )
