"""The Northflank-compatible ``/v1`` surface: pipelines, release flows and their runs (reference §6).

Every route exists twice, project-scoped (``/v1/projects/{projectId}/...``) and team-scoped
(``/v1/teams/{teamId}/projects/{projectId}/...``); releaseflow has no teams, so ``teamId`` is accepted
and ignored. Every success is HTTP 200 with ``{"data": ...}`` (Northflank's JS client and CLI treat
any other status as an error); refusals use the error envelope of ``api.errors``. The stage in a path
may be written in any case (``development`` finds ``Development``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Body, Depends, Path, Query
from pydantic import BaseModel, ConfigDict, Field

from releaseflow.api.auth import application, requires
from releaseflow.api.errors import ApiError
from releaseflow.api.pagination import Page, PageRequest, fetch_page, list_page, page_request, paginated
from releaseflow.application import Application
from releaseflow.domain.access import Role
from releaseflow.domain.errors import NotFoundError
from releaseflow.domain.run_origin import OriginKind, RunOrigin
from releaseflow.engine import history, queries, release_flows
from releaseflow.engine.commands import RunRequest
from releaseflow.engine.queries import RunDetail, RunSummary
from releaseflow.engine.tokens import Principal
from releaseflow.wire import northflank as shapes

TEAM_PREFIX = "/v1/teams/{teamId}"
PREFIXES = ("/v1", TEAM_PREFIX)
PIPELINES = "/projects/{projectId}/pipelines"
FLOW = PIPELINES + "/{pipelineId}/release-flows/{stage}"
RUN = FLOW + "/runs/{runId}"
# Fields a GET of a release flow adds to its template: a client that posts back what it read
# must not be refused for them.
_READ_ONLY_FLOW_FIELDS = (
    "concurrencyPolicy",
    "stage",
    "status",
    "paused",
    "version",
    "createdAt",
    "updatedAt",
)

_CURSOR_DIGITS = 18
VIEWER = Depends(requires(Role.VIEWER))
DEPLOYER = Depends(requires(Role.DEPLOYER))
ADMIN = Depends(requires(Role.ADMIN))
APP = Depends(application)
PAGING = Depends(page_request)
TEMPLATE_BODY = Body(..., description="the release flow template (apiVersion, spec, ...)")
RUN_BODY = Body(None, description="name, description, arguments, overrides, releaseNodeOverrides")


class RunBody(BaseModel):
    """What a run may be started with (Northflank's ``RunReleaseFlowRequest``)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(None, description="display name, 3-39 characters")
    description: str | None = Field(None, description="at most 200 characters")
    arguments: dict[str, Any] | None = Field(None, description="values for ${args.KEY}")
    overrides: dict[str, dict[str, Any]] | None = Field(None, description="per node ref: fields of its spec")
    releaseNodeOverrides: dict[str, dict[str, Any]] | None = Field(
        None, description="per target service or job id: a replacement Release spec"
    )


def run_request(body: RunBody | None, principal: Principal) -> RunRequest:
    """What a run (or a resume) is started with, by this token."""
    body = body or RunBody.model_validate({})
    return RunRequest(
        name=body.name,
        description=body.description or "",
        arguments=body.arguments or {},
        overrides=body.overrides or {},
        release_node_overrides=body.releaseNodeOverrides or {},
        origin=RunOrigin(OriginKind.TOKEN, principal.name),
    )


def any_team(teamId: str = Path(description="any value: releaseflow has no teams")) -> None:
    """The team of a team-scoped path, accepted and ignored; declared so that the OpenAPI document
    names every parameter of the path."""


ANY_TEAM = Depends(any_team)


def northflank_routes() -> APIRouter:
    router = APIRouter(tags=["northflank"])

    def route(method: str, path: str, endpoint: Callable[..., Any], summary: str) -> None:
        for prefix in PREFIXES:
            team = [ANY_TEAM] if prefix == TEAM_PREFIX else []
            router.add_api_route(
                prefix + path, endpoint, methods=[method], summary=summary, dependencies=team
            )

    route("GET", "/login", login, "Who the token is (Northflank's CLI checks a new context with it)")
    route("GET", PIPELINES, list_pipelines, "List the pipelines of a project")
    route("GET", PIPELINES + "/{pipelineId}", get_pipeline, "Get a pipeline with its stages and resources")
    route("GET", FLOW, get_release_flow, "Get the release flow of a stage")
    route("POST", FLOW, update_release_flow, "Store a new version of the release flow of a stage")
    route("POST", FLOW + "/runs", start_run, "Start a run of the release flow")
    route("GET", FLOW + "/runs", list_runs, "List the runs of the release flow, newest first")
    route("GET", RUN, get_run, "Get a run with every node's response")
    route("POST", RUN + "/abort", abort_run, "Abort a run (no body)")
    return router


async def login(principal: Principal = VIEWER) -> dict[str, Any]:
    (grant,) = principal.grants  # the API authenticates tokens, and a token holds one grant
    return {
        "data": {
            "token": {
                "id": principal.id,
                "name": principal.name,
                "project": grant.project_id,
                "role": str(grant.role),
            }
        }
    }


async def list_pipelines(
    projectId: str,
    paging: PageRequest = PAGING,
    _: Principal = VIEWER,
    app: Application = APP,
) -> dict[str, Any]:
    everything = await release_flows.list_pipelines(app.db, projectId)

    async def fetch(cursor: str | None, limit: int) -> Page[Any]:
        return list_page(everything, cursor, limit)

    return paginated("pipelines", await fetch_page(paging, fetch), shapes.pipeline_item)


async def get_pipeline(
    projectId: str, pipelineId: str, _: Principal = VIEWER, app: Application = APP
) -> dict[str, Any]:
    return {"data": shapes.pipeline_detail(await release_flows.pipeline(app.db, projectId, pipelineId))}


async def get_release_flow(
    projectId: str,
    pipelineId: str,
    stage: str,
    _: Principal = VIEWER,
    app: Application = APP,
) -> dict[str, Any]:
    view = await release_flows.release_flow(app.db, projectId, pipelineId, stage)
    return {"data": shapes.release_flow(view)}


async def update_release_flow(
    projectId: str,
    pipelineId: str,
    stage: str,
    template: dict[str, Any] = TEMPLATE_BODY,
    principal: Principal = ADMIN,
    app: Application = APP,
) -> dict[str, Any]:
    document = {key: value for key, value in template.items() if key not in _READ_ONLY_FLOW_FIELDS}
    # Northflank's update schema has a ``project`` field of undocumented purpose; it is not stored.
    document.pop("project", None)
    await release_flows.update_release_flow(
        app.db, app.clock, projectId, pipelineId, stage, document, f"API token {principal.name}"
    )
    view = await release_flows.release_flow(app.db, projectId, pipelineId, stage)
    return {"data": shapes.release_flow(view)}


async def start_run(
    projectId: str,
    pipelineId: str,
    stage: str,
    body: RunBody | None = RUN_BODY,
    principal: Principal = DEPLOYER,
    app: Application = APP,
) -> dict[str, Any]:
    exact = await queries.resolve_stage(app.db, projectId, pipelineId, stage)
    run = await app.engine.start_run(projectId, pipelineId, exact, run_request(body, principal))
    return {"data": shapes.run_detail(await queries.run_detail(app.db, run.id, with_events=False))}


async def list_runs(
    projectId: str,
    pipelineId: str,
    stage: str,
    paging: PageRequest = PAGING,
    status: str | None = Query(None, description="only runs with this status (e.g. success, failure)"),
    concluded: bool | None = Query(None, description="only ended (true) or unfinished (false) runs"),
    _: Principal = VIEWER,
    app: Application = APP,
) -> dict[str, Any]:
    exact = await queries.resolve_stage(app.db, projectId, pipelineId, stage)
    statuses = [] if status is None else [_run_status(status)]
    found = await stage_runs(
        app, (projectId, pipelineId, exact), paging, statuses=statuses, concluded=concluded
    )
    return paginated("runs", found, shapes.run_item)


async def stage_runs(
    app: Application,
    stage: tuple[str, str, str],
    paging: PageRequest,
    *,
    statuses: list[str],
    concluded: bool | None,
    kind: str | None = None,
    origin: str | None = None,
) -> Page[RunSummary]:
    """The page asked for of the runs of a stage (project, pipeline, exact stage name), newest first."""

    async def fetch(cursor: str | None, limit: int) -> Page[RunSummary]:
        found = await history.runs_page(
            app.db,
            *stage,
            statuses=statuses,
            kind=kind,
            origin=origin,
            concluded=concluded,
            cursor=run_cursor(cursor),
            limit=limit,
        )
        return Page(found.runs, None if found.next_cursor is None else str(found.next_cursor))

    return await fetch_page(paging, fetch)


async def get_run(
    projectId: str,
    pipelineId: str,
    stage: str,
    runId: str,
    _: Principal = VIEWER,
    app: Application = APP,
) -> dict[str, Any]:
    detail = await _run_of_stage(app, projectId, pipelineId, stage, runId)
    return {"data": shapes.run_detail(detail)}


async def abort_run(
    projectId: str,
    pipelineId: str,
    stage: str,
    runId: str,
    _: Principal = DEPLOYER,
    app: Application = APP,
) -> dict[str, Any]:
    await _run_of_stage(app, projectId, pipelineId, stage, runId)
    await app.engine.abort_run(runId, "aborted through the API")
    return {"data": shapes.run_detail(await queries.run_detail(app.db, runId, with_events=False))}


async def _run_of_stage(
    app: Application, project_id: str, pipeline_id: str, stage: str, run_id: str
) -> RunDetail:
    """The run, when it is a run of this stage (a run of another stage is not found here)."""
    exact = await queries.resolve_stage(app.db, project_id, pipeline_id, stage)
    missing = NotFoundError(f"no run '{run_id}' in stage {exact} of pipeline '{project_id}/{pipeline_id}'")
    try:
        detail = await queries.run_detail(app.db, run_id, with_events=False)
    except NotFoundError:
        raise missing from None
    if (detail.run.project_id, detail.run.pipeline_id, detail.run.stage) != (project_id, pipeline_id, exact):
        raise missing
    return detail


def run_cursor(cursor: str | None) -> int | None:
    """A runs cursor is the number of the last run of the previous page (a run number fits 63 bits)."""
    if cursor is None:
        return None
    if not (cursor.isascii() and cursor.isdigit()) or len(cursor) > _CURSOR_DIGITS:
        raise ApiError(400, f"cursor '{cursor}' is not one this server gave")
    return int(cursor)


def _run_status(word: str) -> str:
    status = shapes.RUN_STATUS_WORDS.get(word.strip().lower())
    if status is None:
        known = ", ".join(sorted(shapes.RUN_STATUS_WORDS))
        raise ApiError(400, f"status '{word}' is not a run status (known: {known})")
    return str(status)
