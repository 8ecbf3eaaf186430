"""The read model: runs as the command line, the API and the UI show them. Read-only.

A run detail is the run's template tree with each workflow and node's execution state. A workflow
still in progress shows the roll-up of its children (the most severe status among them, so a
failure or a wait inside is visible at every level), not merely "running".

These views hold plain values (``datetime`` for moments); how they look on the wire (JSON, ISO 8601,
Northflank's ``response`` object) is ``releaseflow.wire``'s business, shared by every interface.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from releaseflow.domain.errors import ConflictError, NotFoundError
from releaseflow.domain.progress import roll_up
from releaseflow.domain.secret_values import mask, mask_arguments
from releaseflow.domain.statuses import TERMINAL_NODE_STATUSES, TERMINAL_RUN_STATUSES, NodeStatus, RunStatus
from releaseflow.domain.template import Node
from releaseflow.engine.templates import TemplateCache, node_code
from releaseflow.store import catalog, history
from releaseflow.store import release_state as state_store
from releaseflow.store import runs as run_store
from releaseflow.store.database import Database, Row, Transaction, from_epoch, to_epoch
from releaseflow.store.records import EventRecord, FlowRecord, NodeRecord, RunRecord

# A workflow whose roll-up says one of these while it is running still shows "running".
_QUIET_STATUSES = frozenset({NodeStatus.PENDING, NodeStatus.SUCCESS, NodeStatus.SKIPPED})

_templates = TemplateCache()


@dataclass(frozen=True)
class RunSummary:
    """One line of a runs list."""

    id: str
    display_name: str
    name: str | None
    description: str
    kind: str
    status: RunStatus
    triggered_by: str
    created_at: datetime
    started_at: datetime | None
    concluded_at: datetime | None
    queued_reason: str | None
    error: str | None
    project_id: str
    pipeline_id: str
    stage: str
    flow_version: int
    seq: int
    origin_kind: str = "person"
    origin_by: str = ""
    rollback_of: str | None = None
    resumed_from: str | None = None  # the failed run this one resumes

    @property
    def concluded(self) -> bool:
        return self.status in TERMINAL_RUN_STATUSES


@dataclass(frozen=True)
class NodeView:
    """A workflow or node of a run, with its children in template order."""

    path: str
    ref: str | None
    kind: str
    workflow_type: str | None
    status: NodeStatus
    attempts: int
    max_attempts: int
    next_attempt: datetime | None
    started_at: datetime | None
    ended_at: datetime | None
    error: Mapping[str, Any] | None
    data: Any
    code: Any
    code_resolved: bool
    cause: str | None
    attempt_log: tuple[Mapping[str, Any], ...]
    children: tuple[NodeView, ...] = ()
    carried_from: str | None = None  # a resume kept this node's response from that run

    @property
    def is_workflow(self) -> bool:
        return self.kind == "Workflow"

    @property
    def label(self) -> str:
        return self.ref or self.path

    def walk(self) -> list[NodeView]:
        found = [self]
        for child in self.children:
            found.extend(child.walk())
        return found


@dataclass(frozen=True)
class Progress:
    """Actions (nodes that are not workflows) that ended, of all actions in the run."""

    done: int
    total: int


@dataclass(frozen=True)
class EventView:
    id: int
    at: datetime
    node_path: str | None
    ref: str | None
    from_status: str | None
    to_status: str
    cause: str


@dataclass(frozen=True)
class RunDetail:
    run: RunSummary
    arguments: Mapping[str, Any]
    root: NodeView | None  # None when the run never got nodes (its dry run failed)
    progress: Progress
    events: tuple[EventView, ...]
    # What ${refs.<trigger>.*} read in this run, by trigger ref.
    trigger_refs: Mapping[str, Any] = field(default_factory=dict)
    # The template the run executes (its overrides applied): the API shows it with each node's state.
    document: Mapping[str, Any] = field(default_factory=dict)

    def node(self, key: str) -> NodeView | None:
        """The node with this ref or path."""
        for node in self.root.walk() if self.root else []:
            if key in (node.ref, node.path):
                return node
        return None


# ---------------------------------------------------------------------------------------------------
# Lookups


async def ping(db: Database) -> None:
    """Raise if the database cannot answer a trivial query."""
    async with db.read() as tx:
        await tx.fetchvalue("SELECT 1")


async def project_ids(db: Database) -> list[str]:
    async with db.read() as tx:
        return [str(row["id"]) for row in await catalog.list_projects(tx)]


async def resolve_project(db: Database, project_id: str | None) -> str:
    """``project_id`` if it exists; without one, the only project there is."""
    projects = await project_ids(db)
    if project_id is not None:
        if project_id not in projects:
            raise NotFoundError(f"no project '{project_id}'" + _choices(projects))
        return project_id
    if len(projects) == 1:
        return str(projects[0])
    if not projects:
        raise NotFoundError(
            "there are no projects yet: apply a configuration first (releaseflow apply -f FILE)"
        )
    raise NotFoundError(f"there are several projects; name one with --project ({', '.join(projects)})")


async def resolve_stage(db: Database, project_id: str, pipeline_id: str, stage: str) -> str:
    """The stage's exact name; stage names are unique ignoring case, so any case finds it."""
    async with db.read() as tx:
        await _require_pipeline(tx, project_id, pipeline_id)
        # Archived stages too: their runs and flow versions stay readable by name.
        stages = await catalog.list_stages(tx, project_id, pipeline_id, include_archived=True)
        live = await catalog.list_stages(tx, project_id, pipeline_id)
    for name in stages:
        if name.lower() == stage.lower():
            return name
    # The choices are a list: archived stages are not offered.
    raise NotFoundError(f"no stage '{stage}' in pipeline '{project_id}/{pipeline_id}'" + _choices(live))


