"""What the run view offers beyond watching: resuming a failed run from its failed node (with what
the new run keeps and what it runs again, as ``releaseflow resume``), a node's log in its detail,
and restoring a backup the rollback dialog offers (``releaseflow restore-backup``)."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from releaseflow.domain.access import Role
from releaseflow.domain.errors import Issue, NotFoundError, ValidationError
from releaseflow.domain.statuses import NodeStatus
from releaseflow.engine.commands import RunRequest
from releaseflow.engine.queries import NodeView
from releaseflow.engine.rollback import Rollbacks
from releaseflow.web import views
from releaseflow.web.kit import Kit, field
from releaseflow.web.node_logs import node_log


def resume_outline_of(root: NodeView | None) -> tuple[list[str], list[str]]:
    """The actions a resume keeps (they succeeded: their responses are carried over) and those it
    runs again (the failed one and every one that did not succeed), in the flow's order."""
    actions = [node for node in root.walk() if not node.is_workflow] if root else []
    kept = [node.label for node in actions if node.status is NodeStatus.SUCCESS]
    rerun = [node.label for node in actions if node.status is not NodeStatus.SUCCESS]
    return kept, rerun


def register(app: FastAPI, kit: Kit) -> None:
    @app.get("/runs/{run_id}/resume", response_class=HTMLResponse)
    async def resume_dialog(request: Request, run_id: str) -> HTMLResponse:
        seen = await kit.viewable_run(request, run_id, Role.DEPLOYER)
        kept, rerun = resume_outline_of(seen.detail.root)
        return kit.page(request, "resume.html", who=seen.who, detail=seen.detail, kept=kept, rerun=rerun)

    @app.post("/runs/{run_id}/resume")
    async def resume(request: Request, run_id: str) -> Response:
        seen = await kit.viewable_run(request, run_id, Role.DEPLOYER)
        form = await kit.checked_form(request)
        edits = RunRequest(
            name=field(form, "name") or None,
            description=field(form, "description"),
            origin=views.origin_of(seen.who),
        )
        made = await seen.core.engine.resume_run(run_id, edits)
        return RedirectResponse(f"/web/runs/{made.id}", status_code=303)

    @app.get("/runs/{run_id}/logs/{path:path}", response_class=HTMLResponse)
    async def logs(request: Request, run_id: str, path: str) -> HTMLResponse:
        seen = await kit.viewable_run(request, run_id, Role.VIEWER)
        node = seen.detail.node(path)
        if node is None:
            raise NotFoundError(f"run {seen.detail.run.display_name} has no node '{path}'")
        found = await node_log(seen.core, seen.detail.run, node)
        return kit.page(request, "_node_log.html", log=found)

    @app.post("/runs/{run_id}/restore-backup")
    async def restore_backup(request: Request, run_id: str) -> Response:
        seen = await kit.viewable_run(request, run_id, Role.DEPLOYER)
        form = await kit.checked_form(request)
        addon, backup = field(form, "addon"), field(form, "backup")
        if field(form, "confirm") != "yes":
            raise ValidationError(
                [
                    Issue(
                        "confirm",
                        f"tick the box: the data of addon '{addon}' is replaced by backup '{backup}'",
                    )
                ],
                subject="restore",
            )
        run = seen.detail.run
        made = await Rollbacks(seen.core.engine, seen.core.drivers).restore_backup(
            run.project_id, run.pipeline_id, run.stage, addon, backup, by=seen.who.actor
        )
        return RedirectResponse(f"/web/runs/{made.id}", status_code=303)
