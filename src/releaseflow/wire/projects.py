"""Projects, their resources and the records of what runs made on platforms, as JSON.

Each shape is a pydantic model, so that the HTTP API documents it (``/docs``) from the same
definition that makes it; ``model_dump()`` gives the plain document to any other interface.
Timestamps are ISO 8601 in UTC with a ``Z`` (``wire.runs.iso``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from releaseflow.engine.platform_records import PlatformRecord
from releaseflow.engine.projects import ProjectDetail, ProjectView, ResourceView
from releaseflow.engine.release_flows import PipelineDetail
from releaseflow.platform.driver import LogLines
from releaseflow.wire.runs import iso


class ProjectShape(BaseModel):
    id: str
    name: str
    description: str
    createdAt: str | None
    updatedAt: str | None

    @classmethod
    def of(cls, view: ProjectView) -> ProjectShape:
        return cls(
            id=view.id,
            name=view.name,
            description=view.description,
            createdAt=iso(view.created_at),
            updatedAt=iso(view.updated_at),
        )


class ResourceRef(BaseModel):
    id: str
    kind: str | None = Field(description="build_service, job, service or addon")


class NodeRef(BaseModel):
    path: str = Field(description="the node's place in its run's tree")
    ref: str | None


class RecordShape(BaseModel):
    """A build, job run, deploy or backup a run made."""

    id: str = Field(description="the record's id (that of the node that made it)")
    kind: str = Field(description="build, job-run, deploy or backup")
    status: str = Field(description="the node's status: running, waiting, retrying, success, failed, ...")
    project: str
    pipeline: str
    stage: str
    runId: str
    node: NodeRef
    resource: ResourceRef | None = Field(description="what it acted on (null: its spec named nothing)")
    platformId: str | None = Field(description="the id the driver gave what it made (build, job run, ...)")
    attempts: int
    startedAt: str | None
    endedAt: str | None
    error: str | None
    data: dict[str, Any] = Field(description="the node's response data, as a run shows it")

    @classmethod
    def of(cls, record: PlatformRecord) -> RecordShape:
        resource = None
        if record.resource_id is not None:
            resource = ResourceRef(id=record.resource_id, kind=record.resource_kind)
        return cls(
            id=record.id,
            kind=str(record.kind),
            status=str(record.status),
            project=record.project_id,
            pipeline=record.pipeline_id,
            stage=record.stage,
            runId=record.run_id,
            node=NodeRef(path=record.node_path, ref=record.node_ref),
            resource=resource,
            platformId=record.platform_id,
            attempts=record.attempts,
            startedAt=iso(record.started_at),
            endedAt=iso(record.ended_at),
            error=record.error,
            data=dict(record.data),
        )


class LogLineShape(BaseModel):
    number: int = Field(description="its place in the log: the log's first line is 1")
    text: str


class LogLinesShape(BaseModel):
    """Complete lines of a record's log, numbered from its start (a last line without its newline
    yet comes once it is ended): a follower asks for the lines past the last number it got."""

    lines: list[LogLineShape]
    first: int = Field(description="the number of the first line answered, or of the next one to come")
    total: int = Field(description="how many complete lines the log holds")

    @classmethod
    def of(cls, found: LogLines) -> LogLinesShape:
        numbered = enumerate(found.lines, start=found.first)
        lines = [LogLineShape(number=number, text=text) for number, text in numbered]
        return cls(lines=lines, first=found.first, total=found.total)


class Release(BaseModel):
    artifact: dict[str, Any] = Field(description="what it runs: a build of a build service, or an image")
    runId: str = Field(description="the run that deployed it")
    deployedAt: str | None


class ResourceShape(BaseModel):
    id: str
    kind: str = Field(description="service, job, addon or build_service")
    driver: str
    pipeline: str | None = Field(description="the pipeline of the stage holding it (null: in none)")
    stage: str | None
    status: str = Field(
        description="the status of its latest record (success, failed, running, ...), 'none' when no"
        " run acted on it yet: what releaseflow recorded, not a probe of the platform"
    )
    running: Release | None = Field(description="what a service or job runs (null: nothing deployed)")
    latest: RecordShape | None = Field(description="its latest build, job run, deploy or backup")

    @classmethod
    def of(cls, view: ResourceView) -> ResourceShape:
        running = None
        if view.release is not None:
            running = Release(
                artifact=dict(view.release.artifact),
                runId=view.release.run_id,
                deployedAt=iso(view.release.deployed_at),
            )
        return cls(
            id=view.id,
            kind=view.kind,
            driver=view.driver,
            pipeline=view.pipeline_id,
            stage=view.stage,
            status=str(view.latest.status) if view.latest is not None else "none",
            running=running,
            latest=RecordShape.of(view.latest) if view.latest is not None else None,
        )


class StageShape(BaseModel):
    name: str
    hasReleaseFlow: bool
    resources: list[str] = Field(description="the ids of the services, jobs and addons it holds")


class PipelineShape(BaseModel):
    id: str
    name: str
    description: str
    stages: list[StageShape]

    @classmethod
    def of(cls, detail: PipelineDetail) -> PipelineShape:
        return cls(
            id=detail.summary.id,
            name=detail.summary.name,
            description=detail.summary.description,
            stages=[
                StageShape(
                    name=stage.name,
                    hasReleaseFlow=stage.has_flow,
                    resources=[resource_id for resource_id, _ in stage.resources],
                )
                for stage in detail.stages
            ],
        )


class ProjectDetailShape(ProjectShape):
    resources: list[ResourceShape]
    pipelines: list[PipelineShape]

    @classmethod
    def of_detail(cls, detail: ProjectDetail) -> ProjectDetailShape:
        return cls(
            **ProjectShape.of(detail.project).model_dump(),
            resources=[ResourceShape.of(view) for view in detail.resources],
            pipelines=[PipelineShape.of(pipeline) for pipeline in detail.pipelines],
        )
