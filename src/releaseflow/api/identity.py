"""``GET /api/token``: who the calling token is and the projects it may act in.

The command line asks it when it acts through a server: a command without ``--project`` acts in the
only project the token may act in, and a run is looked up in those projects.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from releaseflow.api.northflank import APP, VIEWER
from releaseflow.api.routing import router_of
from releaseflow.application import Application
from releaseflow.engine import queries
from releaseflow.engine.tokens import Principal


def identity_routes() -> APIRouter:
    return router_of(
        "tokens", [("GET", "/api/token", token_identity, "The calling token and the projects it acts in")]
    )


async def token_identity(who: Principal = VIEWER, app: Application = APP) -> dict[str, Any]:
    projects = await queries.project_ids(app.db)
    projects = [project for project in projects if who.sees(project)]
    # The API's credential is a token, which holds exactly one grant.
    (grant,) = who.grants
    token = {"id": who.id, "name": who.name, "project": grant.project_id, "role": str(grant.role)}
    return {"data": {"token": token, "projects": projects}}
