"""Reading the history of releases: stages side by side, a stage's timeline, the difference between
two runs, delivery figures. Read-only; the pure reasoning is in ``domain.release_history``,
``domain.run_diff`` and ``domain.delivery_metrics``."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from releaseflow.domain.delivery_metrics import DeliveryMetrics, DeployFact, RunFact, delivery_metrics
from releaseflow.domain.errors import ConflictError, NotFoundError
from releaseflow.domain.release_history import (
    Deployed,
    HistoryEntry,
    StageComparison,
    StateChange,
    compare_stages,
    promotion_links,
)
from releaseflow.domain.run_diff import ValueChange, document_diff, value_changes
from releaseflow.domain.secret_values import mask_arguments
from releaseflow.engine.metrics_window import window_outlines
from releaseflow.store import catalog
from releaseflow.store import release_state as state_store
from releaseflow.store import runs as run_store
from releaseflow.store.database import Database, Row, Transaction, from_epoch
from releaseflow.store.records import FlowRecord, RunRecord, load_json

_RELEASABLE = ("service", "job")


async def compare_pipeline(db: Database, project_id: str, pipeline_id: str) -> StageComparison:
    """Every stage of a pipeline side by side: per service and job, what it runs, since when, by
    which run, and which neighbouring stages differ."""
    async with db.read() as tx:
        if await catalog.get_pipeline(tx, project_id, pipeline_id) is None:
            raise NotFoundError(f"no pipeline '{pipeline_id}' in project '{project_id}'")
        stages = await catalog.list_stages(tx, project_id, pipeline_id)
        resources: dict[str, list[str]] = {}
        kinds: dict[str, str] = {}
        documents = []
        for stage in stages:
            rows = await catalog.stage_resources(tx, project_id, pipeline_id, stage)
            resources[stage] = [row["id"] for row in rows if row["kind"] in _RELEASABLE]
            kinds.update((row["id"], row["kind"]) for row in rows)
            flow = await catalog.get_flow(tx, project_id, pipeline_id, stage)
            if flow is not None:
                version = await catalog.get_flow_version(tx, flow.id, flow.current_version)
                if version is not None:
                    documents.append(version["document"])
        state = {
            row["resource_id"]: Deployed(
                row["resource_id"], row["artifact"], row["run_id"], from_epoch(row["deployed_at"])
            )
            for row in await state_store.stage_state(tx, project_id, pipeline_id, None)
        }
    return compare_stages(stages, resources, promotion_links(documents), state, kinds)


@dataclass(frozen=True)
class TimelineEntry:
    change: StateChange
    run_name: str
    run_kind: str


async def stage_timeline(
    db: Database, project_id: str, pipeline_id: str, stage: str, *, limit: int = 50
) -> list[TimelineEntry]:
    """Every change of a stage's release state with its run, newest first (at most ``limit``)."""
    async with db.read() as tx:
        rows = await state_store.newest_changes(tx, project_id, pipeline_id, stage, max(limit, 0))
        changes = [StateChange(_history_entry(row), row["previous"]) for row in rows]
        runs = {run_id: await run_store.get_run(tx, run_id) for run_id in {c.entry.run_id for c in changes}}
    entries = []
    for change in changes:
        run = runs[change.entry.run_id]
        entries.append(
            TimelineEntry(change, run.display_name if run else change.entry.run_id, run.kind if run else "?")
        )
    return entries


def _history_entry(row: Row) -> HistoryEntry:
    return HistoryEntry(
        id=int(row["id"]),
        resource_id=row["resource_id"],
        artifact=row["artifact"],
        run_id=row["run_id"],
        node_path=row["node_path"],
        deployed_at=from_epoch(row["deployed_at"]),
    )


@dataclass(frozen=True)
class RunSide:
    """One of the two runs of a diff."""

    id: str
    display_name: str
    kind: str
    status: str
    flow_version: int
    created_at: datetime


@dataclass(frozen=True)
class RunDiff:
    first: RunSide
    second: RunSide
    stage: str
    template: list[str]  # unified diff of the two runs' release flow versions; empty when the same
    arguments: list[ValueChange]
    overrides: list[ValueChange]  # "ref" for overrides, "release:TARGET" for release node overrides
    artifacts: list[ValueChange]  # per target: what each run deployed there
    same_artifacts: list[str]  # targets both runs deployed the same artifact to


async def diff_runs(db: Database, first_id: str, second_id: str) -> RunDiff:
    """What differs between two runs of one stage."""
    async with db.read() as tx:
        first, second = await _run(tx, first_id), await _run(tx, second_id)
        if first.flow_id != second.flow_id:
            raise ConflictError(
                f"runs {first.id} and {second.id} belong to different stages; a diff compares two runs of"
                " one stage"
            )
        flow = await catalog.get_flow_by_id(tx, first.flow_id)
        assert flow is not None
        documents = [await _version_document(tx, flow, run) for run in (first, second)]
        deployed = [await _deployed_by(tx, run.id) for run in (first, second)]
    artifacts = value_changes(deployed[0], deployed[1])
    changed = {change.key for change in artifacts}
    return RunDiff(
        first=_side(first),
        second=_side(second),
        stage=flow.stage,
        template=document_diff(
            documents[0],
            documents[1],
            f"version {first.flow_version} (run {first.display_name})",
            f"version {second.flow_version} (run {second.display_name})",
        ),
        # Secret arguments are masked on both sides: a diff never shows (nor hints at) their values.
        arguments=value_changes(_shown_arguments(first), _shown_arguments(second)),
        overrides=value_changes(_all_overrides(first), _all_overrides(second)),
        artifacts=artifacts,
        same_artifacts=sorted((set(deployed[0]) & set(deployed[1])) - changed),
    )


