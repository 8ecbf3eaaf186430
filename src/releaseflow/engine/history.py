"""The read model of release history: the runs list of a stage (filtered, paged by cursor), and per
stage a release header (the current or most recent run, the pin, what to do next)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from releaseflow.domain.errors import ConflictError, Issue, NotFoundError, ValidationError
from releaseflow.domain.rollback import TargetChange, TargetOutcome
from releaseflow.domain.rollback import rollback_outcome as outcome_of
from releaseflow.domain.run_origin import OriginKind
from releaseflow.domain.statuses import ACTIVE_RUN_STATUSES, TERMINAL_RUN_STATUSES, RunStatus
from releaseflow.engine.pins import Pin, read_pin
from releaseflow.engine.queries import RunSummary, summary_of
from releaseflow.store import catalog, history
from releaseflow.store import release_state as state_store
from releaseflow.store import runs as run_store
from releaseflow.store.database import Database, Transaction
from releaseflow.store.records import FlowRecord, RunRecord

PAGE_LIMIT = 500


@dataclass(frozen=True)
class RunsPage:
    runs: list[RunSummary]
    # Pass it as ``cursor`` for the next (older) page; None when this page is the last.
    next_cursor: int | None


async def runs_page(
    db: Database,
    project_id: str,
    pipeline_id: str,
    stage: str,
    *,
    statuses: Sequence[str] = (),
    kind: str | None = None,
    origin: str | None = None,
    concluded: bool | None = None,
    cursor: int | None = None,
    limit: int = 20,
) -> RunsPage:
    """Runs of a stage, newest first; ``concluded`` keeps only ended (True) or unfinished (False) runs."""
    if not 1 <= limit <= PAGE_LIMIT:
        raise ValidationError([Issue("limit", f"must be between 1 and {PAGE_LIMIT}")], subject="runs list")
    if origin is not None and origin not in set(OriginKind):
        known = ", ".join(OriginKind)
        raise ValidationError(
            [Issue("origin", f"unknown origin '{origin}' (known: {known})")], subject="runs list"
        )
    wanted = [str(status) for status in statuses] or [str(status) for status in RunStatus]
    if concluded is not None:
        ended = {str(status) for status in TERMINAL_RUN_STATUSES}
        wanted = [status for status in wanted if (status in ended) == concluded]
    filtered = bool(statuses) or concluded is not None
    async with db.read() as tx:
        flow = await _flow(tx, project_id, pipeline_id, stage)
        if filtered and not wanted:
            return RunsPage([], None)
        records = await history.runs_page(
            tx,
            flow.id,
            statuses=wanted if filtered else (),
            kind=kind,
            origin_kind=origin,
            before_seq=cursor,
            limit=limit + 1,
        )
    more = len(records) > limit
    records = records[:limit]
    runs = [summary_of(record, project_id, pipeline_id, flow.stage) for record in records]
    return RunsPage(runs, records[-1].seq if more else None)


@dataclass(frozen=True)
class SkippedTrigger:
    origin_kind: str
    origin_by: str
    reason: str
    at: datetime | None


@dataclass(frozen=True)
class StageHeader:
    """The release header of one stage."""

    stage: str
    has_flow: bool
    run: RunSummary | None  # the active run, else the most recent one
    active: bool
    pin: Pin | None
    skipped: tuple[SkippedTrigger, ...]
    next_step: str


@dataclass(frozen=True)
class PipelineOverview:
    project_id: str
    pipeline_id: str
    name: str
    stages: tuple[StageHeader, ...]


async def pipelines(db: Database, project_id: str) -> list[PipelineOverview]:
    """Every pipeline of a project with the release header of each of its stages."""
    async with db.read() as tx:
        rows = await catalog.list_pipelines(tx, project_id)
        return [await _overview(tx, project_id, row["id"], row["name"]) for row in rows]


async def pipeline_status(db: Database, project_id: str, pipeline_id: str) -> PipelineOverview:
    async with db.read() as tx:
        row = await catalog.get_pipeline(tx, project_id, pipeline_id)
        if row is None:
            raise NotFoundError(f"no pipeline '{pipeline_id}' in project '{project_id}'")
        return await _overview(tx, project_id, pipeline_id, row["name"])


async def _overview(tx: Transaction, project_id: str, pipeline_id: str, name: str) -> PipelineOverview:
    headers = []
    for stage in await catalog.list_stages(tx, project_id, pipeline_id):
        headers.append(await _header(tx, project_id, pipeline_id, stage))
    return PipelineOverview(project_id, pipeline_id, name, tuple(headers))


async def _header(tx: Transaction, project_id: str, pipeline_id: str, stage: str) -> StageHeader:
    flow = await catalog.get_flow(tx, project_id, pipeline_id, stage)
    if flow is None:
        hint = "declare a release flow for it in the configuration file, then releaseflow apply"
        return StageHeader(stage, False, None, False, None, (), hint)
    active = await history.runs_page(tx, flow.id, statuses=[str(s) for s in ACTIVE_RUN_STATUSES], limit=1)
    latest = active[0] if active else await history.latest_run(tx, flow.id)
    run = summary_of(latest, project_id, pipeline_id, stage) if latest else None
    pin = await read_pin(tx, flow.id)
    skipped = tuple(
        SkippedTrigger(row["origin_kind"], row["origin_by"], row["reason"], row["at"])
        for row in await history.skipped_triggers(tx, flow.id, limit=3)
        if pin is not None and row["at"] is not None and row["at"] >= pin.at
    )
    return StageHeader(stage, True, run, bool(active), pin, skipped, _next_step(pipeline_id, stage, run, pin))


def _next_step(pipeline_id: str, stage: str, run: RunSummary | None, pin: Pin | None) -> str:
    where = f"{pipeline_id} {stage}"
    if run is None:
        return f"start the first run: releaseflow run {where}"
    short = run.id[:8]
    if run.status is RunStatus.QUEUED:
        return f"it waits: {run.queued_reason or 'behind another run'}"
    if run.status in ACTIVE_RUN_STATUSES:
        return f"follow it: releaseflow show {short}"
    if pin is not None:
        return f"pinned: deploy by hand (releaseflow run {where}) or releaseflow unpin {where}"
    if run.status is RunStatus.FAILED:
        return f"see why: releaseflow show {short}; roll back: releaseflow rollback RUN"
    return f"release again: releaseflow run {where}"


async def _flow(tx: Transaction, project_id: str, pipeline_id: str, stage: str) -> FlowRecord:
    flow = await catalog.get_flow(tx, project_id, pipeline_id, stage, include_archived=True)
    if flow is None:
        raise NotFoundError(f"stage '{stage}' of pipeline '{project_id}/{pipeline_id}' has no release flow")
    return flow


async def rollback_outcome(db: Database, run_id: str) -> list[TargetOutcome]:
    """Where each target of rollback run ``run_id`` stands: rolled back, or still on its old artifact
    (read from the state kept when the run ended, or from the live state while it runs)."""
    async with db.read() as tx:
        run = await run_store.get_run(tx, run_id)
        if run is None or run.kind != "rollback":
            raise ConflictError(f"run '{run_id}' is not a rollback")
        targets = await history.rollback_targets(tx, run_id)
        if run.status in TERMINAL_RUN_STATUSES:
            state = {key: row["artifact"] for key, row in (await history.state_after_run(tx, run_id)).items()}
        else:
            flow = await catalog.get_flow_by_id(tx, run.flow_id)
            assert flow is not None
            rows = await state_store.stage_state(tx, flow.project_id, flow.pipeline_id, flow.stage)
            state = {row["resource_id"]: row["artifact"] for row in rows}
    changes = [
        TargetChange(row["resource_id"], row["kind"], row["from_artifact"], row["to_artifact"])
        for row in targets
    ]
    return outcome_of(changes, state)


async def rollbacks_of(db: Database, run_id: str) -> list[RunRecord]:
    """The rollbacks that targeted run ``run_id``, newest first."""
    async with db.read() as tx:
        return await history.rollbacks_of(tx, run_id)
