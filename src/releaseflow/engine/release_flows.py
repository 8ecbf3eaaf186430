"""Pipelines and release flows as the API reads them, and the one command that changes a flow over
the API: storing a new version of its template (checked against its stage like ``apply`` does)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from releaseflow.domain.errors import ConflictError, NotFoundError, ValidationError
from releaseflow.domain.statuses import RunStatus
from releaseflow.domain.template import Template
from releaseflow.domain.template_parser import parse_template
from releaseflow.domain.template_rules import check_refs, check_template
from releaseflow.engine.clock import Clock
from releaseflow.engine.scope import stage_scope
from releaseflow.store import catalog, history
from releaseflow.store.database import Database, Transaction, from_epoch
from releaseflow.store.records import FlowRecord


@dataclass(frozen=True)
class CatalogEntry:
    """A project or a pipeline as lists show it."""

    id: str
    name: str
    description: str
    created_at: datetime | None
    updated_at: datetime | None


# A pipeline's entry, by the name the pipeline reads use.
PipelineSummary = CatalogEntry


@dataclass(frozen=True)
class StageContents:
    name: str
    resources: tuple[tuple[str, str], ...]  # (id, kind) of each service, job and addon
    has_flow: bool


@dataclass(frozen=True)
class PipelineDetail:
    summary: PipelineSummary
    stages: tuple[StageContents, ...]


@dataclass(frozen=True)
class FlowView:
    stage: str
    version: int
    template: Template
    created_at: datetime
    updated_at: datetime
    latest_status: RunStatus | None


async def list_pipelines(db: Database, project_id: str) -> list[PipelineSummary]:
    async with db.read() as tx:
        await _project(tx, project_id)
        return [catalog_entry(row) for row in await catalog.list_pipelines(tx, project_id)]


async def pipeline(db: Database, project_id: str, pipeline_id: str) -> PipelineDetail:
    async with db.read() as tx:
        row = await _pipeline(tx, project_id, pipeline_id)
        stages = []
        for stage in await catalog.list_stages(tx, project_id, pipeline_id):
            resources = await catalog.stage_resources(tx, project_id, pipeline_id, stage)
            flow = await catalog.get_flow(tx, project_id, pipeline_id, stage)
            stages.append(
                StageContents(
                    stage, tuple((item["id"], item["kind"]) for item in resources), flow is not None
                )
            )
    return PipelineDetail(catalog_entry(row), tuple(stages))


async def release_flow(db: Database, project_id: str, pipeline_id: str, stage: str) -> FlowView:
    """The current template of a stage's flow; ``stage`` in any case."""
    async with db.read() as tx:
        flow = await _flow(tx, project_id, pipeline_id, stage)
        version = await catalog.get_flow_version(tx, flow.id, flow.current_version)
        assert version is not None
        latest = await history.latest_run(tx, flow.id)
    return FlowView(
        stage=flow.stage,
        version=flow.current_version,
        template=parse_template(version["document"]),
        created_at=flow.created_at,
        updated_at=flow.updated_at,
        latest_status=latest.status if latest else None,
    )


async def update_release_flow(
    db: Database,
    clock: Clock,
    project_id: str,
    pipeline_id: str,
    stage: str,
    document: Any,
    origin: str,
    *,
    based_on: int | None = None,
) -> int:
    """Store ``document`` as the new current version of the stage's flow; the version number.

    The stage must exist (a flow is created on its first version). The template is checked against
    what the stage holds, like ``apply`` checks it; every problem is named in a ``ValidationError``.
    ``based_on``: the version the document was edited from; a ``ConflictError`` when another version
    was stored since (an editor must not silently undo someone else's change).
    """
    template = parse_template(document)
    async with db.transaction() as tx:
        exact = await _checked_stage(tx, project_id, pipeline_id, stage, template)
        if based_on is not None:
            await _unchanged_since(tx, project_id, pipeline_id, exact, based_on)
        return await catalog.add_flow_version(
            tx, project_id, pipeline_id, exact, dict(template.document), origin, clock.now()
        )


