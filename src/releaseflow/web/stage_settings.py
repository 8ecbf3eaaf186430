"""A stage's settings page: its triggers (from the release flow's template), its webhook URL and
trigger log (admins alone: the URL is a secret), its concurrency policy and whether it is paused, and
its pin. The flow's options live in its template, so changing them stores a new version through the
engine (as the API's update of a release flow does); pins go through the same commands as
``releaseflow pin`` and the API."""

from __future__ import annotations

import copy
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from releaseflow.domain.access import Role
from releaseflow.domain.errors import Issue, ValidationError
from releaseflow.domain.template import ConcurrencyPolicy
from releaseflow.engine import pins, release_flows
from releaseflow.engine.triggers import Triggers, webhook_url
from releaseflow.web.flow_history import STAGE, version_of
from releaseflow.web.kit import Kit, StageAt, field

POLICIES = tuple(policy.value for policy in ConcurrencyPolicy)


def with_options(document: Any, *, paused: bool, policy: str) -> dict[str, Any]:
    """The template ``document`` with its ``options`` set to ``paused`` and ``policy`` (the rest as is)."""
    if policy not in POLICIES:
        raise ValidationError(
            [Issue("concurrencyPolicy", f"'{policy}' is not a concurrency policy ({', '.join(POLICIES)})")],
            subject="settings",
        )
    changed: dict[str, Any] = copy.deepcopy(dict(document))
    changed["options"] = {**(changed.get("options") or {}), "paused": paused, "concurrencyPolicy": policy}
    return changed


def register(app: FastAPI, kit: Kit) -> None:
    def back(at: StageAt) -> Response:
        return RedirectResponse(f"{at.path}/settings", status_code=303)

    @app.get(STAGE + "/settings", response_class=HTMLResponse)
    async def settings(request: Request, project_id: str, pipeline_id: str, stage: str) -> HTMLResponse:
        at = await kit.stage_of(request, project_id, pipeline_id, stage, Role.VIEWER)
        flow = await release_flows.release_flow(at.core.db, project_id, pipeline_id, at.stage)
        url, log = None, None
        # The URL starts runs without a token, and the log repeats what webhook callers sent: admins
        # alone see them (as over the API).
        if at.who.allows(Role.ADMIN, project_id):
            triggers = Triggers(at.core.engine)
            token = await triggers.webhook_token(project_id, pipeline_id, at.stage)
            url = webhook_url(at.core.settings.base_url, token) if token else None
            log = await triggers.log(project_id, pipeline_id, at.stage)
        pin = await pins.current_pin(at.core.db, project_id, pipeline_id, at.stage)
        context = at.context()
        return kit.page(
            request, "settings.html", **context, flow=flow, policies=POLICIES, webhook=url, pin=pin, log=log
        )

    @app.post(STAGE + "/settings/webhook")
    async def rotate_webhook(request: Request, project_id: str, pipeline_id: str, stage: str) -> Response:
        at = await kit.stage_of(request, project_id, pipeline_id, stage, Role.ADMIN)
        await kit.checked_form(request)
        await Triggers(at.core.engine).rotate_webhook(project_id, pipeline_id, at.stage)
        return back(at)

    @app.post(STAGE + "/settings/options")
    async def options(request: Request, project_id: str, pipeline_id: str, stage: str) -> Response:
        at = await kit.stage_of(request, project_id, pipeline_id, stage, Role.ADMIN)
        form = await kit.checked_form(request)
        paused, policy = field(form, "paused") == "yes", field(form, "concurrencyPolicy")
        current = await version_of(at, None)
        changed = with_options(current.document, paused=paused, policy=policy)
        if changed != current.document:
            state = "paused" if paused else "not paused"
            origin = f"{at.who.name}: settings in the web interface ({state}, {policy})"
            await release_flows.update_release_flow(
                at.core.db, at.core.clock, project_id, pipeline_id, at.stage, changed, origin
            )
        return back(at)

    @app.post(STAGE + "/settings/pin")
    async def pin(request: Request, project_id: str, pipeline_id: str, stage: str) -> Response:
        at = await kit.stage_of(request, project_id, pipeline_id, stage, Role.DEPLOYER)
        form = await kit.checked_form(request)
        core = at.core
        await pins.pin_stage(
            core.db,
            core.clock,
            project_id,
            pipeline_id,
            at.stage,
            by=at.who.actor,
            reason=field(form, "reason"),
        )
        return back(at)

    @app.post(STAGE + "/settings/unpin")
    async def unpin(request: Request, project_id: str, pipeline_id: str, stage: str) -> Response:
        at = await kit.stage_of(request, project_id, pipeline_id, stage, Role.DEPLOYER)
        await kit.checked_form(request)
        await pins.unpin_stage(at.core.db, project_id, pipeline_id, at.stage)
        return back(at)
