"""``GET /api/approvals``: the Approval nodes waiting for a decision, in the projects the calling token
may act in; with ``?for=NAME``, only those NAME may decide and has not approved yet. The command line's
``approvals`` reads it through a server."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query

from releaseflow.api.northflank import APP, VIEWER
from releaseflow.api.routing import router_of
from releaseflow.application import Application
from releaseflow.engine.approval_queue import waiting_approvals
from releaseflow.engine.tokens import Principal
from releaseflow.wire.approvals import waiting_approval

FOR = Query(None, alias="for", max_length=200, description="only those this person may decide")


def approval_routes() -> APIRouter:
    return router_of(
        "runs", [("GET", "/api/approvals", list_approvals, "The Approval nodes waiting for a decision")]
    )


async def list_approvals(
    person: str | None = FOR, who: Principal = VIEWER, app: Application = APP
) -> dict[str, Any]:
    found = [waiting for waiting in await waiting_approvals(app.db, person) if who.sees(waiting.project_id)]
    return {"data": {"approvals": [waiting_approval(waiting) for waiting in found]}}
