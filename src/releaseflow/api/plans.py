"""``POST .../stages/{stage}/plan``: what a run of the stage would do if started now with this body
(arguments, overrides, secret arguments: ``api/own_run_body.py``, answered masked), started by the
calling token. Starts nothing; the command line's ``plan``
reads it through a server. (A run's own plan, the one it was started with, is ``GET .../runs/{id}/plan``.)"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from releaseflow.api.northflank import APP, VIEWER
from releaseflow.api.own_run_body import OWN_RUN_BODY, OwnRunBody, own_run_request
from releaseflow.api.routing import router_of
from releaseflow.api.stages import STAGE, STAGE_OF_PATH, Stage
from releaseflow.application import Application
from releaseflow.engine.plan import plan_run
from releaseflow.engine.tokens import Principal


def plan_routes() -> APIRouter:
    return router_of(
        "stages", [("POST", STAGE + "/plan", plan_stage_run, "What a run would do if started now")]
    )


async def plan_stage_run(
    body: OwnRunBody | None = OWN_RUN_BODY,
    who: Principal = VIEWER,
    at: Stage = STAGE_OF_PATH,
    app: Application = APP,
) -> dict[str, Any]:
    plan = await plan_run(
        app.db, at.project_id, at.pipeline_id, at.name, own_run_request(body, who), now=app.clock.now()
    )
    return {"data": plan}
