"""Trigger routes: a release flow's webhook URL, and GitHub and GitLab push and pull request hooks.

These routes are not behind API tokens: each authenticates by its own secret. The webhook URL holds
the flow's token in its path; GitHub signs each delivery with the server's shared secret (HMAC-SHA256
in ``X-Hub-Signature-256``); GitLab sends the shared token (``X-Gitlab-Token``). A delivery id seen
before is refused (a replay). The router also watches local git repositories while the app runs.

Answers: 201 a run was started; 202 nothing was started on purpose (a paused flow, a pinned stage,
rules that do not match); 409 the concurrency policy refused the run; 400 a bad request; 401 a missing
or wrong signature; 404 an unknown webhook URL.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from releaseflow.api.errors import error_response
from releaseflow.application import Application
from releaseflow.domain.errors import NotFoundError
from releaseflow.domain.git_events import (
    github_event,
    github_signature_problem,
    gitlab_event,
    gitlab_token_problem,
)
from releaseflow.domain.git_rules import GitEvent
from releaseflow.engine.git_watch import watch
from releaseflow.engine.triggers import WEBHOOK_PATH, Decision, Outcome, Triggers
from releaseflow.settings import Settings

_STATUS = {Decision.STARTED: 201, Decision.SKIPPED: 202, Decision.REFUSED: 409}


def _outcome_json(outcome: Outcome) -> dict[str, Any]:
    return {
        "stage": outcome.stage,
        "decision": str(outcome.decision),
        "reason": outcome.reason,
        "runId": outcome.run_id,
    }


_OUTCOME_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["stage", "decision", "reason", "runId"],
    "properties": {
        "stage": {"type": "string"},
        "decision": {"type": "string", "enum": [str(decision) for decision in Decision]},
        "reason": {"type": "string"},
        "runId": {"type": ["string", "null"]},
    },
}
_DELIVERY_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["outcomes"],
    "properties": {"event": {"type": "string"}, "outcomes": {"type": "array", "items": _OUTCOME_SCHEMA}},
}


def _answers(schema: dict[str, Any], meanings: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """The OpenAPI responses of a trigger route: each status with what it means, and its body."""
    content = {"application/json": {"schema": schema}}
    return {status: {"description": text, "content": content} for status, text in meanings.items()}


_WEBHOOK_ANSWERS = _answers(
    _OUTCOME_SCHEMA,
    {
        201: "a run was started",
        202: "nothing was started on purpose (a paused flow, a pinned stage)",
        400: "a query parameter is invalid (the reason says which)",
        409: "the concurrency policy refused the run",
    },
)
_DELIVERY_ANSWERS = _answers(
    _DELIVERY_SCHEMA,
    {
        200: "not a push or a pull request: nothing to do",
        201: "a run was started",
        202: "nothing was started (no flow's rules match, or they skipped it)",
    },
)


def _error(status: int, message: str) -> JSONResponse:
    """A refusal in the API's one error envelope."""
    return error_response(status, message)


def trigger_routes(application: Callable[[], Application | None], settings: Settings) -> APIRouter:
    """The trigger routes over the app's application (read when a request comes, once it is open)."""

    def triggers() -> Triggers:
        opened = application()
        assert opened is not None, "the app serves requests only once its application is open"
        return Triggers(opened.engine)

    @contextlib.asynccontextmanager
    async def lifespan(_: Any) -> AsyncIterator[None]:
        stop = asyncio.Event()
        task = None
        if settings.git_poll_seconds > 0:
            task = asyncio.create_task(watch(triggers(), settings.git_poll_seconds, stop), name="git-watch")
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                await task

    router = APIRouter(lifespan=lifespan)

    async def release_flow_webhook(token: str, request: Request) -> JSONResponse:
        """Start a run of the flow this URL belongs to; query parameters name it and set its values."""
        caller = request.client.host if request.client else ""
        try:
            outcome = await triggers().fire_webhook(token, list(request.query_params.multi_items()), caller)
        except NotFoundError as error:
            return _error(404, str(error))
        status = 400 if outcome.invalid else _STATUS[outcome.decision]
        return JSONResponse(_outcome_json(outcome), status_code=status)

    # One route per method: a route of two methods would give both operations one operationId in
    # the OpenAPI document, which must name each operation once.
    for method in ("GET", "POST"):
        router.add_api_route(
            WEBHOOK_PATH + "{token}", release_flow_webhook, methods=[method], responses=_WEBHOOK_ANSWERS
        )

    async def git_delivery(provider: str, delivery_id: str | None, event: GitEvent | None) -> JSONResponse:
        if not delivery_id:
            return _error(400, f"the {provider} delivery has no delivery id header")
        if not await triggers().accept_delivery(provider, delivery_id):
            return _error(409, f"delivery {delivery_id} was received before: a replay is refused")
        if event is None:
            return JSONResponse({"outcomes": [], "message": "not a push or pull request: nothing to do"})
        outcomes = await triggers().on_git_event(event, provider)
        started = any(outcome.decision is Decision.STARTED for outcome in outcomes)
        body = {"event": event.describe(), "outcomes": [_outcome_json(outcome) for outcome in outcomes]}
        return JSONResponse(body, status_code=201 if started else 202)

    @router.post("/hooks/github", responses=_DELIVERY_ANSWERS)
    async def github(request: Request) -> JSONResponse:
        if settings.github_webhook_secret is None:
            return _error(401, "this server has no GitHub secret (set RELEASEFLOW_GITHUB_WEBHOOK_SECRET)")
        body = await request.body()
        problem = github_signature_problem(
            settings.github_webhook_secret, body, request.headers.get("X-Hub-Signature-256")
        )
        if problem is not None:
            return _error(401, problem)
        payload = _json_object(body)
        if payload is None:
            return _error(400, "the delivery's body is not a JSON object")
        event = github_event(request.headers.get("X-GitHub-Event", ""), payload)
        return await git_delivery("github", request.headers.get("X-GitHub-Delivery"), event)

    @router.post("/hooks/gitlab", responses=_DELIVERY_ANSWERS)
    async def gitlab(request: Request) -> JSONResponse:
        if settings.gitlab_webhook_token is None:
            return _error(401, "this server has no GitLab token (set RELEASEFLOW_GITLAB_WEBHOOK_TOKEN)")
        problem = gitlab_token_problem(settings.gitlab_webhook_token, request.headers.get("X-Gitlab-Token"))
        if problem is not None:
            return _error(401, problem)
        payload = _json_object(await request.body())
        if payload is None:
            return _error(400, "the delivery's body is not a JSON object")
        event = gitlab_event(request.headers.get("X-Gitlab-Event", ""), payload)
        delivery = request.headers.get("X-Gitlab-Event-UUID") or request.headers.get("X-Gitlab-Webhook-UUID")
        return await git_delivery("gitlab", delivery, event)

    return router


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        payload = json.loads(body)
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None
