"""``POST .../stages/{stage}/runs``: start a run of the stage's release flow, as ``/v1``'s start does,
and with secret arguments too (``api/own_run_body.py``). The command line's ``run`` starts runs through
it when it acts through a server."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from releaseflow.api.northflank import APP, DEPLOYER
from releaseflow.api.own_run_body import OWN_RUN_BODY, OwnRunBody, own_run_request
from releaseflow.api.routing import router_of
from releaseflow.api.stages import STAGE, STAGE_OF_PATH, Stage
from releaseflow.application import Application
from releaseflow.engine import queries
from releaseflow.engine.tokens import Principal
from releaseflow.wire import runs as shapes


def run_start_routes() -> APIRouter:
    return router_of("runs", [("POST", STAGE + "/runs", start_run, "Start a run (with secret arguments)")])


async def start_run(
    body: OwnRunBody | None = OWN_RUN_BODY,
    who: Principal = DEPLOYER,
    at: Stage = STAGE_OF_PATH,
    app: Application = APP,
) -> dict[str, Any]:
    request = own_run_request(body, who)
    run = await app.engine.start_run(at.project_id, at.pipeline_id, at.name, request)
    return {"data": shapes.run_detail(await queries.run_detail(app.db, run.id))}
