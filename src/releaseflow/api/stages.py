"""releaseflow's own stage routes (``/api/projects/{projectId}/pipelines/{pipelineId}/...``): release
state, side by side, timeline and delivery figures; the pin; release flow versions (read, diff,
restore); restoring a backup; and, for admins, the trigger log and the rotation of the webhook URL.
Each calls one engine command or query.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from releaseflow.api.errors import ApiError
from releaseflow.api.limits import LARGEST_INTEGER
from releaseflow.api.northflank import ADMIN, APP, DEPLOYER, VIEWER
from releaseflow.api.routing import router_of
from releaseflow.application import Application
from releaseflow.domain.run_diff import document_diff
from releaseflow.engine import insights, pins, queries, release_flows
from releaseflow.engine.history import pipeline_status
from releaseflow.engine.history import pipelines as pipeline_overviews
from releaseflow.engine.rollback import Rollbacks
from releaseflow.engine.tokens import Principal
from releaseflow.engine.triggers import Triggers, webhook_url
from releaseflow.wire import control
from releaseflow.wire import history as history_shapes
from releaseflow.wire.runs import run_detail
from releaseflow.wire.state import release

PROJECT = "/api/projects/{projectId}"
PIPELINE = PROJECT + "/pipelines/{pipelineId}"
STAGE = PIPELINE + "/stages/{stage}"
SINCE = Query(None, description="from this moment (ISO 8601 with a zone); default: every run")
LIMIT = Query(50, ge=1, le=500, description="at most this many entries")
VERSION = Path(ge=1, le=LARGEST_INTEGER, description="a version of the release flow, from 1")
# Its own object: a parameter object serves one parameter (FastAPI would read ``version`` for both).
OTHER_VERSION = Path(ge=1, le=LARGEST_INTEGER, description="the version to compare with")


@dataclass(frozen=True)
class Stage:
    """The stage of the path, its name as stored (the path may write it in any case)."""

    project_id: str
    pipeline_id: str
    name: str


async def stage_of_path(projectId: str, pipelineId: str, stage: str, app: Application = APP) -> Stage:
    return Stage(projectId, pipelineId, await queries.resolve_stage(app.db, projectId, pipelineId, stage))


# Declared after the role in each route, so that a request without access is refused before the
# stage is looked up.
STAGE_OF_PATH = Depends(stage_of_path)


class PinBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(..., min_length=1, max_length=500, description="why automatic triggers must wait")


class RestoreBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    addon: str = Field(..., min_length=1, description="the addon whose data is replaced")
    backup: str = Field(..., min_length=1, description="the backup, taken by a run of this stage")
    confirm: bool = Field(False, description="must be true: the addon's current data is replaced")


def stage_routes() -> APIRouter:
    return router_of(
        "stages",
        [
            (
                "GET",
                PROJECT + "/pipelines",
                pipelines,
                "The project's pipelines, each stage with its latest run",
            ),
            (
                "GET",
                PIPELINE,
                pipeline,
                "A pipeline: each stage's resources, latest run, pin and skipped triggers",
            ),
            ("GET", PIPELINE + "/state", pipeline_state, "What every stage of a pipeline runs"),
            ("GET", PIPELINE + "/side-by-side", side_by_side, "The stages of a pipeline side by side"),
            ("GET", STAGE + "/state", stage_state, "What a stage runs (with history: every deploy)"),
            ("GET", STAGE + "/timeline", timeline, "Every change of a stage's release state, newest first"),
            ("GET", STAGE + "/metrics", metrics, "A stage's delivery figures"),
            ("GET", STAGE + "/pin", get_pin, "The stage's pin (null: not pinned)"),
            ("PUT", STAGE + "/pin", set_pin, "Pin the stage: automatic triggers stop deploying to it"),
            ("DELETE", STAGE + "/pin", clear_pin, "Clear the stage's pin"),
            ("GET", STAGE + "/versions", versions, "Every version of the stage's release flow"),
            (
                "GET",
                STAGE + "/versions/{version}",
                version,
                "One version of the release flow, with its template",
            ),
            (
                "GET",
                STAGE + "/versions/{version}/diff/{other}",
                version_diff,
                "A unified diff of two versions",
            ),
            (
                "POST",
                STAGE + "/versions/{version}/restore",
                restore_version,
                "Make an old version current again",
            ),
            ("POST", STAGE + "/restore-backup", restore_backup, "Restore a backup a run of this stage took"),
            (
                "GET",
                STAGE + "/trigger-log",
                trigger_log,
                "What the stage's triggers did, and its webhook URL",
            ),
            ("POST", STAGE + "/webhook/rotate", rotate_webhook, "Give the stage a new webhook URL"),
        ],
    )


async def pipelines(projectId: str, _: Principal = VIEWER, app: Application = APP) -> dict[str, Any]:
    found = await pipeline_overviews(app.db, projectId)
    return {"data": {"pipelines": [control.pipeline_overview(overview) for overview in found]}}


async def pipeline(
    projectId: str, pipelineId: str, _: Principal = VIEWER, app: Application = APP
) -> dict[str, Any]:
    overview = await pipeline_status(app.db, projectId, pipelineId)
    contents = await release_flows.pipeline(app.db, projectId, pipelineId)
    return {"data": control.pipeline_overview(overview, contents)}


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
    history: bool = Query(False, description="every deploy, newest first"),
    limit: int = LIMIT,
    _: Principal = VIEWER,
    at: Stage = STAGE_OF_PATH,
    app: Application = APP,
) -> dict[str, Any]:
    views = await queries.release_state(
        app.db, at.project_id, at.pipeline_id, at.name, history=history, limit=limit
    )
    return {"data": {"releases": [release(view) for view in views]}}


async def timeline(
    limit: int = LIMIT, _: Principal = VIEWER, at: Stage = STAGE_OF_PATH, app: Application = APP
) -> dict[str, Any]:
    entries = await insights.stage_timeline(app.db, at.project_id, at.pipeline_id, at.name, limit=limit)
    return {"data": {"timeline": history_shapes.timeline(entries)}}


async def metrics(
    since: datetime | None = SINCE, _: Principal = VIEWER, at: Stage = STAGE_OF_PATH, app: Application = APP
) -> dict[str, Any]:
    if since is not None and since.tzinfo is None:
        raise ApiError(400, f"since '{since.isoformat()}' needs a time zone (e.g. a trailing Z)")
    figures = await insights.stage_metrics(
        app.db, at.project_id, at.pipeline_id, at.name, now=app.clock.now(), since=since
    )
    return {"data": history_shapes.metrics(figures)}


async def get_pin(_: Principal = VIEWER, at: Stage = STAGE_OF_PATH, app: Application = APP) -> dict[str, Any]:
    found = await pins.current_pin(app.db, at.project_id, at.pipeline_id, at.name)
    return {"data": {"pin": control.pin(found)}}


async def set_pin(
    body: PinBody, who: Principal = DEPLOYER, at: Stage = STAGE_OF_PATH, app: Application = APP
) -> dict[str, Any]:
    made = await pins.pin_stage(
        app.db, app.clock, at.project_id, at.pipeline_id, at.name, by=who.actor, reason=body.reason
    )
    return {"data": {"pin": control.pin(made)}}


async def clear_pin(
    _: Principal = DEPLOYER, at: Stage = STAGE_OF_PATH, app: Application = APP
) -> dict[str, Any]:
    cleared = await pins.unpin_stage(app.db, at.project_id, at.pipeline_id, at.name)
    return {"data": {"cleared": control.pin(cleared)}}


async def versions(
    _: Principal = VIEWER, at: Stage = STAGE_OF_PATH, app: Application = APP
) -> dict[str, Any]:
    found = await queries.flow_versions(app.db, at.project_id, at.pipeline_id, at.name)
    return {"data": {"versions": [control.flow_version(view) for view in found]}}


async def version(
    version: int = VERSION, _: Principal = VIEWER, at: Stage = STAGE_OF_PATH, app: Application = APP
) -> dict[str, Any]:
    return {"data": control.flow_version(await _version(app, at, version))}


async def version_diff(
    version: int = VERSION,
    other: int = OTHER_VERSION,
    _: Principal = VIEWER,
    at: Stage = STAGE_OF_PATH,
    app: Application = APP,
) -> dict[str, Any]:
    first, second = await _version(app, at, version), await _version(app, at, other)
    lines = document_diff(first.document, second.document, f"version {version}", f"version {other}")
    return {"data": {"from": version, "to": other, "diff": lines}}


async def restore_version(
    version: int = VERSION, who: Principal = ADMIN, at: Stage = STAGE_OF_PATH, app: Application = APP
) -> dict[str, Any]:
    made = await release_flows.restore_version(
        app.db, app.clock, at.project_id, at.pipeline_id, at.name, version, who.actor
    )
    return {"data": control.flow_version(await _version(app, at, made))}


async def _version(app: Application, at: Stage, number: int) -> queries.FlowVersionView:
    return await queries.flow_version(app.db, at.project_id, at.pipeline_id, at.name, number)


async def restore_backup(
    body: RestoreBody, who: Principal = DEPLOYER, at: Stage = STAGE_OF_PATH, app: Application = APP
) -> dict[str, Any]:
    if not body.confirm:
        raise ApiError(
            400,
            f"restore not started: the data of addon '{body.addon}' would be replaced by backup"
            f" '{body.backup}'; confirm with \"confirm\": true",
        )
    run = await Rollbacks(app.engine, app.drivers).restore_backup(
        at.project_id, at.pipeline_id, at.name, body.addon, body.backup, by=who.actor
    )
    return {"data": run_detail(await queries.run_detail(app.db, run.id, with_events=False))}


async def trigger_log(
    limit: int = LIMIT, _: Principal = ADMIN, at: Stage = STAGE_OF_PATH, app: Application = APP
) -> dict[str, Any]:
    triggers = Triggers(app.engine)
    entries = await triggers.log(at.project_id, at.pipeline_id, at.name, limit)
    token = await triggers.webhook_token(at.project_id, at.pipeline_id, at.name)
    url = None if token is None else webhook_url(app.settings.base_url, token)
    return {"data": {"log": control.trigger_log(entries), "webhookUrl": url}}


async def rotate_webhook(
    _: Principal = ADMIN, at: Stage = STAGE_OF_PATH, app: Application = APP
) -> dict[str, Any]:
    token = await Triggers(app.engine).rotate_webhook(at.project_id, at.pipeline_id, at.name)
    return {"data": {"url": webhook_url(app.settings.base_url, token)}}