async def _require_pipeline(tx: Transaction, project_id: str, pipeline_id: str) -> Row:
    """The pipeline (archived ones too: they are read by name); offers the live ones when it is unknown."""
    pipeline = await catalog.get_pipeline(tx, project_id, pipeline_id)
    if pipeline is None:
        names = [row["id"] for row in await catalog.list_pipelines(tx, project_id)]
        raise NotFoundError(f"no pipeline '{pipeline_id}' in project '{project_id}'" + _choices(names))
    return pipeline


async def resolve_run_id(db: Database, key: str) -> str:
    """The full id of the run ``key`` names: its full UUID or a unique prefix of it."""
    key = key.strip().lower()
    if not key:
        raise NotFoundError("no run id given")
    async with db.read() as tx:
        if await run_store.get_run(tx, key) is not None:
            return key
        matches = await run_store.find_runs_by_prefix(tx, key)
    if not matches:
        raise NotFoundError(f"no run whose id starts with '{key}'")
    if len(matches) > 1:
        raise ConflictError(
            f"'{key}' is the start of several run ids ({', '.join(matches)}); give more of it"
        )
    return matches[0]


@dataclass(frozen=True)
class WorkerView:
    id: str
    hostname: str
    pid: int
    heartbeat_at: datetime


async def workers_seen_since(db: Database, since: datetime) -> list[WorkerView]:
    """Workers that sent a heartbeat at or after ``since``."""
    async with db.read() as tx:
        rows = await tx.fetchall(
            "SELECT id, hostname, pid, heartbeat_at FROM workers WHERE heartbeat_at >= ? ORDER BY id",
            (to_epoch(since),),
        )
    return [
        WorkerView(row["id"], row["hostname"], int(row["pid"]), from_epoch(row["heartbeat_at"]) or since)
        for row in rows
    ]


# ---------------------------------------------------------------------------------------------------
# Runs