def _shown_arguments(run: RunRecord) -> dict[str, Any]:
    return mask_arguments(run.arguments, run.secret_arguments)


async def _run(tx: Transaction, run_id: str) -> RunRecord:
    run = await run_store.get_run(tx, run_id)
    if run is None:
        raise NotFoundError(f"no run '{run_id}'")
    return run


async def _version_document(tx: Transaction, flow: FlowRecord, run: RunRecord) -> Any:
    version = await catalog.get_flow_version(tx, flow.id, run.flow_version)
    return version["document"] if version is not None else run.document


async def _deployed_by(tx: Transaction, run_id: str) -> dict[str, Any]:
    """What a run deployed, by target (the last deploy of a target wins)."""
    return {row["resource_id"]: row["artifact"] for row in await state_store.run_deploys(tx, run_id)}


def _all_overrides(run: RunRecord) -> dict[str, Any]:
    release = {f"release:{target}": spec for target, spec in run.release_node_overrides.items()}
    return {**run.overrides, **release}


def _side(run: RunRecord) -> RunSide:
    return RunSide(run.id, run.display_name, run.kind, str(run.status), run.flow_version, run.created_at)


@dataclass(frozen=True)
class StageMetrics:
    stage: str
    metrics: DeliveryMetrics
    run_names: Mapping[str, str]  # display names of the runs the figures mention


async def stage_metrics(
    db: Database,
    project_id: str,
    pipeline_id: str,
    stage: str,
    *,
    now: datetime,
    since: datetime | None = None,
) -> StageMetrics:
    """Delivery figures of one stage over [since, now]."""
    async with db.read() as tx:
        flow = await catalog.get_flow(tx, project_id, pipeline_id, stage, include_archived=True)
        if flow is None:
            raise NotFoundError(
                f"stage '{stage}' of pipeline '{project_id}/{pipeline_id}' has no release flow"
            )
        outlines = await window_outlines(tx, flow.id, since)
        history = await state_store.deploy_outlines(tx, project_id, pipeline_id, stage, since)
    # Pure work over what may be a whole history (1.3 s at 100,000 runs): in a thread, so the server's
    # event loop goes on answering other requests meanwhile.
    return await asyncio.to_thread(_figures, stage, outlines, history, now, since)


def _figures(
    stage: str, outlines: list[Row], history: list[Row], now: datetime, since: datetime | None
) -> StageMetrics:
    runs = [
        RunFact(
            id=row["id"],
            kind=row["kind"],
            status=row["status"],
            created_at=from_epoch(row["created_at"]) or now,
            concluded_at=from_epoch(row["concluded_at"]),
            rollback_of=row["rollback_of"],
        )
        for row in outlines
    ]
    deploys = [
        DeployFact(
            row["run_id"],
            row["resource_id"],
            _commit_facts(row["artifact"]),
            from_epoch(row["deployed_at"]) or now,
        )
        for row in history
    ]
    return StageMetrics(
        stage=stage,
        metrics=delivery_metrics(runs, deploys, now=now, since=since),
        run_names={row["id"]: row["name"] or row["id"] for row in outlines},
    )


def _commit_facts(artifact: str) -> Mapping[str, Any]:
    """What the figures read of an artifact: its commit and commit time. Decoding every artifact of a
    long history cost more than all the rest of the figures, and only those with a time matter."""
    if "committedAt" not in artifact:
        return {}
    decoded: Mapping[str, Any] = load_json(artifact)
    return decoded


async def pipeline_metrics(
    db: Database,
    project_id: str,
    pipeline_id: str,
    stage: str | None,
    *,
    now: datetime,
    since: datetime | None = None,
) -> list[StageMetrics]:
    """Delivery figures of one stage, or of every stage of the pipeline that has a release flow."""
    if stage is not None:
        return [await stage_metrics(db, project_id, pipeline_id, stage, now=now, since=since)]
    async with db.read() as tx:
        if await catalog.get_pipeline(tx, project_id, pipeline_id) is None:
            raise NotFoundError(f"no pipeline '{pipeline_id}' in project '{project_id}'")
        stages = [
            name
            for name in await catalog.list_stages(tx, project_id, pipeline_id)
            if await catalog.get_flow(tx, project_id, pipeline_id, name) is not None
        ]
    return [await stage_metrics(db, project_id, pipeline_id, name, now=now, since=since) for name in stages]
