"""``apply``: reconcile the store with a configuration file, all in one transaction.

The file is validated whole first (nothing is written when any part is wrong); the plan is computed
against what the store holds; every change is applied in the same transaction, so a failure leaves
everything as it was.
"""

from __future__ import annotations

from pathlib import Path

from releaseflow.domain.config import (
    Configuration,
    FlowFileRefused,
    PipelineConfig,
    ProjectConfig,
    ResourceConfig,
    StageConfig,
    parse_configuration,
)
from releaseflow.domain.config_plan import Change, Plan, canonical_json, plan_changes
from releaseflow.domain.documents import load_document, read_document_bytes
from releaseflow.domain.errors import ConflictError, ReleaseflowError
from releaseflow.domain.spec_schema import SpecSchemas
from releaseflow.domain.statuses import TERMINAL_RUN_STATUSES
from releaseflow.engine.clock import Clock
from releaseflow.platform.available import spec_schemas
from releaseflow.store import catalog
from releaseflow.store.database import Database, Transaction


def load_configuration_file(path: str | Path) -> Configuration:
    """Read and validate a configuration file; release flow files are read relative to its folder."""
    path = Path(path)
    try:
        text = read_document_bytes(path)
    except OSError as error:
        raise ReleaseflowError(f"cannot read configuration file {path}: {error.strerror}") from error
    folder = path.resolve().parent

    def read_file(relative: str) -> str:
        return read_flow_file(folder, relative)

    document = load_document(text, source=str(path))
    return parse_configuration(document, read_file=read_file, source=str(path), spec_schemas=spec_schemas())


def parse_configuration_document(document: object, source: str) -> Configuration:
    """Validate a configuration document that came without a folder (over HTTP): its release flows
    must be inline (``releaseFlow``), since there is no folder to read a ``releaseFlowFile`` from."""

    def read_file(relative: str) -> str:
        raise FlowFileRefused(
            f"refused: releaseFlowFile '{relative}' cannot be read from {source};"
            " inline the flow as releaseFlow"
        )

    return parse_configuration(document, read_file=read_file, source=source, spec_schemas=spec_schemas())


def read_flow_file(folder: Path, relative: str) -> str:
    """A ``releaseFlowFile``: a plain file inside ``folder``, reached without symbolic links.

    The name is already normalised and relative; a link (the file, or a folder on the way) could
    still lead anywhere on the host, so it is refused rather than followed.
    """
    current = folder
    for part in Path(relative).parts:
        current = current / part
        if current.is_symlink():
            raise FlowFileRefused(
                f"refused: {current.relative_to(folder)} is a symbolic link; release flow files must be "
                "plain files inside the configuration file's folder"
            )
    if not current.resolve().is_relative_to(folder):
        raise FlowFileRefused("refused: the path leads out of the configuration file's folder")
    return read_document_bytes(current).decode("utf-8")


def resource_schemas() -> SpecSchemas:
    """The spec schemas of every known driver, by driver then resource kind (``releaseflow schema``)."""
    return spec_schemas()


async def apply_configuration(
    db: Database, desired: Configuration, clock: Clock, *, prune: bool = False, dry_run: bool = False
) -> Plan:
    """Make the store match ``desired``; returns the plan (applied unless ``dry_run``)."""
    async with db.transaction() as tx:
        plan = plan_changes(desired, await current_configuration(tx), prune=prune)
        if not dry_run:
            applier = _Applier(tx, clock, desired)
            for change in plan.changes:
                if change.action != "unchanged":
                    await applier.apply(change)
    return plan


async def current_configuration(tx: Transaction) -> Configuration:
    """What the store holds, archived things included and marked, with what planning must know
    about their history (runs of a flow, deployments to a resource)."""
    projects = []
    for project in await catalog.list_projects(tx):
        resources = []
        for row in await catalog.list_resources(tx, project["id"], include_archived=True):
            history = await catalog.resource_has_history(tx, project["id"], row["id"])
            archived = row["archived_at"] is not None
            resources.append(
                ResourceConfig(row["id"], row["kind"], row["driver"], row["spec"], archived, history)
            )
        pipelines = []
        for pipeline in await catalog.list_pipelines(tx, project["id"], include_archived=True):
            archived_stages = set(await catalog.archived_stages(tx, project["id"], pipeline["id"]))
            stages = []
            for stage in await catalog.list_stages(tx, project["id"], pipeline["id"], include_archived=True):
                stages.append(
                    await _current_stage(tx, project["id"], pipeline["id"], stage, stage in archived_stages)
                )
            pipelines.append(
                PipelineConfig(
                    pipeline["id"],
                    pipeline["name"],
                    pipeline["description"],
                    tuple(stages),
                    archived=pipeline["archived_at"] is not None,
                )
            )
        projects.append(
            ProjectConfig(
                project["id"], project["name"], project["description"], tuple(resources), tuple(pipelines)
            )
        )
    return Configuration(tuple(projects))


async def _current_stage(
    tx: Transaction, project_id: str, pipeline_id: str, stage: str, archived: bool
) -> StageConfig:
    held = await catalog.stage_resources(tx, project_id, pipeline_id, stage)
    flow = await catalog.get_flow(tx, project_id, pipeline_id, stage, include_archived=True)
    if flow is None:
        return StageConfig(stage, tuple(sorted(row["id"] for row in held)), archived=archived)
    version = await catalog.get_flow_version(tx, flow.id, flow.current_version)
    return StageConfig(
        stage,
        tuple(sorted(row["id"] for row in held)),
        version["document"] if version else None,
        archived=archived,
        flow_archived=await catalog.flow_archived(tx, flow.id),
        has_runs=await catalog.flow_has_runs(tx, flow.id),
        unfinished_runs=await catalog.flow_unfinished_runs(
            tx, flow.id, tuple(str(status) for status in TERMINAL_RUN_STATUSES)
        ),
    )


