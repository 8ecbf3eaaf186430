"""What's where in a pipeline: every stage's release state side by side (``releaseflow state``),
each stage's timeline (``releaseflow timeline``) and its delivery figures (``releaseflow metrics``)
with a chart of them; read-only, over the engine's insights."""

from __future__ import annotations

from datetime import timedelta

from fastapi import FastAPI, Query, Request
from fastapi.responses import HTMLResponse

from releaseflow.application import Application
from releaseflow.domain.access import Role
from releaseflow.engine import history, insights
from releaseflow.engine.insights import StageMetrics
from releaseflow.web import session
from releaseflow.web.chart import BarChart, bar_chart
from releaseflow.web.kit import Kit

PIPELINE = "/p/{project_id}/{pipeline_id}"
TIMELINE_LIMIT = 15
DAYS = Query(30, ge=1, le=3650, description="the figures' window: this many days before now")


def figures_chart(figures: list[StageMetrics], days: int) -> BarChart:
    return bar_chart(
        f"Releases per stage over the last {days} days",
        ("deployed", "failed", "rolled back"),
        [
            (
                view.stage,
                (view.metrics.deployments, len(view.metrics.failed), len(view.metrics.rolled_back)),
            )
            for view in figures
        ],
    )


def register(app: FastAPI, kit: Kit) -> None:
    @app.get(PIPELINE + "/state", response_class=HTMLResponse)
    async def whats_where(
        request: Request, project_id: str, pipeline_id: str, days: int = DAYS
    ) -> HTMLResponse:
        core = kit.current()
        who = await session.allowed(core, request, Role.VIEWER, project_id)
        comparison = await insights.compare_pipeline(core.db, project_id, pipeline_id)
        timelines = {
            stage: await insights.stage_timeline(
                core.db, project_id, pipeline_id, stage, limit=TIMELINE_LIMIT
            )
            for stage in await stages_with_flows(core, project_id, pipeline_id)
        }
        return kit.page(
            request,
            "whats_where.html",
            who=who,
            project_id=project_id,
            pipeline_id=pipeline_id,
            comparison=comparison,
            timelines=timelines,
            days=days,
        )

    # The figures read every run of each stage (a long history takes seconds): the page loads them
    # after it is shown, so the state and the timelines never wait for them.
    @app.get(PIPELINE + "/state/figures", response_class=HTMLResponse)
    async def figures(request: Request, project_id: str, pipeline_id: str, days: int = DAYS) -> HTMLResponse:
        core = kit.current()
        await session.allowed(core, request, Role.VIEWER, project_id)
        now = core.clock.now()
        found = await insights.pipeline_metrics(
            core.db, project_id, pipeline_id, None, now=now, since=now - timedelta(days=days)
        )
        return kit.page(request, "_figures.html", figures=found, chart=figures_chart(found, days))


async def stages_with_flows(core: Application, project_id: str, pipeline_id: str) -> list[str]:
    overview = await history.pipeline_status(core.db, project_id, pipeline_id)
    return [header.stage for header in overview.stages if header.has_flow]
