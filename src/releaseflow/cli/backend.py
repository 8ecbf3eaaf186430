"""What a command reads and asks for, whether it acts on the local database or through a server.

A command talks to a ``Backend``: ``LocalBackend`` (cli/local_backend.py) calls the engine on the
database; ``RemoteBackend`` (cli/remote_backend.py) calls the server's HTTP API and decodes its
answers into the same read-model values. The command renders those values with the same code either
way, so its output is the same text locally and through ``--server``.

A command that can act through a server says so when it registers (``remote=True`` in its defaults);
the others refuse a server in one line (``refuse_remote``, with the ``local_only`` reason they give)
instead of quietly opening a local database.
"""

from __future__ import annotations

import argparse
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from releaseflow.cli.common import UsageError

if TYPE_CHECKING:
    from datetime import datetime

    from releaseflow.cli.remote import Target
    from releaseflow.domain.access import Role
    from releaseflow.domain.config_model import Configuration
    from releaseflow.domain.config_plan import PlanOutline
    from releaseflow.domain.release_history import StageComparison
    from releaseflow.domain.rollback import TargetOutcome
    from releaseflow.engine.approval_queue import WaitingApproval
    from releaseflow.engine.commands import RunRequest
    from releaseflow.engine.history import PipelineOverview, RunsPage
    from releaseflow.engine.insights import RunDiff, TimelineEntry
    from releaseflow.engine.notifications import DeliveryView, SubscriptionRequest
    from releaseflow.engine.pins import Pin
    from releaseflow.engine.queries import FlowVersionView, ReleaseView, RunDetail, RunSummary
    from releaseflow.engine.tokens import CreatedToken, TokenView
    from releaseflow.engine.triggers import LogEntry
    from releaseflow.settings import Settings
    from releaseflow.store.notifications import SubscriptionRecord

# Why a command cannot act through a server when nothing more particular is said.
LOCAL_ONLY = "it works on a local database only"


@dataclass(frozen=True)
class RunsQuery:
    """Which runs of a stage a list shows (the keywords of ``engine.history.runs_page``)."""

    statuses: list[str]
    kind: str | None
    origin: str | None
    concluded: bool | None
    cursor: int | None  # the page after this one (a cursor an earlier page gave)
    limit: int


