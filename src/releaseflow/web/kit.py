"""What every group of web routes shares: the application, page rendering, and the checks a form
or a run lookup makes. pages.py builds one Kit and hands it to each module that adds routes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.responses import HTMLResponse
from starlette.datastructures import FormData

from releaseflow.application import Application
from releaseflow.domain.access import Role
from releaseflow.engine import queries
from releaseflow.engine.tokens import Principal
from releaseflow.web import session, views


@dataclass(frozen=True)
class Kit:
    current: Callable[[], Application]
    page: Callable[..., HTMLResponse]

    async def viewable_run(self, request: Request, run_id: str, role: Role) -> views.RunContext:
        """The run, once the request's principal holds ``role`` in the run's project."""
        core = self.current()
        await session.principal(core, request)  # signed out: the sign-in form, before any lookup
        detail = await queries.run_detail(core.db, run_id, with_events=False)
        who = await session.allowed(core, request, role, detail.run.project_id)
        return views.RunContext(core, who, detail)

    async def checked_form(self, request: Request) -> FormData:
        """A posted form, once its CSRF token is the session's."""
        form = await request.form()
        session.check_csrf(request, str(form.get(session.CSRF_FIELD, "")))
        return form

    async def stage_of(
        self, request: Request, project_id: str, pipeline_id: str, stage: str, role: Role
    ) -> StageAt:
        """The stage of a request's path, once who asks holds ``role`` in the project."""
        core = self.current()
        who = await session.allowed(core, request, role, project_id)
        exact = await queries.resolve_stage(core.db, project_id, pipeline_id, stage)
        return StageAt(core, who, project_id, pipeline_id, exact)


@dataclass(frozen=True)
class StageAt:
    """A stage a request is about: the application, who asks, and the stage's stored name (the path
    may write it in any case)."""

    core: Application
    who: Principal
    project_id: str
    pipeline_id: str
    stage: str

    def context(self) -> dict[str, Any]:
        """What every stage page's template reads: who, and where (its crumbs and links)."""
        return {
            "who": self.who,
            "project_id": self.project_id,
            "pipeline_id": self.pipeline_id,
            "stage": self.stage,
        }

    @property
    def path(self) -> str:
        return f"/web/p/{self.project_id}/{self.pipeline_id}/{self.stage}"


def field(form: FormData, name: str) -> str:
    """A form field as text, stripped (absent: empty)."""
    value: Any = form.get(name, "")
    return str(value).strip()
