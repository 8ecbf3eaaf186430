"""The version history of a stage's release flow: every version (who made it, when, how), the
difference between two of them, and restoring an old one (admins, after a confirmation page) — the
same engine query and command as ``releaseflow flow --versions`` and the API's versions routes."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from releaseflow.domain.access import Role
from releaseflow.domain.errors import Issue, ValidationError
from releaseflow.domain.run_diff import document_diff
from releaseflow.engine import queries, release_flows
from releaseflow.web.kit import Kit, StageAt

STAGE = "/p/{project_id}/{pipeline_id}/{stage}"


def diff_lines(before: queries.FlowVersionView, after: queries.FlowVersionView) -> list[tuple[str, str]]:
    """The unified diff of two versions' templates, each line with its kind (added, removed, hunk,
    file, same): the page colours them, and the line keeps its own + or - sign."""
    lines = document_diff(
        before.document, after.document, f"version {before.version}", f"version {after.version}"
    )
    return [(_kind(line), line) for line in lines]


def _kind(line: str) -> str:
    if line.startswith(("---", "+++")):
        return "file"
    if line.startswith("@@"):
        return "hunk"
    return {"+": "added", "-": "removed"}.get(line[:1], "same")


def version_number(text: str, name: str) -> int | None:
    """A version number from the query string (empty: none chosen)."""
    if not text:
        return None
    if not text.isdigit() or int(text) < 1:
        raise ValidationError([Issue(name, f"'{text}' is not a version number (1, 2, ...)")], subject="diff")
    return int(text)


def register(app: FastAPI, kit: Kit) -> None:
    @app.get(STAGE + "/versions", response_class=HTMLResponse)
    async def versions(
        request: Request, project_id: str, pipeline_id: str, stage: str, before: str = "", after: str = ""
    ) -> HTMLResponse:
        at = await kit.stage_of(request, project_id, pipeline_id, stage, Role.VIEWER)
        listed = await queries.flow_versions(at.core.db, project_id, pipeline_id, at.stage)
        current = next(view.version for view in listed if view.current)
        # By default the last change: the version before the current one, against the current one.
        first = version_number(before, "before") or max(current - 1, 1)
        second = version_number(after, "after") or current
        compared = [await version_of(at, number) for number in (first, second)]
        return kit.page(
            request,
            "versions.html",
            **at.context(),
            versions=list(reversed(listed)),
            before=first,
            after=second,
            diff=diff_lines(*compared),
        )

    @app.get(STAGE + "/versions/{version}/restore", response_class=HTMLResponse)
    async def restore_confirmation(
        request: Request, project_id: str, pipeline_id: str, stage: str, version: int
    ) -> HTMLResponse:
        at = await kit.stage_of(request, project_id, pipeline_id, stage, Role.ADMIN)
        old, now = await version_of(at, version), await version_of(at, None)
        context = at.context()
        return kit.page(
            request, "version_restore.html", **context, old=old, current=now, diff=diff_lines(now, old)
        )

    @app.post(STAGE + "/versions/{version}/restore")
    async def restore(
        request: Request, project_id: str, pipeline_id: str, stage: str, version: int
    ) -> Response:
        at = await kit.stage_of(request, project_id, pipeline_id, stage, Role.ADMIN)
        await kit.checked_form(request)
        made = await release_flows.restore_version(
            at.core.db, at.core.clock, project_id, pipeline_id, at.stage, version, at.who.actor
        )
        return RedirectResponse(f"{at.path}/versions?before={made - 1}&after={made}", status_code=303)


async def version_of(at: StageAt, number: int | None) -> queries.FlowVersionView:
    """A version of the stage's flow with its template (None: the current one)."""
    return await queries.flow_version(at.core.db, at.project_id, at.pipeline_id, at.stage, number)