async def list_runs(
    db: Database,
    project_id: str,
    pipeline_id: str,
    stage: str,
    *,
    statuses: Sequence[str] = (),
    kind: str | None = None,
    limit: int = 50,
) -> list[RunSummary]:
    """Runs of a stage's release flow, newest first."""
    async with db.read() as tx:
        flow = await _stage_flow(tx, project_id, pipeline_id, stage)
        records = await history.runs_page(tx, flow.id, statuses=statuses, kind=kind, limit=limit)
    return [summary_of(record, project_id, pipeline_id, stage) for record in records]


async def run_detail(db: Database, run_id: str, *, with_events: bool = True) -> RunDetail:
    async with db.read() as tx:
        summary = await _load_summary(tx, run_id)
        record = await run_store.get_run(tx, run_id)
        assert record is not None
        nodes = {node.path: node for node in await run_store.load_nodes(tx, run_id)}
        events = await run_store.list_events(tx, run_id) if with_events else []
    root = None
    if nodes:
        template = _templates.get(run_id, record.document)
        root = _view(template.root, nodes)
    actions = [node for node in nodes.values() if node.kind != "Workflow"]
    progress = Progress(
        done=sum(1 for node in actions if node.status in TERMINAL_NODE_STATUSES), total=len(actions)
    )
    refs = {node.path: node.ref for node in nodes.values()}
    return RunDetail(
        run=summary,
        arguments=mask_arguments(record.arguments, record.secret_arguments),
        root=root,
        progress=progress,
        events=tuple(_event(event, refs) for event in events),
        trigger_refs=record.trigger_refs,
        document=record.document,
    )


async def _load_summary(tx: Transaction, run_id: str) -> RunSummary:
    record = await run_store.get_run(tx, run_id)
    if record is None:
        raise NotFoundError(f"no run '{run_id}'")
    flow = await catalog.get_flow_by_id(tx, record.flow_id)
    assert flow is not None, record.flow_id
    return summary_of(record, flow.project_id, flow.pipeline_id, flow.stage)


def summary_of(record: RunRecord, project_id: str, pipeline_id: str, stage: str) -> RunSummary:
    return RunSummary(
        id=record.id,
        display_name=record.display_name,
        name=record.name,
        description=record.description,
        kind=record.kind,
        status=record.status,
        triggered_by=record.triggered_by,
        created_at=record.created_at,
        started_at=record.started_at,
        concluded_at=record.concluded_at,
        queued_reason=record.waiting_reason,
        error=record.error,
        project_id=project_id,
        pipeline_id=pipeline_id,
        stage=stage,
        flow_version=record.flow_version,
        seq=record.seq,
        origin_kind=record.origin_kind,
        origin_by=record.origin_by,
        rollback_of=record.rollback_of,
        resumed_from=record.resumed_from,
    )


def _view(node: Node, records: Mapping[str, NodeRecord]) -> NodeView:
    record = records[node.path]
    children = tuple(_view(child, records) for child in node.children)
    status = record.status
    if node.is_workflow and status is NodeStatus.RUNNING and children:
        rolled = roll_up([child.status for child in children])
        status = NodeStatus.RUNNING if rolled in _QUIET_STATUSES else rolled
    resolved = record.code is not None
    return NodeView(
        path=node.path,
        ref=node.ref,
        kind=node.kind,
        workflow_type=str(node.workflow_type) if node.workflow_type else None,
        status=status,
        attempts=record.attempt,
        max_attempts=record.max_attempts,
        next_attempt=record.next_attempt_at,
        started_at=record.started_at,
        ended_at=record.ended_at,
        # Resolved code keeps secret values as markers: shown masked, here, for every reader.
        error=mask(record.error),
        data=mask(record.data),
        code=mask(record.code) if resolved else node_code(node),
        code_resolved=resolved,
        cause=record.cause,
        attempt_log=tuple(record.attempts),
        children=children,
        carried_from=record.carried_from,
    )


def _event(event: EventRecord, refs: Mapping[str, str | None]) -> EventView:
    return EventView(
        id=event.id,
        at=event.at,
        node_path=event.node_path,
        ref=refs.get(event.node_path) if event.node_path else None,
        from_status=event.from_status,
        to_status=event.to_status,
        cause=mask(event.cause),
    )


