"""The body of releaseflow's own routes that start, resume or plan a run (``POST S/runs``,
``POST R/resume``, ``POST S/plan``): ``/v1``'s run body plus secret arguments (stored encrypted, shown
masked), which Northflank's request has no field for. The command line sends it through a server."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import Body
from pydantic import Field

from releaseflow.api.northflank import RunBody, run_request
from releaseflow.engine.commands import RunRequest
from releaseflow.engine.tokens import Principal


class OwnRunBody(RunBody):
    secretArguments: dict[str, Any] | None = Field(
        None, description="values for ${args.KEY} stored encrypted and shown masked (never answered)"
    )


OWN_RUN_BODY = Body(
    None, description="as /v1's run start (name, description, arguments, overrides), plus secretArguments"
)


def own_run_request(body: OwnRunBody | None, who: Principal) -> RunRequest:
    """What the run (or the resume, or the plan) is made with, by this token, secrets included."""
    request = run_request(body, who)
    if body is not None and body.secretArguments:
        request = dataclasses.replace(request, secret_arguments=body.secretArguments)
    return request
