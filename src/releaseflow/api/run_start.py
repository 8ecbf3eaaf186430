"""``POST .../stages/{stage}/runs``: start a run of the stage's release flow, as ``/v1``'s start does,
and with secret arguments too (stored encrypted, shown masked), which Northflank's request has no field
for. The command line's ``run`` starts runs through it when it acts through a server."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Body
from pydantic import Field

from releaseflow.api.northflank import APP, DEPLOYER, RunBody, run_request
from releaseflow.api.routing import router_of
from releaseflow.api.stages import STAGE, STAGE_OF_PATH, Stage
from releaseflow.application import Application
from releaseflow.engine import queries
from releaseflow.engine.tokens import Principal
from releaseflow.wire import runs as shapes


class StartBody(RunBody):
    secretArguments: dict[str, Any] | None = Field(
        None, description="values for ${args.KEY} stored encrypted and shown masked"
    )


START_BODY = Body(None, description="as /v1's run start, plus secretArguments")


def run_start_routes() -> APIRouter:
    return router_of("runs", [("POST", STAGE + "/runs", start_run, "Start a run (with secret arguments)")])


async def start_run(
    body: StartBody | None = START_BODY,
    who: Principal = DEPLOYER,
    at: Stage = STAGE_OF_PATH,
    app: Application = APP,
) -> dict[str, Any]:
    request = run_request(body, who)
    if body is not None and body.secretArguments:
        request = dataclasses.replace(request, secret_arguments=body.secretArguments)
    run = await app.engine.start_run(at.project_id, at.pipeline_id, at.name, request)
    return {"data": shapes.run_detail(await queries.run_detail(app.db, run.id))}
