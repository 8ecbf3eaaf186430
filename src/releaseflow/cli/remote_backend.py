"""The backend of a command that acts through a releaseflow server: its HTTP API, answers decoded by
``wire.decode`` into the read model's values, which the command renders as it would local ones.

Commands without ``--project`` act in the only project the token may act in (``GET /api/token``); a
run is looked up in each project the token may act in.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from releaseflow.cli.common import UsageError
from releaseflow.cli.remote import segment
from releaseflow.domain.access import ALL_PROJECTS
from releaseflow.domain.errors import NotFoundError
from releaseflow.engine.notifications import SECRET_BYTES
from releaseflow.wire import decode
from releaseflow.wire.runs import iso

if TYPE_CHECKING:
    from datetime import datetime

    from releaseflow.cli.backend import RunsQuery
    from releaseflow.cli.remote import Server
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
    from releaseflow.platform.driver import LogLines, LogSource
    from releaseflow.store.notifications import SubscriptionRecord

# How long one wait for a followed run's next event may last before the run is read again anyway.
WAIT_SECONDS = 10.0


class RemoteBackend:
    def __init__(self, server: Server) -> None:
        self.server = server
        self._identity: dict[str, Any] | None = None
        # The log route of each (project, source, key) found: a follower asks it every 0.5 s.
        self._log_paths: dict[tuple[str, LogSource, str], str] = {}

    async def identity(self) -> dict[str, Any]:
        """The calling token and the projects it may act in (``GET /api/token``), asked once."""
        if self._identity is None:
            self._identity = dict(await self.server.call("GET", "/api/token"))
        return self._identity

    async def projects(self) -> list[str]:
        return [str(project) for project in (await self.identity())["projects"]]

    async def project(self, wanted: str | None) -> str:
        if wanted is not None:
            return wanted
        projects = await self.projects()
        if len(projects) == 1:
            return projects[0]
        if not projects:
            raise NotFoundError("the server has no projects yet: apply a configuration first")
        raise UsageError(
            f"the token acts in several projects; name one with --project ({', '.join(projects)})"
        )

    async def stage(self, project: str, pipeline: str, stage: str) -> str:
        found = await self.server.call("GET", f"{_project_path(project)}/pipelines/{segment(pipeline)}")
        for header in found["stages"]:
            if str(header["stage"]).lower() == stage.lower():
                return str(header["stage"])
        # An archived stage is not listed, but its runs stay readable: the server resolves the name.
        return stage

    async def runs_page(self, project: str, pipeline: str, stage: str, query: RunsQuery) -> RunsPage:
        from releaseflow.engine.history import RunsPage

        params: dict[str, Any] = {"per_page": query.limit, "status": query.statuses}
        optional = {"kind": query.kind, "origin": query.origin, "cursor": query.cursor}
        params |= {key: value for key, value in optional.items() if value is not None}
        if query.concluded is not None:
            params["concluded"] = "true" if query.concluded else "false"
        answer = await self.server.call(
            "GET", f"{_stage_path(project, pipeline, stage)}/runs", params=params, whole=True
        )
        cursor_text = answer.get("pagination", {}).get("cursor")
        runs = [decode.run_summary(item) for item in answer["data"]["runs"]]
        return RunsPage(runs, None if cursor_text is None else int(cursor_text))

    async def run_detail(self, run_key: str, *, with_events: bool = True) -> RunDetail:
        return decode.run_detail(await self.server.call("GET", await self._run_path(run_key)))

    async def wait_for_change(self, run_id: str, after_event: int) -> None:
        """Wait on the run's event stream for its next event (the stream ends by itself after a while)."""
        params = {"after": after_event, "lifetime": WAIT_SECONDS}
        async for line in self.server.stream(f"{await self._run_path(run_id)}/events", params):
            if line.startswith("id:"):
                return

    async def start_run(self, project: str, pipeline: str, stage: str, request: RunRequest) -> RunDetail:
        body = _run_body(request)
        path = f"{_stage_path(project, pipeline, stage)}/runs"
        return decode.run_detail(await self.server.call("POST", path, body=body))

    async def abort_run(self, run_key: str) -> RunSummary:
        return decode.run_summary(await self.server.call("POST", f"{await self._run_path(run_key)}/abort"))

    async def rename_run(self, run_key: str, *, name: str | None, description: str | None) -> RunSummary:
        body = {
            key: value for key, value in (("name", name), ("description", description)) if value is not None
        }
        return decode.run_summary(await self.server.call("PATCH", await self._run_path(run_key), body=body))

    async def resume_run(self, run_key: str, edits: RunRequest) -> RunDetail:
        resumed = await self.server.call(
            "POST", f"{await self._run_path(run_key)}/resume", body=_run_body(edits)
        )
        return await self.run_detail(resumed["id"])

    async def rollback_outcome(self, run: RunSummary) -> list[TargetOutcome]:
        """The outcome the target run's rollbacks list gives for this one (no route gives it alone)."""
        if run.rollback_of is None:
            return []
        found = await self.server.call("GET", f"{await self._run_path(run.rollback_of)}/rollbacks")
        for item in found["rollbacks"]:
            if item["id"] == run.id:
                return decode.rollback_outcome(item["outcome"])
        return []

    async def rollback_preview(self, run_key: str) -> tuple[RunSummary, dict[str, Any]]:
        path = await self._run_path(run_key)
        target = decode.run_summary(await self.server.call("GET", path))
        return target, dict(await self.server.call("GET", f"{path}/rollback"))

    async def start_rollback(
        self, run_id: str, *, by: str, restore_config: bool, name: str | None
    ) -> tuple[RunDetail, int | None]:
        body = {"restoreConfig": restore_config, "name": name}
        started = await self.server.call("POST", f"{await self._run_path(run_id)}/rollback", body=body)
        return await self.run_detail(started["id"]), started.get("restoredVersion")

    async def restore_backup(
        self, project: str, pipeline: str, stage: str, addon: str, backup: str, *, by: str
    ) -> RunSummary:
        # Confirmed already: the command asked (or was given --yes) before this call.
        body = {"addon": addon, "backup": backup, "confirm": True}
        path = f"{_stage_path(project, pipeline, stage)}/restore-backup"
        return decode.run_summary(await self.server.call("POST", path, body=body))

    async def decide(self, run_key: str, node: str, *, by: str, comment: str, reject: bool) -> str:
        decision = "reject" if reject else "approve"
        path = f"{await self._run_path(run_key)}/approvals/{segment(node)}/{decision}"
        decided = await self.server.call("POST", path, body={"comment": comment})
        return str(decided["id"])

    async def pipelines(self, project: str) -> list[PipelineOverview]:
        found = await self.server.call("GET", f"{_project_path(project)}/pipelines")
        return [decode.pipeline_overview(item) for item in found["pipelines"]]

    async def pipeline_status(self, project: str, pipeline: str) -> PipelineOverview:
        found = await self.server.call("GET", f"{_project_path(project)}/pipelines/{segment(pipeline)}")
        return decode.pipeline_overview(found)

    async def release_state(
        self, project: str, pipeline: str, stage: str | None, *, history: bool = False, limit: int = 50
    ) -> list[ReleaseView]:
        where = f"{_project_path(project)}/pipelines/{segment(pipeline)}"
        params: dict[str, Any] = {}
        if stage is not None:
            where = _stage_path(project, pipeline, stage)
            params = {"history": "true" if history else "false", "limit": limit}
        found = await self.server.call("GET", f"{where}/state", params=params)
        return [decode.release(item) for item in found["releases"]]

    async def flow_versions(self, project: str, pipeline: str, stage: str) -> list[FlowVersionView]:
        found = await self.server.call("GET", f"{_stage_path(project, pipeline, stage)}/versions")
        return [decode.flow_version(item) for item in found["versions"]]

    async def flow_version(
        self, project: str, pipeline: str, stage: str, version: int | None
    ) -> FlowVersionView:
        if version is None:
            current = [view for view in await self.flow_versions(project, pipeline, stage) if view.current]
            if not current:
                raise NotFoundError(f"stage '{stage}' of pipeline '{project}/{pipeline}' has no release flow")
            version = current[0].version
        path = f"{_stage_path(project, pipeline, stage)}/versions/{version}"
        return decode.flow_version(await self.server.call("GET", path))

    async def rollbacks_of(self, run_key: str) -> tuple[str, list[tuple[RunSummary, list[TargetOutcome]]]]:
        path = await self._run_path(run_key)
        run_id = (await self.server.call("GET", path))["id"]
        found = await self.server.call("GET", f"{path}/rollbacks")
        return str(run_id), [
            (decode.run_summary(item), decode.rollback_outcome(item["outcome"]))
            for item in found["rollbacks"]
        ]

    async def pin(self, project: str, pipeline: str, stage: str, *, by: str, reason: str) -> Pin:
        path = f"{_stage_path(project, pipeline, stage)}/pin"
        made = decode.pin((await self.server.call("PUT", path, body={"reason": reason}))["pin"])
        if made is None:
            raise NotFoundError(f"the server made no pin on stage '{stage}'")
        return made

    async def unpin(self, project: str, pipeline: str, stage: str) -> Pin | None:
        cleared = await self.server.call("DELETE", f"{_stage_path(project, pipeline, stage)}/pin")
        return decode.pin(cleared["cleared"])

    async def plan(self, project: str, pipeline: str, stage: str, request: RunRequest) -> dict[str, Any]:
        path = f"{_stage_path(project, pipeline, stage)}/plan"
        return dict(await self.server.call("POST", path, body=_run_body(request)))

    async def stored_plan(self, run_key: str) -> tuple[str, Mapping[str, Any] | None]:
        path = await self._run_path(run_key)
        run_id = str((await self.server.call("GET", path))["id"])
        try:
            return run_id, await self.server.call("GET", f"{path}/plan")
        except NotFoundError:
            return run_id, None  # the run exists (read above): it keeps no plan

    async def waiting_approvals(self, person: str | None) -> list[WaitingApproval]:
        params = {} if person is None else {"for": person}
        found = await self.server.call("GET", "/api/approvals", params=params)
        return [decode.waiting_approval(item) for item in found["approvals"]]

    async def timeline(self, project: str, pipeline: str, stage: str, limit: int) -> list[TimelineEntry]:
        path = f"{_stage_path(project, pipeline, stage)}/timeline"
        return decode.timeline((await self.server.call("GET", path, params={"limit": limit}))["timeline"])

    async def diff_runs(self, first_key: str, second_key: str) -> RunDiff:
        second = str((await self.server.call("GET", await self._run_path(second_key)))["id"])
        path = f"{await self._run_path(first_key)}/diff/{segment(second)}"
        return decode.run_diff(await self.server.call("GET", path))

    async def compare_pipeline(self, project: str, pipeline: str) -> StageComparison:
        path = f"{_project_path(project)}/pipelines/{segment(pipeline)}/side-by-side"
        return decode.comparison(await self.server.call("GET", path))

    async def metrics(
        self, project: str, pipeline: str, stage: str | None, *, since: datetime | None
    ) -> list[dict[str, Any]]:
        if stage is None:
            overview = await self.pipeline_status(project, pipeline)
            stages = [header.stage for header in overview.stages if header.has_flow]
        else:
            stages = [stage]
        params = {} if since is None else {"since": iso(since)}
        return [
            dict(
                await self.server.call(
                    "GET", f"{_stage_path(project, pipeline, name)}/metrics", params=params
                )
            )
            for name in stages
        ]

    async def rotate_webhook(self, project: str, pipeline: str, stage: str) -> str:
        rotated = await self.server.call("POST", f"{_stage_path(project, pipeline, stage)}/webhook/rotate")
        return str(rotated["url"])

    async def trigger_log(
        self, project: str, pipeline: str, stage: str, limit: int
    ) -> tuple[str | None, list[LogEntry]]:
        where = f"{_stage_path(project, pipeline, stage)}/trigger-log"
        found = await self.server.call("GET", where, params={"limit": str(limit)})
        return found["webhookUrl"], [decode.trigger_entry(entry) for entry in found["log"]]

    async def subscribe(self, request: SubscriptionRequest) -> SubscriptionRecord:
        # The API takes the secret and never answers it: without one, the CLI makes it, as the engine does.
        secret = request.secret or secrets.token_urlsafe(SECRET_BYTES)
        body: dict[str, Any] = {"url": request.url, "kind": request.kind, "events": list(request.events)}
        body |= {"secret": secret, "pipeline": request.pipeline_id}
        added = await self.server.call("POST", _subscriptions_path(request.project_id), body=body)
        return decode.subscription(added, secret=secret)

    async def subscriptions(self, project: str | None) -> list[SubscriptionRecord]:
        found = await self.server.call("GET", _subscriptions_path(await self.project(project)))
        return [decode.subscription(each, secret="") for each in found["subscriptions"]]

    async def unsubscribe(self, subscription_id: str, project: str | None) -> None:
        where = f"{_subscriptions_path(await self.project(project))}/{segment(subscription_id)}"
        await self.server.call("DELETE", where)

    async def deliveries(
        self, subscription_id: str | None, project: str | None, limit: int
    ) -> list[DeliveryView]:
        params: dict[str, Any] = {"limit": limit}
        if subscription_id is not None:
            params["subscription"] = subscription_id
        where = f"{_project_path(await self.project(project))}/notifications/deliveries"
        found = await self.server.call("GET", where, params=params)
        return [decode.delivery(each) for each in found["deliveries"]]

    async def log_tail(self, project: str, source: LogSource, key: str, lines: int) -> list[str]:
        """The log's last lines, read through the record that made it."""
        path = await self._log_path(project, source, key)
        answer = await self.server.call("GET", path, params={"lines": lines}, text=True)
        # Each line ends with "\n" (api/records.py); a "\r" inside one is part of it, as locally.
        return str(answer).split("\n")[:-1]

    async def log_lines(
        self, project: str, source: LogSource, key: str, *, after: int | None, limit: int
    ) -> LogLines:
        """The log's complete lines numbered from its start: at most ``limit`` past line ``after``,
        or its last ``limit``."""
        params = {"limit": limit} | ({} if after is None else {"after": after})
        path = f"{await self._log_path(project, source, key)}/lines"
        return decode.log_lines(await self.server.call("GET", path, params=params))

    async def _log_path(self, project: str, source: LogSource, key: str) -> str:
        """The log route of the record that made the log (found once): a build or job run by the id
        its platform gave it, a service through its newest deploy (its log is the service's output,
        whichever deploy it is read through)."""
        if (project, source, key) not in self._log_paths:
            self._log_paths[project, source, key] = await self._find_log_path(project, source, key)
        return self._log_paths[project, source, key]

    async def _find_log_path(self, project: str, source: LogSource, key: str) -> str:
        from releaseflow.platform.driver import LogSource

        records = f"{_project_path(project)}/records"
        if source is LogSource.SERVICE:
            params = {"kind": "deploy", "resource": key, "per_page": 1}
        else:
            params = {"kind": str(source), "platformId": key, "per_page": 1}
        found = (await self.server.call("GET", records, params=params))["records"]
        if not found:
            raise NotFoundError(f"no {source} '{key}' in project '{project}' has a log")
        return f"{records}/{segment(str(found[0]['id']))}/log"

    async def tokens(self) -> list[TokenView]:
        """The tokens of each project the calling token may act in (and, for a token of every
        project, those of every project too)."""
        projects = list(await self.projects())
        if (await self.identity())["token"]["project"] == ALL_PROJECTS:
            projects.append(ALL_PROJECTS)
        found: list[TokenView] = []
        for project in projects:
            listed = await self.server.call("GET", f"{_project_path(project)}/tokens")
            found.extend(decode.token(item) for item in listed["tokens"])
        return sorted(found, key=lambda view: (view.created_at, view.id))

    async def create_token(
        self, *, name: str, project: str, role: Role, expires_at: datetime | None
    ) -> CreatedToken:
        from releaseflow.engine.tokens import CreatedToken

        body = {"name": name, "role": str(role), "expiresAt": None if expires_at is None else iso(expires_at)}
        made = await self.server.call("POST", f"{_project_path(project)}/tokens", body=body)
        return CreatedToken(decode.token(made), str(made["secret"]))

    async def revoke_token(self, key: str) -> TokenView:
        matches = [view for view in await self.tokens() if view.id == key] or [
            view for view in await self.tokens() if view.name == key
        ]
        if not matches:
            raise NotFoundError(f"no token with the id or name '{key}' (releaseflow token list shows them)")
        if len(matches) > 1:
            raise UsageError(f"several tokens are named '{key}': revoke one by its id")
        path = f"{_project_path(matches[0].project_id)}/tokens/{segment(matches[0].id)}"
        return decode.token(await self.server.call("DELETE", path))

    async def apply_configuration(self, config: Configuration, *, prune: bool, dry_run: bool) -> PlanOutline:
        """One project per file: the route applies one project, and a local apply changes all of a
        file's projects in one transaction, which calls per project could not match (a refusal in the
        second project would leave the first applied)."""
        from releaseflow.domain.config_document import configuration_document

        projects = [project.id for project in config.projects]
        if len(projects) != 1:
            described = f"{len(projects)} projects ({', '.join(projects)})" if projects else "no project"
            raise UsageError(
                f"apply through a server takes a file of one project, and this one describes {described}:"
                " apply a file per project"
            )
        path = f"{_project_path(projects[0])}/configuration/apply"
        params = {"prune": prune, "dryRun": dry_run}
        answer = await self.server.call("POST", path, params=params, body=configuration_document(config))
        return decode.plan_outline(answer)

    async def _run_path(self, run_key: str) -> str:
        """The run's route, in the project it belongs to: tried in each project the token may act in."""
        projects = await self.projects()
        for project in projects[:-1]:
            path = f"{_project_path(project)}/runs/{segment(run_key.strip())}"
            try:
                await self.server.call("GET", path)
            except NotFoundError:
                continue
            return path
        return f"{_project_path(projects[-1] if projects else '-')}/runs/{segment(run_key.strip())}"


def _run_body(request: RunRequest) -> dict[str, Any]:
    """A run request as the own routes' run body (start, resume, plan: ``api/own_run_body.py``),
    Northflank's ``RunReleaseFlowRequest`` plus the secret arguments."""
    body = {
        "name": request.name,
        "description": request.description,
        "arguments": dict(request.arguments),
        "overrides": dict(request.overrides),
        "releaseNodeOverrides": dict(request.release_node_overrides),
    }
    if request.secret_arguments:
        body["secretArguments"] = dict(request.secret_arguments)
    return body


def _project_path(project: str) -> str:
    return f"/api/projects/{segment(project)}"


def _subscriptions_path(project: str) -> str:
    return f"{_project_path(project)}/notifications/subscriptions"


def _stage_path(project: str, pipeline: str, stage: str) -> str:
    return f"{_project_path(project)}/pipelines/{segment(pipeline)}/stages/{segment(stage)}"