class Backend(Protocol):
    async def project(self, wanted: str | None) -> str:
        """The project a command acts in: ``wanted``, or the only one there is (the token's, remotely)."""

    async def stage(self, project: str, pipeline: str, stage: str) -> str:
        """A stage's exact name, from any case of it."""

    async def runs_page(self, project: str, pipeline: str, stage: str, query: RunsQuery) -> RunsPage:
        """A page of the stage's runs, newest first."""

    async def run_detail(self, run_key: str, *, with_events: bool = True) -> RunDetail:
        """A run by its id or a unique start of it."""

    async def wait_for_change(self, run_id: str, after_event: int) -> None:
        """Return once the run may have changed after its event ``after_event`` (or a while passed)."""

    async def start_run(self, project: str, pipeline: str, stage: str, request: RunRequest) -> RunDetail: ...

    async def abort_run(self, run_key: str) -> RunSummary: ...

    async def rename_run(self, run_key: str, *, name: str | None, description: str | None) -> RunSummary: ...

    async def resume_run(self, run_key: str, edits: RunRequest) -> RunDetail:
        """A new run of a failed run that keeps what succeeded there."""

    async def rollback_outcome(self, run: RunSummary) -> list[TargetOutcome]:
        """Where each target of the rollback run ``run`` stands."""

    async def rollback_preview(self, run_key: str) -> tuple[RunSummary, dict[str, Any]]:
        """The run to roll back to, and what a rollback to it would do (``wire.control``'s preview)."""

    async def start_rollback(
        self, run_id: str, *, by: str, restore_config: bool, name: str | None
    ) -> tuple[RunDetail, int | None]:
        """Roll back to the run; the rollback run, and the flow version restored (None: none)."""

    async def restore_backup(
        self, project: str, pipeline: str, stage: str, addon: str, backup: str, *, by: str
    ) -> RunSummary:
        """Start a run that restores a backup a run of the stage took into the addon."""

    async def decide(self, run_key: str, node: str, *, by: str, comment: str, reject: bool) -> str:
        """Approve or reject a waiting Approval node; returns the run's id."""

    async def pipelines(self, project: str) -> list[PipelineOverview]: ...

    async def pipeline_status(self, project: str, pipeline: str) -> PipelineOverview: ...

    async def release_state(
        self, project: str, pipeline: str, stage: str | None, *, history: bool = False, limit: int = 50
    ) -> list[ReleaseView]:
        """What runs where: the current release of each service and job (of one stage, or all);
        ``history``: every deploy of the stage, newest first."""

    async def flow_versions(self, project: str, pipeline: str, stage: str) -> list[FlowVersionView]: ...

    async def flow_version(
        self, project: str, pipeline: str, stage: str, version: int | None
    ) -> FlowVersionView:
        """One version of the stage's release flow with its document (None: the current one)."""

    async def rollbacks_of(self, run_key: str) -> tuple[str, list[tuple[RunSummary, list[TargetOutcome]]]]:
        """The run's id, and the rollbacks that targeted it with where each left its targets."""

    async def pin(self, project: str, pipeline: str, stage: str, *, by: str, reason: str) -> Pin: ...

    async def unpin(self, project: str, pipeline: str, stage: str) -> Pin | None:
        """Clear the stage's pin; the pin it had (None: it had none)."""

    async def plan(self, project: str, pipeline: str, stage: str, request: RunRequest) -> dict[str, Any]:
        """What a run of the stage would do if started now (``domain.run_plan``'s document)."""

    async def stored_plan(self, run_key: str) -> tuple[str, Mapping[str, Any] | None]:
        """The run's id and the plan it was started with (None: it keeps none)."""

    async def waiting_approvals(self, person: str | None) -> list[WaitingApproval]: ...

    async def timeline(self, project: str, pipeline: str, stage: str, limit: int) -> list[TimelineEntry]:
        """Every change of the stage's release state with its run, newest first."""

    async def diff_runs(self, first_key: str, second_key: str) -> RunDiff: ...

    async def compare_pipeline(self, project: str, pipeline: str) -> StageComparison:
        """The pipeline's stages side by side."""

    async def metrics(
        self, project: str, pipeline: str, stage: str | None, *, since: datetime | None
    ) -> list[dict[str, Any]]:
        """Delivery figures (``wire.history.metrics``) of one stage, or of each stage with a flow."""

    async def rotate_webhook(self, project: str, pipeline: str, stage: str) -> str:
        """Give the stage a new webhook URL (the old one stops working); the new URL."""

    async def trigger_log(
        self, project: str, pipeline: str, stage: str, limit: int
    ) -> tuple[str | None, list[LogEntry]]:
        """The stage's webhook URL (None: it has none yet) and its trigger requests, newest first."""

    async def subscribe(self, request: SubscriptionRequest) -> SubscriptionRecord:
        """Add a notification subscription; its record carries the secret it signs with."""

    async def subscriptions(self, project: str | None) -> list[SubscriptionRecord]:
        """The subscriptions of a project (None: every one, locally; the token's only one, remotely).
        A subscription read through a server carries no secret (the API never answers it)."""

    async def unsubscribe(self, subscription_id: str, project: str | None) -> None:
        """Remove a subscription (of ``project`` when given); its delivery log is kept."""

    async def deliveries(
        self, subscription_id: str | None, project: str | None, limit: int
    ) -> list[DeliveryView]:
        """The newest deliveries, each with its attempts, of one subscription or a project's."""

    async def tokens(self) -> list[TokenView]: ...

    async def create_token(
        self, *, name: str, project: str, role: Role, expires_at: datetime | None
    ) -> CreatedToken: ...

    async def revoke_token(self, key: str) -> TokenView:
        """Revoke the token whose id or name is ``key``."""

    async def apply_configuration(self, config: Configuration, *, prune: bool, dry_run: bool) -> PlanOutline:
        """Make the configuration's projects match it (``engine.configuration``); the plan, applied
        unless ``dry_run``. Through a server, the configuration must hold exactly one project."""


def refuse_remote(args: argparse.Namespace, command: str) -> None:
    """Refuse a server for a command that cannot use one (exit 2, one line)."""
    if getattr(args, "remote", False):
        return
    reason = getattr(args, "local_only", None) or LOCAL_ONLY
    raise UsageError(f"releaseflow {command} cannot act through a server: {reason}")


@asynccontextmanager
async def open_backend(
    target: Target | None, settings: Settings, *, drivers: bool = False, create: bool = False
) -> AsyncIterator[Backend]:
    """The server's backend when there is a target, else the local database's (with the drivers,
    for a command that acts on infrastructure: a rollback checks its artifacts still exist; created
    when missing with ``create``, for a command that sets a new installation up: apply)."""
    if target is not None:
        from releaseflow.cli.remote import Server
        from releaseflow.cli.remote_backend import RemoteBackend

        server = Server(target)
        try:
            yield RemoteBackend(server)
        except (KeyError, TypeError, ValueError) as error:
            raise server.misunderstood(error) from None
        finally:
            await server.close()
        return
    from releaseflow.cli.local_backend import LocalBackend

    if drivers:
        from releaseflow.application import open_application

        async with open_application(settings) as app:
            yield LocalBackend(app.db, settings, app)
        return
    from releaseflow.cli.common import database

    async with database(settings, create=create) as db:
        yield LocalBackend(db, settings)
