"""The routes of the web interface: pages, forms and fragments over the engine's queries and commands."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response, StreamingResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from releaseflow.application import Application
from releaseflow.domain.access import Forbidden, Principal, Role, Unauthenticated
from releaseflow.domain.errors import ConflictError, NotFoundError, ReleaseflowError, ValidationError
from releaseflow.engine import history, plan, queries
from releaseflow.engine.commands import RunRequest
from releaseflow.engine.rollback import Rollbacks
from releaseflow.web import (
    approvals,
    editor,
    flow_history,
    live,
    run_actions,
    session,
    stage_settings,
    views,
    whats_where,
)
from releaseflow.web.kit import Kit

HERE = Path(__file__).parent
STATUS_CODES: Mapping[type[ReleaseflowError], int] = {
    NotFoundError: 404,
    ValidationError: 422,
    ConflictError: 409,
    Forbidden: 403,
}


def web_app(application: Callable[[], Application | None]) -> FastAPI:
    """The web interface over the application ``application()`` returns once the server started."""
    app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    templates = Jinja2Templates(directory=HERE / "templates")
    templates.env.globals.update(views.TEMPLATE_HELPERS)

    def current() -> Application:
        found = application()
        if found is None:
            raise RuntimeError("the application is not started")
        return found

    def page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
        secret = request.cookies.get(session.COOKIE, "")
        context.setdefault("csrf", session.csrf_token(secret) if secret else "")
        return templates.TemplateResponse(request, name, context, status_code=status_code)

    @app.exception_handler(session.SignInNeeded)
    async def sign_in_first(request: Request, _: Exception) -> Response:
        if request.headers.get("hx-request"):
            return Response(status_code=401, headers={"HX-Redirect": "/web/signin"})
        return RedirectResponse(f"/web/signin?next={request.url.path}", status_code=303)

    @app.exception_handler(ReleaseflowError)
    async def refused(request: Request, error: Exception) -> Response:
        code = next((c for kind, c in STATUS_CODES.items() if isinstance(error, kind)), 400)
        return page(request, "error.html", status_code=code, message=str(error))

    def signin_page(
        request: Request, back: str, *, error: str | None = None, user_name: str = "", status_code: int = 200
    ) -> HTMLResponse:
        nonce = session.signin_nonce(request)
        shown = page(
            request, "signin.html", status_code, next=back, error=error, user_name=user_name, csrf=nonce
        )
        session.keep_signin_nonce(shown, nonce)
        return shown

    @app.get("/signin", response_class=HTMLResponse)
    async def signin_form(request: Request, next: str = "/web/") -> HTMLResponse:
        return signin_page(request, views.local_path(next))

    @app.post("/signin")
    async def signin(
        request: Request,
        name: str = Form(""),
        password: str = Form(""),
        token: str = Form(""),
        next: str = Form("/web/"),
        csrf: str = Form(""),
    ) -> Response:
        core = current()
        back = views.local_path(next)
        try:
            session.check_signin_nonce(request, csrf)
            secret = await session.sign_in(core, name=name, password=password, token=token)
        except (Forbidden, Unauthenticated) as error:
            status = 403 if isinstance(error, Forbidden) else 401
            return signin_page(request, back, error=str(error), user_name=name, status_code=status)
        await session.end_session(core, request)  # signing in again: the session it replaces ends
        response = RedirectResponse(back, status_code=303)
        session.keep(response, secret)
        response.delete_cookie(session.SIGNIN_COOKIE, path=session.PATH)  # used: the next form gets a new one
        return response

    @app.post("/signout")
    async def signout(request: Request, csrf: str = Form("")) -> Response:
        session.check_csrf(request, csrf)
        await session.end_session(current(), request)
        response = RedirectResponse("/web/signin", status_code=303)
        session.forget(response)
        return response

    @app.get("/", response_class=HTMLResponse)
    async def projects(request: Request) -> HTMLResponse:
        core = current()
        who = await session.allowed(core, request, Role.VIEWER, None)
        listed = await queries.project_ids(core.db)
        visible = [p for p in listed if who.sees(p)]
        overviews = {p: await history.pipelines(core.db, p) for p in visible}
        return page(request, "projects.html", who=who, overviews=overviews)

    @app.get("/p/{project_id}/{pipeline_id}", response_class=HTMLResponse)
    async def pipeline(request: Request, project_id: str, pipeline_id: str) -> HTMLResponse:
        core = current()
        who = await session.allowed(core, request, Role.VIEWER, project_id)
        overview = await history.pipeline_status(core.db, project_id, pipeline_id)
        state = await queries.release_state(core.db, project_id, pipeline_id, None)
        stages = [header.stage for header in overview.stages]
        columns = await views.stage_resources(core.db, project_id, pipeline_id, stages, state)
        return page(request, "pipeline.html", who=who, overview=overview, columns=columns)

    @app.get("/p/{project_id}/{pipeline_id}/{stage}/runs", response_class=HTMLResponse)
    async def runs(
        request: Request,
        project_id: str,
        pipeline_id: str,
        stage: str,
        status: str = "",
        kind: str = "",
        before: int | None = None,
    ) -> HTMLResponse:
        core = current()
        who = await session.allowed(core, request, Role.VIEWER, project_id)
        found = await history.runs_page(
            core.db,
            project_id,
            pipeline_id,
            stage,
            statuses=[status] if status else (),
            kind=kind or None,
            cursor=before,
            limit=25,
        )
        return page(
            request,
            "runs.html",
            who=who,
            project_id=project_id,
            pipeline_id=pipeline_id,
            stage=stage,
            page_of_runs=found,
            status=status,
            kind=kind,
        )

    @app.get("/p/{project_id}/{pipeline_id}/{stage}/start", response_class=HTMLResponse)
    async def run_dialog(request: Request, project_id: str, pipeline_id: str, stage: str) -> HTMLResponse:
        core = current()
        who = await session.allowed(core, request, Role.DEPLOYER, project_id)
        planned = await plan.plan_run(
            core.db, project_id, pipeline_id, stage, RunRequest(), now=core.clock.now()
        )
        return page(
            request,
            "run_dialog.html",
            who=who,
            project_id=project_id,
            pipeline_id=pipeline_id,
            stage=stage,
            releases=planned.get("releases", []),
        )

    async def run_request(request: Request, who: Principal) -> RunRequest:
        form = await request.form()
        session.check_csrf(request, str(form.get(session.CSRF_FIELD, "")))
        return views.run_request_of(form, views.origin_of(who))

    @app.post("/p/{project_id}/{pipeline_id}/{stage}/plan", response_class=HTMLResponse)
    async def plan_preview(request: Request, project_id: str, pipeline_id: str, stage: str) -> HTMLResponse:
        core = current()
        who = await session.allowed(core, request, Role.DEPLOYER, project_id)
        try:
            wanted = await run_request(request, who)
            planned = await plan.plan_run(
                core.db, project_id, pipeline_id, stage, wanted, now=core.clock.now()
            )
        except ValidationError as error:
            return page(request, "_problems.html", status_code=200, message=str(error))
        return page(
            request, "_plan.html", planned=planned, plan_json=json.dumps(planned, indent=2, default=str)
        )

    @app.post("/p/{project_id}/{pipeline_id}/{stage}/start")
    async def start(request: Request, project_id: str, pipeline_id: str, stage: str) -> Response:
        core = current()
        who = await session.allowed(core, request, Role.DEPLOYER, project_id)
        wanted = await run_request(request, who)
        run = await core.engine.start_run(project_id, pipeline_id, stage, wanted)
        return RedirectResponse(f"/web/runs/{run.id}", status_code=303)

    kit = Kit(current, page)
    viewable_run = kit.viewable_run
    for register in (
        flow_history.register,
        stage_settings.register,
        whats_where.register,
        approvals.register,
        run_actions.register,
    ):
        register(app, kit)

    @app.get("/runs/{run_id}", response_class=HTMLResponse)
    async def run_view(request: Request, run_id: str) -> HTMLResponse:
        seen = await viewable_run(request, run_id, Role.VIEWER)
        last = await live.last_event_id(seen.core.db, run_id)
        return page(request, "run.html", who=seen.who, detail=seen.detail, last_event=last)

    @app.get("/runs/{run_id}/live")
    async def run_events(request: Request, run_id: str) -> Response:
        seen = await viewable_run(request, run_id, Role.VIEWER)
        after = views.event_id(request.headers.get("last-event-id"), request.query_params.get("after"))
        if await live.caught_up(seen.core.db, run_id, after):
            return Response(status_code=204)
        csrf = session.csrf_token(request.cookies.get(session.COOKIE, ""))

        async def render(detail: queries.RunDetail) -> str:
            return templates.get_template("_run_live.html").render(detail=detail, csrf=csrf, who=seen.who)

        return StreamingResponse(
            live.run_stream(seen.core.db, run_id, after, render, request.is_disconnected),
            media_type="text/event-stream",
            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"},
        )

    @app.get("/runs/{run_id}/nodes/{path:path}", response_class=HTMLResponse)
    async def node_detail(request: Request, run_id: str, path: str) -> HTMLResponse:
        detail = (await viewable_run(request, run_id, Role.VIEWER)).detail
        node = detail.node(path)
        if node is None:
            raise NotFoundError(f"run {detail.run.display_name} has no node '{path}'")
        return page(request, "_node.html", run=detail.run, node=node)

    @app.post("/runs/{run_id}/abort")
    async def abort(request: Request, run_id: str, csrf: str = Form("")) -> Response:
        core = (await viewable_run(request, run_id, Role.DEPLOYER)).core
        session.check_csrf(request, csrf)
        await core.engine.abort_run(run_id, "aborted in the web interface")
        return RedirectResponse(f"/web/runs/{run_id}", status_code=303)

    @app.post("/runs/{run_id}/rename")
    async def rename(
        request: Request, run_id: str, csrf: str = Form(""), name: str = Form(""), description: str = Form("")
    ) -> Response:
        core = (await viewable_run(request, run_id, Role.DEPLOYER)).core
        session.check_csrf(request, csrf)
        await core.engine.rename_run(run_id, name=name.strip(), description=description.strip())
        return RedirectResponse(f"/web/runs/{run_id}", status_code=303)

    @app.get("/runs/{run_id}/rollback", response_class=HTMLResponse)
    async def rollback_dialog(request: Request, run_id: str) -> HTMLResponse:
        seen = await viewable_run(request, run_id, Role.DEPLOYER)
        preview = await Rollbacks(seen.core.engine, seen.core.drivers).preview(run_id)
        return page(request, "rollback.html", who=seen.who, detail=seen.detail, preview=preview)

    @app.post("/runs/{run_id}/rollback")
    async def rollback(
        request: Request, run_id: str, csrf: str = Form(""), config: str = Form("")
    ) -> Response:
        seen = await viewable_run(request, run_id, Role.DEPLOYER)
        session.check_csrf(request, csrf)
        started = await Rollbacks(seen.core.engine, seen.core.drivers).start(
            run_id, by=seen.who.actor, restore_config=config == "yes"
        )
        return RedirectResponse(f"/web/runs/{started.run.id}", status_code=303)

    @app.get("/runs/{run_id}/rollbacks", response_class=HTMLResponse)
    async def rollbacks(request: Request, run_id: str) -> HTMLResponse:
        seen = await viewable_run(request, run_id, Role.VIEWER)
        made = await history.rollbacks_of(seen.core.db, run_id)
        return page(request, "rollbacks.html", who=seen.who, detail=seen.detail, rollbacks=made)

    editor.add_editor_routes(app, current, page, templates)
    return app
