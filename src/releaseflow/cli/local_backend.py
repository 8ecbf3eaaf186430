"""The backend of a command that acts on the local database: the engine's commands and read model."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from releaseflow.engine import queries

if TYPE_CHECKING:
    from releaseflow.application import Application
    from releaseflow.cli.backend import RunsQuery
    from releaseflow.domain.access import Role
    from releaseflow.domain.config_model import Configuration
    from releaseflow.domain.config_plan import PlanOutline
    from releaseflow.domain.release_history import StageComparison
    from releaseflow.domain.rollback import TargetOutcome
    from releaseflow.engine.approval_queue import WaitingApproval
    from releaseflow.engine.commands import Engine, RunRequest
    from releaseflow.engine.history import PipelineOverview, RunsPage
    from releaseflow.engine.insights import RunDiff, TimelineEntry
    from releaseflow.engine.notifications import DeliveryView, Notifications, SubscriptionRequest
    from releaseflow.engine.pins import Pin
    from releaseflow.engine.queries import FlowVersionView, ReleaseView, RunDetail, RunSummary
    from releaseflow.engine.rollback import Rollbacks
    from releaseflow.engine.tokens import CreatedToken, TokenView
    from releaseflow.engine.triggers import LogEntry
    from releaseflow.settings import Settings
    from releaseflow.store.database import Database
    from releaseflow.store.notifications import SubscriptionRecord

# How often a followed run is read again (another process may be working on it).
POLL_SECONDS = 0.3


def run_engine(db: Database, settings: Settings) -> Engine:
    """The engine of a command that makes or changes runs, built as ``serve`` builds its own: it holds
    the key of secret arguments (an engine without it cannot start a run that has any)."""
    from releaseflow.application import Application

    return Application(settings, db).engine


class LocalBackend:
    def __init__(self, db: Database, settings: Settings, app: Application | None = None) -> None:
        self.db = db
        self.settings = settings
        # The process's parts, with its drivers: only for commands that opened it (rollback).
        self.app = app

    def engine(self) -> Engine:
        """The engine of a command that makes or changes runs: it holds the key of secret arguments."""
        return run_engine(self.db, self.settings)

    def rollbacks(self) -> Rollbacks:
        from releaseflow.engine.rollback import Rollbacks

        assert self.app is not None, "open_backend(..., drivers=True) gives a rollback its drivers"
        return Rollbacks(self.app.engine, self.app.drivers)

    async def project(self, wanted: str | None) -> str:
        return await queries.resolve_project(self.db, wanted)

    async def stage(self, project: str, pipeline: str, stage: str) -> str:
        return await queries.resolve_stage(self.db, project, pipeline, stage)

    async def runs_page(self, project: str, pipeline: str, stage: str, query: RunsQuery) -> RunsPage:
        from releaseflow.engine.history import runs_page

        return await runs_page(self.db, project, pipeline, stage, **vars(query))

    async def run_detail(self, run_key: str, *, with_events: bool = True) -> RunDetail:
        run_id = await queries.resolve_run_id(self.db, run_key)
        return await queries.run_detail(self.db, run_id, with_events=with_events)

    async def wait_for_change(self, run_id: str, after_event: int) -> None:
        await asyncio.sleep(POLL_SECONDS)

    async def start_run(self, project: str, pipeline: str, stage: str, request: RunRequest) -> RunDetail:
        run = await self.engine().start_run(project, pipeline, stage, request)
        return await queries.run_detail(self.db, run.id)

    async def abort_run(self, run_key: str) -> RunSummary:
        run_id = await queries.resolve_run_id(self.db, run_key)
        await self.engine().abort_run(run_id, "aborted from the command line")
        return (await queries.run_detail(self.db, run_id, with_events=False)).run

    async def rename_run(self, run_key: str, *, name: str | None, description: str | None) -> RunSummary:
        run_id = await queries.resolve_run_id(self.db, run_key)
        await self.engine().rename_run(run_id, name=name, description=description)
        return (await queries.run_detail(self.db, run_id, with_events=False)).run

    async def resume_run(self, run_key: str, edits: RunRequest) -> RunDetail:
        failed = await queries.resolve_run_id(self.db, run_key)
        run = await self.engine().resume_run(failed, edits)
        return await queries.run_detail(self.db, run.id)

    async def rollback_outcome(self, run: RunSummary) -> list[TargetOutcome]:
        from releaseflow.engine.history import rollback_outcome

        return await rollback_outcome(self.db, run.id)

    async def rollback_preview(self, run_key: str) -> tuple[RunSummary, dict[str, Any]]:
        from releaseflow.wire.control import rollback_preview

        run_id = await queries.resolve_run_id(self.db, run_key)
        target = (await queries.run_detail(self.db, run_id, with_events=False)).run
        return target, rollback_preview(await self.rollbacks().preview(run_id))

    async def start_rollback(
        self, run_id: str, *, by: str, restore_config: bool, name: str | None
    ) -> tuple[RunDetail, int | None]:
        started = await self.rollbacks().start(run_id, by=by, restore_config=restore_config, name=name)
        return await queries.run_detail(self.db, started.run.id), started.restored_version

    async def restore_backup(
        self, project: str, pipeline: str, stage: str, addon: str, backup: str, *, by: str
    ) -> RunSummary:
        run = await self.rollbacks().restore_backup(project, pipeline, stage, addon, backup, by=by)
        return (await queries.run_detail(self.db, run.id, with_events=False)).run

    async def decide(self, run_key: str, node: str, *, by: str, comment: str, reject: bool) -> str:
        run_id = await queries.resolve_run_id(self.db, run_key)
        engine = self.engine()
        await (engine.reject if reject else engine.approve)(run_id, node, by, comment)
        return run_id

    async def pipelines(self, project: str) -> list[PipelineOverview]:
        from releaseflow.engine.history import pipelines

        return await pipelines(self.db, project)

    async def pipeline_status(self, project: str, pipeline: str) -> PipelineOverview:
        from releaseflow.engine.history import pipeline_status

        return await pipeline_status(self.db, project, pipeline)

    async def release_state(
        self, project: str, pipeline: str, stage: str | None, *, history: bool = False, limit: int = 50
    ) -> list[ReleaseView]:
        return await queries.release_state(self.db, project, pipeline, stage, history=history, limit=limit)

    async def flow_versions(self, project: str, pipeline: str, stage: str) -> list[FlowVersionView]:
        return await queries.flow_versions(self.db, project, pipeline, stage)

    async def flow_version(
        self, project: str, pipeline: str, stage: str, version: int | None
    ) -> FlowVersionView:
        return await queries.flow_version(self.db, project, pipeline, stage, version)

    async def rollbacks_of(self, run_key: str) -> tuple[str, list[tuple[RunSummary, list[TargetOutcome]]]]:
        from releaseflow.engine.history import rollback_outcome, rollbacks_of

        run_id = await queries.resolve_run_id(self.db, run_key)
        found = []
        for run in await rollbacks_of(self.db, run_id):
            summary = (await queries.run_detail(self.db, run.id, with_events=False)).run
            found.append((summary, await rollback_outcome(self.db, run.id)))
        return run_id, found

    async def pin(self, project: str, pipeline: str, stage: str, *, by: str, reason: str) -> Pin:
        from releaseflow.engine.clock import SystemClock
        from releaseflow.engine.pins import pin_stage

        return await pin_stage(self.db, SystemClock(), project, pipeline, stage, by=by, reason=reason)

    async def unpin(self, project: str, pipeline: str, stage: str) -> Pin | None:
        from releaseflow.engine.pins import unpin_stage

        return await unpin_stage(self.db, project, pipeline, stage)

    async def plan(self, project: str, pipeline: str, stage: str, request: RunRequest) -> dict[str, Any]:
        from releaseflow.engine.plan import plan_run

        return await plan_run(self.db, project, pipeline, stage, request, now=datetime.now(UTC))

    async def stored_plan(self, run_key: str) -> tuple[str, Mapping[str, Any] | None]:
        from releaseflow.engine.plan import stored_plan

        run_id = await queries.resolve_run_id(self.db, run_key)
        return run_id, await stored_plan(self.db, run_id)

    async def waiting_approvals(self, person: str | None) -> list[WaitingApproval]:
        from releaseflow.engine.approval_queue import waiting_approvals

        return await waiting_approvals(self.db, person)

    async def timeline(self, project: str, pipeline: str, stage: str, limit: int) -> list[TimelineEntry]:
        from releaseflow.engine.insights import stage_timeline

        return await stage_timeline(self.db, project, pipeline, stage, limit=limit)

    async def diff_runs(self, first_key: str, second_key: str) -> RunDiff:
        from releaseflow.engine.insights import diff_runs

        first = await queries.resolve_run_id(self.db, first_key)
        second = await queries.resolve_run_id(self.db, second_key)
        return await diff_runs(self.db, first, second)

    async def compare_pipeline(self, project: str, pipeline: str) -> StageComparison:
        from releaseflow.engine.insights import compare_pipeline

        return await compare_pipeline(self.db, project, pipeline)

    async def metrics(
        self, project: str, pipeline: str, stage: str | None, *, since: datetime | None
    ) -> list[dict[str, Any]]:
        from releaseflow.engine.insights import pipeline_metrics
        from releaseflow.wire.history import metrics

        now = datetime.now(UTC)
        found = await pipeline_metrics(self.db, project, pipeline, stage, now=now, since=since)
        return [metrics(each) for each in found]

    async def rotate_webhook(self, project: str, pipeline: str, stage: str) -> str:
        from releaseflow.engine.triggers import Triggers, webhook_url

        token = await Triggers(self.engine()).rotate_webhook(project, pipeline, stage)
        return webhook_url(self.settings.base_url, token)

    async def trigger_log(
        self, project: str, pipeline: str, stage: str, limit: int
    ) -> tuple[str | None, list[LogEntry]]:
        from releaseflow.engine.triggers import Triggers, webhook_url

        triggers = Triggers(self.engine())
        token = await triggers.webhook_token(project, pipeline, stage)
        entries = await triggers.log(project, pipeline, stage, limit=limit)
        return (None if token is None else webhook_url(self.settings.base_url, token)), entries

    def notifications(self) -> Notifications:
        from releaseflow.engine.clock import SystemClock
        from releaseflow.engine.notifications import Notifications

        return Notifications(self.db, SystemClock())

    async def subscribe(self, request: SubscriptionRequest) -> SubscriptionRecord:
        return await self.notifications().subscribe(request)

    async def subscriptions(self, project: str | None) -> list[SubscriptionRecord]:
        return await self.notifications().subscriptions(project)

    async def unsubscribe(self, subscription_id: str, project: str | None) -> None:
        from releaseflow.domain.errors import NotFoundError

        if project is not None and subscription_id not in {
            record.id for record in await self.subscriptions(project)
        }:
            raise NotFoundError(f"no notification subscription '{subscription_id}' in project '{project}'")
        await self.notifications().unsubscribe(subscription_id)

    async def deliveries(
        self, subscription_id: str | None, project: str | None, limit: int
    ) -> list[DeliveryView]:
        return await self.notifications().deliveries(
            subscription_id=subscription_id, project_id=project, limit=limit
        )

    async def tokens(self) -> list[TokenView]:
        from releaseflow.engine.tokens import list_tokens

        return await list_tokens(self.db)

    async def create_token(
        self, *, name: str, project: str, role: Role, expires_at: datetime | None
    ) -> CreatedToken:
        from releaseflow.engine.clock import SystemClock
        from releaseflow.engine.tokens import create_token

        return await create_token(
            self.db,
            SystemClock(),
            name=name,
            project_id=project,
            role=role,
            created_by="command line",
            expires_at=expires_at,
        )

    async def revoke_token(self, key: str) -> TokenView:
        from releaseflow.engine.clock import SystemClock
        from releaseflow.engine.tokens import revoke_token

        return await revoke_token(self.db, SystemClock(), key)

    async def apply_configuration(self, config: Configuration, *, prune: bool, dry_run: bool) -> PlanOutline:
        from releaseflow.engine.clock import SystemClock
        from releaseflow.engine.configuration import apply_configuration

        plan = await apply_configuration(self.db, config, SystemClock(), prune=prune, dry_run=dry_run)
        return plan.outline()
