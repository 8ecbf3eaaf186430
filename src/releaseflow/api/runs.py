"""releaseflow's own run routes (``/api/...``): list a stage's runs with filters, read a run, its plan
and its differences with another run, rename, abort, approve or reject, resume, roll back to it (with
its preview) and list its rollbacks. Each calls one engine command or query; JSON shapes are
``wire``'s, the same the CLI's ``--json`` prints.

A run's routes live under its project (``/api/projects/{projectId}/runs/{runId}``) so that access is
checked against the project; a run of another project is not found there.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from releaseflow.api.errors import ApiError
from releaseflow.api.northflank import APP, DEPLOYER, PAGING, VIEWER, stage_runs
from releaseflow.api.own_run_body import OWN_RUN_BODY, OwnRunBody, own_run_request
from releaseflow.api.pagination import PageRequest, paginated
from releaseflow.api.routing import router_of
from releaseflow.api.stages import STAGE, STAGE_OF_PATH, Stage
from releaseflow.application import Application
from releaseflow.domain.errors import NotFoundError
from releaseflow.domain.statuses import RunStatus
from releaseflow.engine import history, insights, plan, queries
from releaseflow.engine.queries import RunDetail
from releaseflow.engine.rollback import Rollbacks
from releaseflow.engine.tokens import Principal
from releaseflow.wire import control
from releaseflow.wire import history as history_shapes
from releaseflow.wire import runs as shapes

PROJECT = "/api/projects/{projectId}"
RUN = PROJECT + "/runs/{runId}"
# How an Approval node is decided: the last segment of its route.
Decision = Literal["approve", "reject"]
STATUSES = Query([], description="only runs with one of these statuses")


async def run_in_project(app: Application, project_id: str, run_key: str) -> RunDetail:
    """The run (its id or a unique prefix), when it belongs to the project of the path."""
    try:
        detail = await queries.run_detail(app.db, await queries.resolve_run_id(app.db, run_key))
    except NotFoundError:
        detail = None
    if detail is None or detail.run.project_id != project_id:
        raise NotFoundError(f"no run '{run_key}' in project '{project_id}'")
    return detail


async def run_of_path(projectId: str, runId: str, app: Application = APP) -> RunDetail:
    return await run_in_project(app, projectId, runId)


# Declared after the role in each route, so that a request without access is refused first.
RUN_OF_PATH = Depends(run_of_path)


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
    return router_of(
        "runs",
        [
            ("GET", STAGE + "/runs", list_runs, "List a stage's runs, newest first"),
            ("GET", RUN, get_run, "Get a run with its nodes and events"),
            ("PATCH", RUN, rename_run, "Rename a run or change its description"),
            ("POST", RUN + "/abort", abort_run, "Abort a run"),
            ("POST", RUN + "/resume", resume_run, "Resume a failed run"),
            (
                "POST",
                RUN + "/approvals/{node}/{decision}",
                decide,
                "Approve or reject a waiting Approval node",
            ),
            ("GET", RUN + "/plan", run_plan, "The plan the run was started with"),
            ("GET", RUN + "/diff/{otherRunId}", diff, "What differs between two runs"),
            ("GET", RUN + "/rollback", rollback_preview, "What a rollback to this run would do"),
            ("POST", RUN + "/rollback", rollback, "Roll back to this run"),
            ("GET", RUN + "/rollbacks", rollbacks_of, "The rollbacks to this run, with their outcomes"),
        ],
    )


async def list_runs(
    paging: PageRequest = PAGING,
    status: list[str] = STATUSES,
    kind: str | None = Query(None, description="only runs of this kind (release, rollback)"),
    origin: str | None = Query(None, description="only runs of this origin (person, token, webhook, ...)"),
    concluded: bool | None = Query(None, description="only ended (true) or unfinished (false) runs"),
    _: Principal = VIEWER,
    at: Stage = STAGE_OF_PATH,
    app: Application = APP,
) -> dict[str, Any]:
    statuses = [_status(word) for word in status]
    found = await stage_runs(
        app,
        (at.project_id, at.pipeline_id, at.name),
        paging,
        statuses=statuses,
        concluded=concluded,
        kind=kind,
        origin=origin,
    )
    return paginated("runs", found, shapes.run_summary)


async def get_run(_: Principal = VIEWER, run: RunDetail = RUN_OF_PATH) -> dict[str, Any]:
    return {"data": shapes.run_detail(run)}


async def rename_run(
    body: RenameBody, _: Principal = DEPLOYER, run: RunDetail = RUN_OF_PATH, app: Application = APP
) -> dict[str, Any]:
    if body.name is None and body.description is None:
        raise ApiError(400, "say what to change: name, description or both")
    await app.engine.rename_run(run.run.id, name=body.name, description=body.description)
    return await _shown(app, run.run.id)


async def abort_run(
    who: Principal = DEPLOYER, run: RunDetail = RUN_OF_PATH, app: Application = APP
) -> dict[str, Any]:
    await app.engine.abort_run(run.run.id, f"aborted through the API by token {who.name}")
    return await _shown(app, run.run.id)


async def resume_run(
    body: OwnRunBody | None = OWN_RUN_BODY,
    who: Principal = DEPLOYER,
    run: RunDetail = RUN_OF_PATH,
    app: Application = APP,
) -> dict[str, Any]:
    resumed = await app.engine.resume_run(run.run.id, own_run_request(body, who))
    return await _shown(app, resumed.id)


async def decide(
    node: str,
    decision: Decision,
    body: DecisionBody | None = None,
    who: Principal = DEPLOYER,
    run: RunDetail = RUN_OF_PATH,
    app: Application = APP,
) -> dict[str, Any]:
    comment = body.comment if body is not None else ""
    recorded = app.engine.approve if decision == "approve" else app.engine.reject
    await recorded(run.run.id, node, who.actor, comment)
    return await _shown(app, run.run.id)


async def run_plan(
    _: Principal = VIEWER, run: RunDetail = RUN_OF_PATH, app: Application = APP
) -> dict[str, Any]:
    stored = await plan.stored_plan(app.db, run.run.id)
    if stored is None:
        raise NotFoundError(f"run '{run.run.id}' was made before plans were kept: it has none")
    return {"data": stored}


async def diff(
    projectId: str,
    otherRunId: str,
    _: Principal = VIEWER,
    run: RunDetail = RUN_OF_PATH,
    app: Application = APP,
) -> dict[str, Any]:
    other = await run_in_project(app, projectId, otherRunId)
    return {"data": history_shapes.diff(await insights.diff_runs(app.db, run.run.id, other.run.id))}


async def rollback_preview(
    _: Principal = VIEWER, run: RunDetail = RUN_OF_PATH, app: Application = APP
) -> dict[str, Any]:
    preview = await Rollbacks(app.engine, app.drivers).preview(run.run.id)
    return {"data": control.rollback_preview(preview)}


async def rollback(
    body: RollbackBody | None = None,
    who: Principal = DEPLOYER,
    run: RunDetail = RUN_OF_PATH,
    app: Application = APP,
) -> dict[str, Any]:
    body = body or RollbackBody.model_validate({})
    started = await Rollbacks(app.engine, app.drivers).start(
        run.run.id, by=who.actor, restore_config=body.restoreConfig, name=body.name
    )
    shown = await _shown(app, started.run.id)
    shown["data"]["restoredVersion"] = started.restored_version
    return shown


async def rollbacks_of(
    _: Principal = VIEWER, run: RunDetail = RUN_OF_PATH, app: Application = APP
) -> dict[str, Any]:
    found = []
    for rollback_run in await history.rollbacks_of(app.db, run.run.id):
        summary = (await queries.run_detail(app.db, rollback_run.id, with_events=False)).run
        outcome = await history.rollback_outcome(app.db, rollback_run.id)
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
