"""The release flow editor's routes: the page, the check the page asks for as a person types or edits in
the visual mode, and the save.

The server is the one validator: the check and the save both go through the engine's
``release_flows`` (the command the API and ``apply`` use), so what the editor shows as an error is
exactly what a save would refuse.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from fastapi import Depends, FastAPI, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.routing import BaseRoute

from releaseflow.application import Application
from releaseflow.domain.access import Forbidden, Role
from releaseflow.domain.errors import ConflictError, NotFoundError, ValidationError
from releaseflow.engine import queries, release_flows
from releaseflow.engine.tokens import Principal
from releaseflow.web import session
from releaseflow.web.flow_editor import (
    FORMATS,
    NEW_FLOW,
    NODE_SKELETONS,
    Checked,
    as_json,
    checked,
    read_text,
)

FLOW = "/p/{project_id}/{pipeline_id}/{stage}/flow"
# Pages of a stage's flow that other parts of the interface may offer; linked only when served.
RELATED_PAGES = ("versions", "settings")


def add_editor_routes(
    app: FastAPI,
    current: Callable[[], Application],
    page: Callable[..., HTMLResponse],
    templates: Jinja2Templates,
) -> None:
    """Serve the editor on ``app``, rendering with the interface's ``page`` and ``templates``."""

    def fragment(name: str, **context: Any) -> str:
        return templates.get_template(name).render(**context)

    async def validated(project_id: str, pipeline_id: str, stage: str, text: str) -> Checked:
        document, syntax = read_text(text)
        if document is None:
            return checked(None, ValidationError(syntax, subject="template"))
        try:
            await release_flows.check_release_flow(current().db, project_id, pipeline_id, stage, document)
        except ValidationError as problem:
            return checked(document, problem, text)
        return checked(document, None)

    def editor_page(
        request: Request,
        who: Principal,
        where: tuple[str, str, str],
        version: int,
        text: str,
        text_format: str,
        found: Checked,
        status_code: int = 200,
        **notes: Any,
    ) -> HTMLResponse:
        project_id, pipeline_id, stage = where
        return page(
            request,
            "editor.html",
            status_code=status_code,
            who=who,
            project_id=project_id,
            pipeline_id=pipeline_id,
            stage=stage,
            version=version,
            text=text,
            text_format=text_format,
            checked=found,
            can_save=may_save(who, project_id),
            skeletons=json.dumps(NODE_SKELETONS),
            related=related_pages(app.routes, project_id, pipeline_id, stage),
            **notes,
        )

    @app.get(FLOW, response_class=HTMLResponse)
    async def editor(
        request: Request, project_id: str, pipeline_id: str, stage: str, saved: int | None = None
    ) -> HTMLResponse:
        core = current()
        who = await session.allowed(core, request, Role.VIEWER, project_id)
        exact = await queries.resolve_stage(core.db, project_id, pipeline_id, stage)
        try:
            view = await queries.flow_version(core.db, project_id, pipeline_id, exact)
            version, text = view.version, as_json(view.document)
        except NotFoundError:
            # The stage has no release flow yet: its first save (based on "version 0") creates it.
            version, text = 0, as_json(NEW_FLOW)
        # A stored version can stop fitting its stage (a service was removed): say so on opening.
        found = await validated(project_id, pipeline_id, exact, text)
        where = (project_id, pipeline_id, exact)
        return editor_page(request, who, where, version, text, "json", found, saved=saved)

    async def authorised(request: Request, asked: Posted, role: Role) -> Principal:
        who = await session.allowed(current(), request, role, asked.project_id)
        session.check_csrf(request, asked.csrf)
        return who

    @app.post(FLOW + "/check")
    async def check(request: Request, asked: Posted = POSTED) -> Response:
        await authorised(request, asked, Role.VIEWER)
        found = await validated(asked.project_id, asked.pipeline_id, asked.stage, asked.text)
        return JSONResponse(
            {
                "document": found.document,
                "renderings": found.renderings(),
                "valid": found.document is not None and not found.issues,
                "issues": fragment("_editor_issues.html", checked=found),
                "drawing": fragment("_editor_drawing.html", checked=found),
            },
            headers={"Cache-Control": "no-store"},
        )

    @app.post(FLOW)
    async def save(
        request: Request,
        asked: Posted = POSTED,
        based_on: int = Form(...),
        text_format: str = Form("json", alias="format"),
    ) -> Response:
        who = await authorised(request, asked, Role.ADMIN)
        core = current()
        exact = await queries.resolve_stage(core.db, asked.project_id, asked.pipeline_id, asked.stage)
        where = (asked.project_id, asked.pipeline_id, exact)
        shown = text_format if text_format in FORMATS else "json"
        text = asked.text
        document, syntax = read_text(text)
        try:
            if document is None:
                raise ValidationError(syntax, subject="template")
            made = await release_flows.update_release_flow(
                core.db, core.clock, *where, document, f"web, {who.name}", based_on=based_on
            )
        except ValidationError as problem:
            found = checked(document, problem, text)
            return editor_page(
                request, who, where, based_on, text, shown, found, status_code=422, refused=True
            )
        except ConflictError as conflict:
            found = await validated(*where, text)
            return editor_page(
                request, who, where, based_on, text, shown, found, status_code=409, conflict=str(conflict)
            )
        return RedirectResponse(
            f"/web/p/{asked.project_id}/{asked.pipeline_id}/{exact}/flow?saved={made}", status_code=303
        )


@dataclass(frozen=True)
class Posted:
    """What the editor's check and save receive: the stage (from the path), the session's CSRF token
    and the template's text."""

    project_id: str
    pipeline_id: str
    stage: str
    csrf: str
    text: str


def posted(
    project_id: str, pipeline_id: str, stage: str, csrf: str = Form(""), text: str = Form("")
) -> Posted:
    return Posted(project_id, pipeline_id, stage, csrf, text)


POSTED = Depends(posted)


def related_pages(
    routes: Sequence[BaseRoute], project_id: str, pipeline_id: str, stage: str
) -> dict[str, str]:
    """The links to the stage's ``RELATED_PAGES`` that ``routes`` serve (``/p/{…}/{…}/{…}/NAME``)."""
    served = set()
    for route in routes:
        parts = str(getattr(route, "path", "")).split("/")
        if len(parts) == 6 and parts[1] == "p" and all(part.startswith("{") for part in parts[2:5]):
            served.add(parts[5])
    base = f"/web/p/{project_id}/{pipeline_id}/{stage}"
    return {name: f"{base}/{name}" for name in RELATED_PAGES if name in served}


def may_save(who: Principal, project_id: str) -> bool:
    try:
        who.check(Role.ADMIN, project_id)
    except Forbidden:
        return False
    return True