async def check_release_flow(
    db: Database, project_id: str, pipeline_id: str, stage: str, document: Any
) -> Template:
    """``document`` checked exactly as ``update_release_flow`` checks it, and nothing stored: the one
    validator behind an editor's inline errors. A ``ValidationError`` names every problem."""
    template = parse_template(document)
    async with db.read() as tx:
        await _checked_stage(tx, project_id, pipeline_id, stage, template)
    return template


async def _checked_stage(
    tx: Transaction, project_id: str, pipeline_id: str, stage: str, template: Template
) -> str:
    """The stage's exact name, once ``template`` fits what the stage holds."""
    await _pipeline(tx, project_id, pipeline_id)
    exact = await _stage_name(tx, project_id, pipeline_id, stage)
    scope = await stage_scope(tx, project_id, pipeline_id, exact)
    issues = check_template(template, scope) + check_refs(template)
    if issues:
        raise ValidationError(issues, subject=f"release flow {pipeline_id}/{exact}")
    return exact


async def _unchanged_since(
    tx: Transaction, project_id: str, pipeline_id: str, stage: str, version: int
) -> None:
    flow = await catalog.get_flow(tx, project_id, pipeline_id, stage, include_archived=True)
    if flow is not None:
        # Read the current version again under the row's lock: a concurrent save waits here.
        await tx.lock_row("release_flows", "id", flow.id)
        flow = await catalog.get_flow(tx, project_id, pipeline_id, stage, include_archived=True)
    current = flow.current_version if flow is not None else 0
    if current != version:
        raise ConflictError(
            f"release flow {pipeline_id}/{stage} is at version {current} now, not at version {version}"
            " that was edited: reload to edit the current version"
        )


async def restore_version(
    db: Database, clock: Clock, project_id: str, pipeline_id: str, stage: str, version: int, by: str
) -> int:
    """Store an old version's template as the new current version (versions are never rewritten); the
    new version's number. Checked like any new version: the stage may have changed since."""
    async with db.read() as tx:
        flow = await _flow(tx, project_id, pipeline_id, stage)
        row = await catalog.get_flow_version(tx, flow.id, version)
    if row is None:
        raise NotFoundError(
            f"release flow {pipeline_id}/{flow.stage} has no version {version} (1..{flow.current_version})"
        )
    origin = f"{by}: restored version {version}"
    return await update_release_flow(db, clock, project_id, pipeline_id, flow.stage, row["document"], origin)


def catalog_entry(row: Mapping[str, Any]) -> CatalogEntry:
    return CatalogEntry(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        created_at=from_epoch(row["created_at"]),
        updated_at=from_epoch(row["updated_at"]),
    )


async def _project(tx: Transaction, project_id: str) -> None:
    projects = [row["id"] for row in await catalog.list_projects(tx)]
    if project_id not in projects:
        raise NotFoundError(f"no project '{project_id}'")


async def _pipeline(tx: Transaction, project_id: str, pipeline_id: str) -> Mapping[str, Any]:
    row = await catalog.get_pipeline(tx, project_id, pipeline_id)
    if row is None or row.get("archived_at") is not None:
        await _project(tx, project_id)
        raise NotFoundError(f"no pipeline '{pipeline_id}' in project '{project_id}'")
    return row


async def _stage_name(tx: Transaction, project_id: str, pipeline_id: str, stage: str) -> str:
    stages = await catalog.list_stages(tx, project_id, pipeline_id)
    for name in stages:
        if name.lower() == stage.lower():
            return name
    raise NotFoundError(
        f"no stage '{stage}' in pipeline '{project_id}/{pipeline_id}' (stages: {', '.join(stages)})"
    )


async def _flow(tx: Transaction, project_id: str, pipeline_id: str, stage: str) -> FlowRecord:
    await _pipeline(tx, project_id, pipeline_id)
    exact = await _stage_name(tx, project_id, pipeline_id, stage)
    flow = await catalog.get_flow(tx, project_id, pipeline_id, exact)
    if flow is None:
        raise NotFoundError(f"stage '{exact}' of pipeline '{project_id}/{pipeline_id}' has no release flow")
    return flow