def _choices(names: Sequence[str]) -> str:
    return f" (there are: {', '.join(names)})" if names else ""


@dataclass(frozen=True)
class FlowVersionView:
    version: int
    origin: str
    created_at: datetime | None
    current: bool
    document: Any = None


async def flow_versions(db: Database, project_id: str, pipeline_id: str, stage: str) -> list[FlowVersionView]:
    """Every version of a stage's release flow, oldest first (versions are never rewritten)."""
    async with db.read() as tx:
        flow = await _stage_flow(tx, project_id, pipeline_id, stage)
        rows = await catalog.list_flow_versions(tx, flow.id)
    return [
        FlowVersionView(
            version=int(row["version"]),
            origin=row["origin"],
            created_at=from_epoch(row["created_at"]),
            current=int(row["version"]) == flow.current_version,
        )
        for row in rows
    ]


async def flow_version(
    db: Database, project_id: str, pipeline_id: str, stage: str, version: int | None = None
) -> FlowVersionView:
    """One version of a stage's release flow with its template; the current one by default."""
    async with db.read() as tx:
        flow = await _stage_flow(tx, project_id, pipeline_id, stage)
        wanted = version or flow.current_version
        row = await catalog.get_flow_version(tx, flow.id, wanted)
    if row is None:
        raise NotFoundError(
            f"release flow {pipeline_id}/{stage} has no version {wanted} (1..{flow.current_version})"
        )
    return FlowVersionView(
        version=wanted,
        origin=row["origin"],
        created_at=from_epoch(row["created_at"]),
        current=wanted == flow.current_version,
        document=row["document"],
    )


async def _stage_flow(tx: Transaction, project_id: str, pipeline_id: str, stage: str) -> FlowRecord:
    flow = await catalog.get_flow(tx, project_id, pipeline_id, stage, include_archived=True)
    if flow is None:
        raise NotFoundError(f"stage '{stage}' of pipeline '{project_id}/{pipeline_id}' has no release flow")
    return flow


@dataclass(frozen=True)
class ReleaseView:
    """What one service or job of a stage runs, and which run put it there."""

    stage: str
    resource_id: str
    artifact: Mapping[str, Any]
    run_id: str
    node_path: str
    deployed_at: datetime | None


async def release_state(
    db: Database,
    project_id: str,
    pipeline_id: str,
    stage: str | None,
    *,
    history: bool = False,
    limit: int = 50,
) -> list[ReleaseView]:
    """The release state of a pipeline (or one stage); with ``history``, every deploy, newest first.

    The state is a list: archived stages and resources are not in it, unless the archived stage or
    pipeline is the one asked for by name (what it ran stays readable). ``history`` keeps everything.
    """
    async with db.read() as tx:
        pipeline = await _require_pipeline(tx, project_id, pipeline_id)
        if history:
            rows = await state_store.history(tx, project_id, pipeline_id, stage, limit)
        else:
            rows = await state_store.stage_state(tx, project_id, pipeline_id, stage)
            archived_stages = set(await catalog.archived_stages(tx, project_id, pipeline_id))
            if pipeline["archived_at"] is None and stage not in archived_stages:
                archived_resources = await catalog.archived_resources(tx, project_id)
                rows = [
                    row
                    for row in rows
                    if row["stage"] not in archived_stages and row["resource_id"] not in archived_resources
                ]
            # Stages in pipeline order (Development before Production), not by name.
            stages = await catalog.list_stages(tx, project_id, pipeline_id, include_archived=True)
            order = {name: index for index, name in enumerate(stages)}
            rows = sorted(rows, key=lambda row: order.get(row["stage"], len(order)))
    return [
        ReleaseView(
            stage=row["stage"],
            resource_id=row["resource_id"],
            artifact=row["artifact"],
            run_id=row["run_id"],
            node_path=row["node_path"],
            deployed_at=from_epoch(row["deployed_at"]),
        )
        for row in rows
    ]