class _Applier:
    def __init__(self, tx: Transaction, clock: Clock, desired: Configuration) -> None:
        self.tx = tx
        self.now = clock.now()
        self.desired = desired

    async def apply(self, change: Change) -> None:
        handler = getattr(self, f"_{change.action}_{change.subject_kind}")
        await handler(change)

    async def _create_project(self, change: Change) -> None:
        project = change.desired
        assert isinstance(project, ProjectConfig)
        await catalog.save_project(self.tx, project.id, project.name, project.description, self.now)

    _update_project = _create_project

    async def _create_resource(self, change: Change) -> None:
        resource = change.desired
        assert isinstance(resource, ResourceConfig)
        await catalog.save_resource(
            self.tx, change.key[0], resource.id, resource.kind, resource.driver, dict(resource.spec), self.now
        )

    _update_resource = _create_resource

    _restore_resource = _create_resource

    async def _delete_resource(self, change: Change) -> None:
        await catalog.delete_resource(self.tx, change.key[0], change.key[1])

    async def _archive_resource(self, change: Change) -> None:
        await catalog.archive_resource(self.tx, change.key[0], change.key[1], self.now)

    async def _create_pipeline(self, change: Change) -> None:
        pipeline = change.desired
        assert isinstance(pipeline, PipelineConfig)
        project_id = change.key[0]
        await catalog.save_pipeline(
            self.tx, project_id, pipeline.id, pipeline.name, pipeline.description, self.now
        )
        for position, stage in enumerate(pipeline.stages):
            await catalog.save_stage(self.tx, project_id, pipeline.id, stage.name, position)

    _update_pipeline = _create_pipeline
    _restore_pipeline = _create_pipeline

    async def _delete_pipeline(self, change: Change) -> None:
        project_id, pipeline_id = change.key
        for stage in await catalog.list_stages(self.tx, project_id, pipeline_id, include_archived=True):
            await self._remove_stage(project_id, pipeline_id, stage)
        await catalog.delete_pipeline(self.tx, project_id, pipeline_id)

    async def _archive_pipeline(self, change: Change) -> None:
        project_id, pipeline_id = change.key
        await catalog.archive_pipeline(self.tx, project_id, pipeline_id, self.now)

    async def _create_stage(self, change: Change) -> None:
        stage = change.desired
        assert isinstance(stage, StageConfig)
        project_id, pipeline_id, _ = change.key
        await catalog.save_stage(self.tx, project_id, pipeline_id, stage.name, self._position(change.key))
        await catalog.set_stage_resources(self.tx, project_id, pipeline_id, stage.name, list(stage.resources))

    _update_stage = _create_stage
    _restore_stage = _create_stage

    async def _delete_stage(self, change: Change) -> None:
        await self._remove_stage(*change.key)

    async def _archive_stage(self, change: Change) -> None:
        project_id, pipeline_id, stage = change.key
        await catalog.archive_stage(self.tx, project_id, pipeline_id, stage, self.now)

    async def _create_release_flow(self, change: Change) -> None:
        project_id, pipeline_id, stage = change.key
        await catalog.add_flow_version(
            self.tx, project_id, pipeline_id, stage, change.desired, "apply", self.now
        )

    _update_release_flow = _create_release_flow

    async def _restore_release_flow(self, change: Change) -> None:
        project_id, pipeline_id, stage = change.key
        flow = await catalog.get_flow(self.tx, project_id, pipeline_id, stage, include_archived=True)
        assert flow is not None, "the plan restores only a flow the store holds"
        held = await catalog.get_flow_version(self.tx, flow.id, flow.current_version)
        if held is not None and canonical_json(held["document"]) == canonical_json(change.desired):
            await catalog.restore_flow(self.tx, flow.id, self.now)
        else:
            await catalog.add_flow_version(
                self.tx, project_id, pipeline_id, stage, change.desired, "apply", self.now
            )

    async def _delete_release_flow(self, change: Change) -> None:
        await self._remove_flow(*change.key)

    async def _archive_release_flow(self, change: Change) -> None:
        flow = await catalog.get_flow(self.tx, *change.key)
        if flow is not None:
            await catalog.archive_flow(self.tx, flow.id, self.now)

    async def _remove_stage(self, project_id: str, pipeline_id: str, stage: str) -> None:
        await self._remove_flow(project_id, pipeline_id, stage)
        await catalog.set_stage_resources(self.tx, project_id, pipeline_id, stage, [])
        await catalog.delete_stage(self.tx, project_id, pipeline_id, stage)

    async def _remove_flow(self, project_id: str, pipeline_id: str, stage: str) -> None:
        flow = await catalog.get_flow(self.tx, project_id, pipeline_id, stage, include_archived=True)
        if flow is None:
            return
        if await catalog.flow_has_runs(self.tx, flow.id):
            # The plan archives a flow with runs; it got its first run while this apply was planning.
            raise ConflictError(
                f"release flow {project_id}/{pipeline_id}/{stage} got a run while the plan was made;"
                " apply again (it will be archived, keeping its history)"
            )
        await catalog.delete_flow(self.tx, flow.id)

    def _position(self, key: tuple[str, ...]) -> int:
        project_id, pipeline_id, stage = key
        for project in self.desired.projects:
            for pipeline in project.pipelines:
                if project.id == project_id and pipeline.id == pipeline_id:
                    names = [each.name for each in pipeline.stages]
                    return names.index(stage) if stage in names else len(names)
        return 0
