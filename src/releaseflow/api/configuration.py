"""Configuration as code over HTTP, for a project's admins: validate or apply a configuration
document (the JSON form of the file ``releaseflow apply -f`` reads), with ``prune`` and ``dryRun``.

A document sent to ``/api/projects/{projectId}/configuration`` may only describe that project: a
project's admin changes nothing outside it. Release flows must be inline (``releaseFlow``).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Query

from releaseflow.api.errors import ApiError
from releaseflow.api.northflank import ADMIN, APP
from releaseflow.application import Application
from releaseflow.domain.config_model import Configuration
from releaseflow.engine.configuration import apply_configuration, parse_configuration_document
from releaseflow.engine.tokens import Principal
from releaseflow.wire.configuration import applied_plan

CONFIGURATION = "/api/projects/{projectId}/configuration"
DOCUMENT = Body(..., description="a configuration document: {projects: [...]}, as the file apply reads")


def configuration_routes() -> APIRouter:
    router = APIRouter(tags=["configuration"])
    router.add_api_route(
        CONFIGURATION + "/validate", validate, methods=["POST"], summary="Check a configuration document"
    )
    router.add_api_route(
        CONFIGURATION + "/apply",
        apply,
        methods=["POST"],
        summary="Make the project match a configuration document",
    )
    return router


def _parsed(project_id: str, document: Any) -> Configuration:
    config = parse_configuration_document(document, "the request body")
    others = sorted({project.id for project in config.projects} - {project_id})
    if others:
        raise ApiError(
            403, f"this document describes other projects than '{project_id}': {', '.join(others)}"
        )
    return config


async def validate(projectId: str, document: Any = DOCUMENT, _: Principal = ADMIN) -> dict[str, Any]:
    config = _parsed(projectId, document)
    return {"data": {"valid": True, "projects": [project.id for project in config.projects]}}


async def apply(
    projectId: str,
    document: Any = DOCUMENT,
    prune: bool = Query(False, description="also delete what the project no longer lists"),
    dryRun: bool = Query(False, description="answer the plan, change nothing"),
    _: Principal = ADMIN,
    app: Application = APP,
) -> dict[str, Any]:
    config = _parsed(projectId, document)
    plan = await apply_configuration(app.db, config, app.clock, prune=prune, dry_run=dryRun)
    return {"data": applied_plan(plan.outline(), dry_run=dryRun)}
