"""The approvals page: the Approval nodes waiting for the signed-in person, with the rule of
``releaseflow approvals --for NAME`` (not the runs they started; only those naming them when the
node names its approvers; not one they already approved), and approving or rejecting one with a
comment (deployers) through the engine's approve and reject commands."""

from __future__ import annotations

from typing import Literal

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from releaseflow.domain.access import Role
from releaseflow.engine.approval_queue import waiting_approvals
from releaseflow.web import session
from releaseflow.web.kit import Kit, field

Decision = Literal["approve", "reject"]


def register(app: FastAPI, kit: Kit) -> None:
    @app.get("/approvals", response_class=HTMLResponse)
    async def approvals(request: Request) -> HTMLResponse:
        core = kit.current()
        who = await session.allowed(core, request, Role.VIEWER, None)
        waiting = [
            approval
            for approval in await waiting_approvals(core.db, who.actor)
            if who.sees(approval.project_id)
        ]
        return kit.page(request, "approvals.html", who=who, waiting=waiting)

    @app.post("/runs/{run_id}/approvals/{decision}/{node:path}")
    async def decide(request: Request, run_id: str, decision: Decision, node: str) -> Response:
        seen = await kit.viewable_run(request, run_id, Role.DEPLOYER)
        form = await kit.checked_form(request)
        recorded = seen.core.engine.approve if decision == "approve" else seen.core.engine.reject
        await recorded(run_id, node, seen.who.actor, field(form, "comment"))
        return RedirectResponse("/web/approvals", status_code=303)
