"""API tokens over HTTP, for a project's admins: list, create (the secret is answered once, never
stored), revoke. A token of project ``*`` (every project) can be made only by such a token."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from releaseflow.api.errors import ApiError
from releaseflow.api.northflank import ADMIN, APP
from releaseflow.application import Application
from releaseflow.domain.access import Role
from releaseflow.domain.errors import NotFoundError
from releaseflow.engine import tokens
from releaseflow.engine.tokens import Principal
from releaseflow.wire.control import token

TOKENS = "/api/projects/{projectId}/tokens"


class TokenBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(..., min_length=1, max_length=100, description="what the token is for")
    role: Role = Field(..., description="viewer, deployer or admin")
    expiresAt: datetime | None = Field(None, description="when it stops working (ISO 8601 with zone)")


def token_routes() -> APIRouter:
    router = APIRouter(tags=["tokens"])
    router.add_api_route(
        TOKENS, list_tokens, methods=["GET"], summary="List the project's tokens (no secrets)"
    )
    router.add_api_route(
        TOKENS, create_token, methods=["POST"], summary="Create a token; its secret is shown once"
    )
    router.add_api_route(TOKENS + "/{tokenId}", revoke_token, methods=["DELETE"], summary="Revoke a token")
    return router


async def list_tokens(projectId: str, _: Principal = ADMIN, app: Application = APP) -> dict[str, Any]:
    now = app.clock.now()
    found = [view for view in await tokens.list_tokens(app.db) if view.project_id == projectId]
    return {"data": {"tokens": [token(view, view.state(now)) for view in found]}}


async def create_token(
    projectId: str, body: TokenBody, who: Principal = ADMIN, app: Application = APP
) -> dict[str, Any]:
    if body.expiresAt is not None and body.expiresAt.tzinfo is None:
        raise ApiError(400, "expiresAt needs a time zone (e.g. a trailing Z)")
    if body.expiresAt is not None and body.expiresAt <= app.clock.now():
        raise ApiError(400, f"expiresAt {body.expiresAt.isoformat()} has already passed")
    made = await tokens.create_token(
        app.db,
        app.clock,
        name=body.name,
        project_id=projectId,
        role=body.role,
        created_by=who.actor,
        expires_at=body.expiresAt,
    )
    return {"data": {**token(made.view, made.view.state(app.clock.now())), "secret": made.secret}}


async def revoke_token(
    projectId: str, tokenId: str, _: Principal = ADMIN, app: Application = APP
) -> dict[str, Any]:
    known = {view.id: view for view in await tokens.list_tokens(app.db) if view.project_id == projectId}
    if tokenId not in known:
        raise NotFoundError(f"no token '{tokenId}' in project '{projectId}'")
    revoked = await tokens.revoke_token(app.db, app.clock, tokenId)
    return {"data": token(revoked, revoked.state(app.clock.now()))}
