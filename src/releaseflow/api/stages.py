"""releaseflow's own stage routes (``/api/projects/{projectId}/pipelines/{pipelineId}/...``): release
state, timeline and delivery figures; the pin; release flow versions; restoring a backup; and, for
admins, the trigger log and the rotation of the webhook URL. Each calls one engine command or query.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from releaseflow.api.errors import ApiError
from releaseflow.api.northflank import ADMIN, APP, DEPLOYER, VIEWER
from releaseflow.application import Application
from releaseflow.domain.run_diff import document_diff
from releaseflow.engine import insights, pins, queries, release_flows
from releaseflow.engine.rollback import Rollbacks
from releaseflow.engine.tokens import Principal
from releaseflow.engine.triggers import Triggers, webhook_url
from releaseflow.wire import control
from releaseflow.wire import history as history_shapes
from releaseflow.wire.runs import run_detail
from releaseflow.wire.state import release

PIPELINE = "/api/projects/{projectId}/pipelines/{pipelineId}"
STAGE = PIPELINE + "/stages/{stage}"
SINCE = Query(None, description="from this moment (ISO 8601); default: every run")
LIMIT = Query(50, ge=1, le=500, description="at most this many entries")


class PinBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(..., min_length=1, max_length=500, description="why automatic triggers must wait")


class RestoreBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    addon: str = Field(..., min_length=1, description="the addon whose data is replaced")
    backup: str = Field(..., min_length=1, description="the backup, taken by a run of this stage")
    confirm: bool = Field(False, description="must be true: the addon's current data is replaced")


def stage_routes() -> APIRouter:
    router = APIRouter(tags=["stages"])

    def route(method: str, path: str, endpoint: Any, summary: str) -> None:
        router.add_api_route(path, endpoint, methods=[method], summary=summary)

    route(
        "GET", PIPELINE + "/state", pipeline_state, "What every stage of a pipeline runs, and since which run"
    )
    route("GET", PIPELINE + "/side-by-side", side_by_side, "The stages of a pipeline side by side")
    route("GET", STAGE + "/state", stage_state, "What a stage runs (with history: every deploy)")
    route("GET", STAGE + "/timeline", timeline, "Every change of a stage's release state, newest first")
    route("GET", STAGE + "/metrics", metrics, "A stage's delivery figures")
    route("GET", STAGE + "/pin", get_pin, "The stage's pin (null: not pinned)")
    route("PUT", STAGE + "/pin", set_pin, "Pin the stage: automatic triggers stop deploying to it")
    route("DELETE", STAGE + "/pin", clear_pin, "Clear the stage's pin")
    route("GET", STAGE + "/versions", versions, "Every version of the stage's release flow")
    route("GET", STAGE + "/versions/{version}", version, "One version of the release flow, with its template")
    route("GET", STAGE + "/versions/{version}/diff/{other}", version_diff, "A unified diff of two versions")
    route("POST", STAGE + "/versions/{version}/restore", restore_version, "Make an old version current again")
    route("POST", STAGE + "/restore-backup", restore_backup, "Restore a backup a run of this stage took")
    route("GET", STAGE + "/trigger-log", trigger_log, "What the stage's triggers did, and why")
    route("POST", STAGE + "/webhook/rotate", rotate_webhook, "Give the stage a new webhook URL")
    return router


async def _stage(app: Application, project_id: str, pipeline_id: str, stage: str) -> str:
    return await queries.resolve_stage(app.db, project_id, pipeline_id, stage)


async def pipeline_state(
    projectId: str, pipelineId: str, _: Principal = VIEWER, app: Application = APP
) -> dict[str, Any]:
    views = await queries.release_state(app.db, projectId, pipelineId, None)
    return {"data": {"releases": [release(view) for view in views]}}


async def side_by_side(
    projectId: str, pipelineId: str, _: Principal = VIEWER, app: Application = APP
) -> dict[str, Any]:
    comparison = await insights.compare_pipeline(app.db, projectId, pipelineId)
    return {"data": history_shapes.comparison(comparison)}


async def stage_state(
    projectId: str,
    pipelineId: str,
    stage: str,
    history: bool = Query(False, description="every deploy, newest first"),
    limit: int = LIMIT,
    _: Principal = VIEWER,
    app: Application = APP,
) -> dict[str, Any]:
    exact = await _stage(app, projectId, pipelineId, stage)
    views = await queries.release_state(app.db, projectId, pipelineId, exact, history=history, limit=limit)
    return {"data": {"releases": [release(view) for view in views]}}


async def timeline(
    projectId: str,
    pipelineId: str,
    stage: str,
    limit: int = LIMIT,
    _: Principal = VIEWER,
    app: Application = APP,
) -> dict[str, Any]:
    exact = await _stage(app, projectId, pipelineId, stage)
    entries = await insights.stage_timeline(app.db, projectId, pipelineId, exact, limit=limit)
    return {"data": {"timeline": history_shapes.timeline(entries)}}


async def metrics(
    projectId: str,
    pipelineId: str,
    stage: str,
    since: datetime | None = SINCE,
    _: Principal = VIEWER,
    app: Application = APP,
) -> dict[str, Any]:
    exact = await _stage(app, projectId, pipelineId, stage)
    now = app.clock.now()
    if since is not None and since.tzinfo is None:
        raise ApiError(400, f"since '{since.isoformat()}' needs a time zone (e.g. a trailing Z)")
    figures = await insights.stage_metrics(app.db, projectId, pipelineId, exact, now=now, since=since)
    return {"data": history_shapes.metrics(figures)}


async def get_pin(
    projectId: str, pipelineId: str, stage: str, _: Principal = VIEWER, app: Application = APP
) -> dict[str, Any]:
    exact = await _stage(app, projectId, pipelineId, stage)
    return {"data": {"pin": control.pin(await pins.current_pin(app.db, projectId, pipelineId, exact))}}


async def set_pin(
    projectId: str,
    pipelineId: str,
    stage: str,
    body: PinBody,
    who: Principal = DEPLOYER,
    app: Application = APP,
) -> dict[str, Any]:
    exact = await _stage(app, projectId, pipelineId, stage)
    made = await pins.pin_stage(
        app.db, app.clock, projectId, pipelineId, exact, by=f"token:{who.name}", reason=body.reason
    )
    return {"data": {"pin": control.pin(made)}}


async def clear_pin(
    projectId: str, pipelineId: str, stage: str, _: Principal = DEPLOYER, app: Application = APP
) -> dict[str, Any]:
    exact = await _stage(app, projectId, pipelineId, stage)
    cleared = await pins.unpin_stage(app.db, projectId, pipelineId, exact)
    return {"data": {"cleared": control.pin(cleared)}}


async def versions(
    projectId: str, pipelineId: str, stage: str, _: Principal = VIEWER, app: Application = APP
) -> dict[str, Any]:
    exact = await _stage(app, projectId, pipelineId, stage)
    found = await queries.flow_versions(app.db, projectId, pipelineId, exact)
    return {"data": {"versions": [control.flow_version(view) for view in found]}}


async def version(
    projectId: str,
    pipelineId: str,
    stage: str,
    version: int,
    _: Principal = VIEWER,
    app: Application = APP,
) -> dict[str, Any]:
    exact = await _stage(app, projectId, pipelineId, stage)
    found = await queries.flow_version(app.db, projectId, pipelineId, exact, _positive(version))
    return {"data": control.flow_version(found)}


async def version_diff(
    projectId: str,
    pipelineId: str,
    stage: str,
    version: int,
    other: int,
    _: Principal = VIEWER,
    app: Application = APP,
) -> dict[str, Any]:
    exact = await _stage(app, projectId, pipelineId, stage)
    first = await queries.flow_version(app.db, projectId, pipelineId, exact, _positive(version))
    second = await queries.flow_version(app.db, projectId, pipelineId, exact, _positive(other))
    lines = document_diff(first.document, second.document, f"version {version}", f"version {other}")
    return {"data": {"from": version, "to": other, "diff": lines}}


async def restore_version(
    projectId: str,
    pipelineId: str,
    stage: str,
    version: int,
    who: Principal = ADMIN,
    app: Application = APP,
) -> dict[str, Any]:
    exact = await _stage(app, projectId, pipelineId, stage)
    made = await release_flows.restore_version(
        app.db, app.clock, projectId, pipelineId, exact, _positive(version), f"token:{who.name}"
    )
    return {
        "data": control.flow_version(await queries.flow_version(app.db, projectId, pipelineId, exact, made))
    }


def _positive(version: int) -> int:
    if version < 1:
        raise ApiError(400, f"version {version} does not exist: versions count from 1")
    return version


async def restore_backup(
    projectId: str,
    pipelineId: str,
    stage: str,
    body: RestoreBody,
    who: Principal = DEPLOYER,
    app: Application = APP,
) -> dict[str, Any]:
    if not body.confirm:
        raise ApiError(
            400,
            f"restore not started: the data of addon '{body.addon}' would be replaced by backup"
            f" '{body.backup}'; confirm with \"confirm\": true",
        )
    exact = await _stage(app, projectId, pipelineId, stage)
    run = await Rollbacks(app.engine, app.drivers).restore_backup(
        projectId, pipelineId, exact, body.addon, body.backup, by=f"token:{who.name}"
    )
    return {"data": run_detail(await queries.run_detail(app.db, run.id, with_events=False))}


async def trigger_log(
    projectId: str,
    pipelineId: str,
    stage: str,
    limit: int = LIMIT,
    _: Principal = ADMIN,
    app: Application = APP,
) -> dict[str, Any]:
    exact = await _stage(app, projectId, pipelineId, stage)
    entries = await Triggers(app.engine).log(projectId, pipelineId, exact, limit)
    return {"data": {"log": control.trigger_log(entries)}}


async def rotate_webhook(
    projectId: str, pipelineId: str, stage: str, _: Principal = ADMIN, app: Application = APP
) -> dict[str, Any]:
    exact = await _stage(app, projectId, pipelineId, stage)
    token = await Triggers(app.engine).rotate_webhook(projectId, pipelineId, exact)
    return {"data": {"url": webhook_url(app.settings.base_url, token)}}
