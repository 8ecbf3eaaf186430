"""releaseflow's own run routes (``/api/...``): list a stage's runs with filters, read a run, its plan
and its differences with another run, rename, abort, approve or reject, resume, roll back to it (with
its preview) and list its rollbacks. Each calls one engine command or query; JSON shapes are
``wire``'s, the same the CLI's ``--json`` prints.

A run's routes live under its project (``/api/projects/{projectId}/runs/{runId}``) so that access is
checked against the project; a run of another project is not found there.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, ConfigDict, Field

from releaseflow.api.errors import ApiError
from releaseflow.api.northflank import APP, DEPLOYER, PAGING, VIEWER, RunBody, run_cursor
from releaseflow.api.pagination import Page, PageRequest, fetch_page, paginated
from releaseflow.application import Application
from releaseflow.domain.errors import NotFoundError
from releaseflow.domain.run_origin import OriginKind, RunOrigin
from releaseflow.domain.statuses import RunStatus
from releaseflow.engine import history, insights, plan, queries
from releaseflow.engine.commands import RunRequest
from releaseflow.engine.queries import RunDetail, RunSummary
from releaseflow.engine.rollback import Rollbacks
from releaseflow.engine.tokens import Principal
from releaseflow.wire import control
from releaseflow.wire import history as history_shapes
from releaseflow.wire import runs as shapes

PROJECT = "/api/projects/{projectId}"
STAGE = PROJECT + "/pipelines/{pipelineId}/stages/{stage}"
RUN = PROJECT + "/runs/{runId}"
STATUSES = Query([], description="only runs with one of these statuses")


class RenameBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(None, description="the new display name (empty: none)")
    description: str | None = Field(None, description="the new description")


class DecisionBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    comment: str = Field("", max_length=1000, description="why (a rejection's reason)")


class RollbackBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    restoreConfig: bool = Field(False, description="also restore the release flow version the run used")
    name: str | None = Field(None, description="the rollback run's name")


def run_routes() -> APIRouter:
    router = APIRouter(tags=["runs"])
    router.add_api_route(
        STAGE + "/runs", list_runs, methods=["GET"], summary="List a stage's runs, newest first"
    )
    router.add_api_route(RUN, get_run, methods=["GET"], summary="Get a run with its nodes and events")
    router.add_api_route(RUN, rename_run, methods=["PATCH"], summary="Rename a run or change its description")
    router.add_api_route(RUN + "/abort", abort_run, methods=["POST"], summary="Abort a run")
    router.add_api_route(RUN + "/resume", resume_run, methods=["POST"], summary="Resume a failed run")
    router.add_api_route(
        RUN + "/approvals/{node}/approve",
        approve,
        methods=["POST"],
        summary="Approve a waiting Approval node",
    )
    router.add_api_route(
        RUN + "/approvals/{node}/reject", reject, methods=["POST"], summary="Reject a waiting Approval node"
    )
    router.add_api_route(
        RUN + "/plan", run_plan, methods=["GET"], summary="The plan the run was started with"
    )
    router.add_api_route(
        RUN + "/diff/{otherRunId}", diff, methods=["GET"], summary="What differs between two runs"
    )
    router.add_api_route(
        RUN + "/rollback", rollback_preview, methods=["GET"], summary="What a rollback to this run would do"
    )
    router.add_api_route(RUN + "/rollback", rollback, methods=["POST"], summary="Roll back to this run")
    router.add_api_route(
        RUN + "/rollbacks", rollbacks_of, methods=["GET"], summary="The rollbacks to this run, with outcomes"
    )
    return router


async def run_in_project(app: Application, project_id: str, run_key: str) -> RunDetail:
    """The run (its id or a unique prefix), when it belongs to the project of the path."""
    try:
        detail = await queries.run_detail(app.db, await queries.resolve_run_id(app.db, run_key))
    except NotFoundError:
        detail = None
    if detail is None or detail.run.project_id != project_id:
        raise NotFoundError(f"no run '{run_key}' in project '{project_id}'")
    return detail


async def list_runs(
    projectId: str,
    pipelineId: str,
    stage: str,
    paging: PageRequest = PAGING,
    status: list[str] = STATUSES,
    kind: str | None = Query(None, description="only runs of this kind (release, rollback)"),
    origin: str | None = Query(
        None, description="only runs of this origin kind (person, token, webhook, ...)"
    ),
    concluded: bool | None = Query(None, description="only ended (true) or unfinished (false) runs"),
    _: Principal = VIEWER,
    app: Application = APP,
) -> dict[str, Any]:
    exact = await queries.resolve_stage(app.db, projectId, pipelineId, stage)
    statuses = [_status(word) for word in status]

    async def fetch(cursor: str | None, limit: int) -> Page[RunSummary]:
        found = await history.runs_page(
            app.db,
            projectId,
            pipelineId,
            exact,
            statuses=statuses,
            kind=kind,
            origin=origin,
            concluded=concluded,
            cursor=run_cursor(cursor),
            limit=limit,
        )
        return Page(found.runs, None if found.next_cursor is None else str(found.next_cursor))

    return paginated("runs", await fetch_page(paging, fetch), shapes.run_summary)


async def get_run(
    projectId: str, runId: str, _: Principal = VIEWER, app: Application = APP
) -> dict[str, Any]:
    return {"data": shapes.run_detail(await run_in_project(app, projectId, runId))}


async def rename_run(
    projectId: str, runId: str, body: RenameBody, _: Principal = DEPLOYER, app: Application = APP
) -> dict[str, Any]:
    detail = await run_in_project(app, projectId, runId)
    if body.name is None and body.description is None:
        raise ApiError(400, "say what to change: name, description or both")
    await app.engine.rename_run(detail.run.id, name=body.name, description=body.description)
    return await _shown(app, detail.run.id)


async def abort_run(
    projectId: str, runId: str, who: Principal = DEPLOYER, app: Application = APP
) -> dict[str, Any]:
    detail = await run_in_project(app, projectId, runId)
    await app.engine.abort_run(detail.run.id, f"aborted through the API by token {who.name}")
    return await _shown(app, detail.run.id)


async def resume_run(
    projectId: str, runId: str, body: RunBody | None = None, who: Principal = DEPLOYER, app: Application = APP
) -> dict[str, Any]:
    detail = await run_in_project(app, projectId, runId)
    body = body or RunBody.model_validate({})
    edits = RunRequest(
        name=body.name,
        description=body.description or "",
        arguments=body.arguments or {},
        overrides=body.overrides or {},
        release_node_overrides=body.releaseNodeOverrides or {},
        origin=RunOrigin(OriginKind.TOKEN, who.name),
    )
    run = await app.engine.resume_run(detail.run.id, edits)
    return await _shown(app, run.id)


async def approve(
    projectId: str,
    runId: str,
    node: str,
    body: DecisionBody | None = None,
    who: Principal = DEPLOYER,
    app: Application = APP,
) -> dict[str, Any]:
    detail = await run_in_project(app, projectId, runId)
    await app.engine.approve(
        detail.run.id, node, f"token:{who.name}", (body or DecisionBody.model_validate({})).comment
    )
    return await _shown(app, detail.run.id)


async def reject(
    projectId: str,
    runId: str,
    node: str,
    body: DecisionBody | None = None,
    who: Principal = DEPLOYER,
    app: Application = APP,
) -> dict[str, Any]:
    detail = await run_in_project(app, projectId, runId)
    await app.engine.reject(
        detail.run.id, node, f"token:{who.name}", (body or DecisionBody.model_validate({})).comment
    )
    return await _shown(app, detail.run.id)


async def run_plan(
    projectId: str, runId: str, _: Principal = VIEWER, app: Application = APP
) -> dict[str, Any]:
    detail = await run_in_project(app, projectId, runId)
    stored = await plan.stored_plan(app.db, detail.run.id)
    if stored is None:
        raise NotFoundError(f"run '{runId}' was made before plans were kept: it has none")
    return {"data": stored}


async def diff(
    projectId: str, runId: str, otherRunId: str, _: Principal = VIEWER, app: Application = APP
) -> dict[str, Any]:
    first = await run_in_project(app, projectId, runId)
    second = await run_in_project(app, projectId, otherRunId)
    return {"data": history_shapes.diff(await insights.diff_runs(app.db, first.run.id, second.run.id))}


async def rollback_preview(
    projectId: str, runId: str, _: Principal = VIEWER, app: Application = APP
) -> dict[str, Any]:
    detail = await run_in_project(app, projectId, runId)
    preview = await Rollbacks(app.engine, app.drivers).preview(detail.run.id)
    return {"data": control.rollback_preview(preview)}


async def rollback(
    projectId: str,
    runId: str,
    body: RollbackBody | None = None,
    who: Principal = DEPLOYER,
    app: Application = APP,
) -> dict[str, Any]:
    detail = await run_in_project(app, projectId, runId)
    body = body or RollbackBody.model_validate({})
    started = await Rollbacks(app.engine, app.drivers).start(
        detail.run.id, by=f"token:{who.name}", restore_config=body.restoreConfig, name=body.name
    )
    shown = await _shown(app, started.run.id)
    shown["data"]["restoredVersion"] = started.restored_version
    return shown


async def rollbacks_of(
    projectId: str, runId: str, _: Principal = VIEWER, app: Application = APP
) -> dict[str, Any]:
    detail = await run_in_project(app, projectId, runId)
    found = []
    for run in await history.rollbacks_of(app.db, detail.run.id):
        summary = (await queries.run_detail(app.db, run.id, with_events=False)).run
        outcome = await history.rollback_outcome(app.db, run.id)
        found.append({**shapes.run_summary(summary), "outcome": control.rollback_outcome(outcome)})
    return {"data": {"rollbacks": found}}


async def _shown(app: Application, run_id: str) -> dict[str, Any]:
    return {"data": shapes.run_detail(await queries.run_detail(app.db, run_id, with_events=False))}


def _status(word: str) -> str:
    try:
        return str(RunStatus(word.strip().lower()))
    except ValueError:
        known = ", ".join(str(status) for status in RunStatus)
        raise ApiError(400, f"status '{word}' is not a run status (known: {known})") from None
