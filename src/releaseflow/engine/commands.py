"""The engine's commands: every write that api, web and cli ask for goes through here."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from releaseflow.domain.concurrency import AdmissionAction, admit
from releaseflow.domain.config_model import NAME_PATTERN
from releaseflow.domain.errors import ConflictError, Issue, NotFoundError, ValidationError
from releaseflow.domain.overrides import apply_run_overrides
from releaseflow.domain.rollback import admission_policy
from releaseflow.domain.run_origin import RunOrigin
from releaseflow.domain.statuses import (
    NodeStatus,
    RunStatus,
)
from releaseflow.domain.template import Template
from releaseflow.domain.template_parser import parse_template
from releaseflow.domain.template_rules import check_refs, check_template
from releaseflow.domain.text import unsafe_characters
from releaseflow.engine import pins
from releaseflow.engine.clock import Clock
from releaseflow.engine.dry_run import dry_run, initial_max_attempts
from releaseflow.engine.notifications import Notifications
from releaseflow.engine.run_events import AbortRequested, Admitted, Decided, apply_event
from releaseflow.engine.scope import stage_scope
from releaseflow.engine.secrets import SecretKeyError, seal_arguments
from releaseflow.engine.templates import TemplateCache
from releaseflow.engine.transitions import transition_run
from releaseflow.store import catalog
from releaseflow.store import runs as run_store
from releaseflow.store.database import Database, Transaction
from releaseflow.store.records import FlowRecord, RunRecord

NAME_MIN = 3
NAME_LIMIT = 39
DESCRIPTION_LIMIT = 200


@dataclass(frozen=True)
class RunRequest:
    name: str | None = None
    description: str = ""
    arguments: Mapping[str, Any] = field(default_factory=dict)
    # Arguments stored encrypted and shown masked (with the template's ``secretArguments``).
    secret_arguments: Mapping[str, Any] = field(default_factory=dict)
    overrides: Mapping[str, Any] = field(default_factory=dict)
    release_node_overrides: Mapping[str, Any] = field(default_factory=dict)
    # What started the run, structured (shown in lists; a pinned stage refuses automatic origins).
    origin: RunOrigin = field(default_factory=RunOrigin)
    # A free label for the run's creator ("benchmark", "demo"); empty: the origin's own words.
    triggered_by: str = ""


@dataclass(frozen=True)
class _Labels:
    """What kind of run is created, the run a rollback returns to, and which arguments are secret."""

    kind: str = "release"
    rollback_of: str | None = None
    secret_keys: tuple[str, ...] = ()


class Engine:
    """Commands on runs. One instance per process; cheap to create."""

    def __init__(self, db: Database, clock: Clock, templates: TemplateCache | None = None) -> None:
        self.db = db
        self.clock = clock
        self.templates = templates or TemplateCache()
        # Subscriptions to run events and their delivery log (engine/notifications.py).
        self.notifications = Notifications(db, clock)

    async def start_run(
        self, project_id: str, pipeline_id: str, stage: str, request: RunRequest
    ) -> RunRecord:
        """Create a run of the stage's current release flow and admit it under the flow's policy.

        A request that cannot make a run (bad overrides, a template that no longer fits the stage)
        raises ValidationError and creates nothing. A run whose expressions cannot resolve is
        recorded as failed before any node starts, with every unresolvable expression named. A
        pinned stage refuses automatic origins (PinnedError, the refusal recorded); a run by hand
        clears the pin.
        """
        _check_run_labels(request.name, request.description)
        async with self.db.transaction() as tx:
            flow = await _flow(tx, project_id, pipeline_id, stage)
            admission = await pins.admit_origin(tx, flow.id, request.origin, self.clock.now())
            if admission.refusal is None:
                version = await catalog.get_flow_version(tx, flow.id, flow.current_version)
                assert version is not None
                document = apply_run_overrides(
                    version["document"], request.overrides or None, request.release_node_overrides or None
                )
                run = await self.create_run(tx, flow, document, request)
                if admission.cleared is not None:
                    status = str(run.status)
                    cause = f"cleared the stage's pin ({admission.cleared.describe()})"
                    run_store.append_event(tx, run.id, None, self.clock.now(), status, status, cause)
                return run
        # Raised once the refusal is committed: it stays recorded as a skipped trigger.
        raise pins.PinnedError(admission.refusal)

    async def create_run(
        self,
        tx: Transaction,
        flow: FlowRecord,
        document: Mapping[str, Any],
        request: RunRequest,
        *,
        kind: str = "release",
        rollback_of: str | None = None,
    ) -> RunRecord:
        """Check ``document`` against the stage, dry-run it and admit the new run under its policy.

        Shared by releases and rollbacks (whose document is derived from recorded state), so both
        run through the same checks, admission, drivers, statuses and retries.
        """
        now = self.clock.now()
        template = parse_template(document)
        scope = await stage_scope(tx, flow.project_id, flow.pipeline_id, flow.stage)
        issues = check_template(template, scope) + check_refs(template)
        if issues:
            raise ValidationError(issues, subject=f"release flow {flow.pipeline_id}/{flow.stage}")
        arguments = {**template.arguments, **request.arguments, **request.secret_arguments}
        problems = dry_run(template, arguments, now=now, secret_seed=flow.secret_seed)
        secret_keys = tuple(
            sorted({*template.secret_arguments, *request.secret_arguments} & arguments.keys())
        )
        arguments = self._sealed(arguments, secret_keys)
        run_id = str(uuid.uuid4())
        labels = _Labels(kind, rollback_of, secret_keys)
        if problems:
            await self._insert_run(
                tx,
                run_id,
                flow,
                template,
                document,
                arguments,
                request,
                labels,
                RunStatus.PENDING,
                "",
                with_nodes=False,
            )
            return await self._fail_before_start(tx, run_id, problems)
        holding = await run_store.runs_holding_slot(tx, flow.id)
        waiting = await run_store.queued_runs(tx, flow.id)
        policy = admission_policy(
            template.concurrency_policy, kind, [run.kind for run in [*holding, *waiting]]
        )
        decision = admit(policy, [run.id for run in holding], [run.id for run in waiting])
        if decision.action is AdmissionAction.REJECT:
            raise ConflictError(f"run refused: {decision.reason}")
        waits = decision.action is AdmissionAction.QUEUE
        status = RunStatus.QUEUED if waits else RunStatus.PENDING
        await self._insert_run(
            tx, run_id, flow, template, document, arguments, request, labels, status, decision.reason
        )
        for superseded in decision.drop_queued:
            await transition_run(
                tx, superseded, RunStatus.QUEUED, RunStatus.ABORTED, f"superseded by run {run_id}", now
            )
        for replaced in decision.abort_active:
            abort = AbortRequested(f"replaced by run {run_id}")
            await apply_event(tx, replaced, abort, self.clock.now(), self.templates)
        if not waits:
            # The first nodes become due now, after the run and its nodes were written.
            await apply_event(tx, run_id, Admitted(), self.clock.now(), self.templates)
        return await _run(tx, run_id)

    def _sealed(self, arguments: dict[str, Any], secret_keys: tuple[str, ...]) -> dict[str, Any]:
        """The arguments as stored: secret ones encrypted (the dry run saw them in the clear)."""
        if not secret_keys:
            return arguments
        if self.templates.secrets is None:
            raise SecretKeyError("secret arguments need the secret key: this process was started without one")
        return seal_arguments(arguments, secret_keys, self.templates.secrets)

    async def _insert_run(
        self,
        tx: Transaction,
        run_id: str,
        flow: FlowRecord,
        template: Template,
        document: Mapping[str, Any],
        arguments: Mapping[str, Any],
        request: RunRequest,
        labels: _Labels,
        status: RunStatus,
        waiting_reason: str,
        *,
        with_nodes: bool = True,
    ) -> None:
        now = self.clock.now()
        triggered_by = request.triggered_by or request.origin.label()
        await run_store.insert_run(
            tx,
            {
                "id": run_id,
                "flow_id": flow.id,
                "flow_version": flow.current_version,
                "seq": await run_store.next_run_seq(tx, flow.id),
                "kind": labels.kind,
                "rollback_of": labels.rollback_of,
                "triggered_by": triggered_by,
                "origin_kind": str(request.origin.kind),
                "origin_by": request.origin.by,
                "name": request.name or None,
                "description": request.description,
                "status": str(status),
                "waiting_reason": waiting_reason or None,
                "arguments": dict(arguments),
                "secret_arguments": list(labels.secret_keys),
                "overrides": dict(request.overrides),
                "release_node_overrides": dict(request.release_node_overrides),
                "document": dict(document),
                "created_at": now,
                "updated_at": now,
            },
        )
        cause = f"created ({triggered_by})" + (f"; {waiting_reason}" if waiting_reason else "")
        run_store.append_event(tx, run_id, None, now, None, str(status), cause)
        if not with_nodes:
            return
        parents = template.parents()
        await run_store.insert_node_runs(
            tx,
            (
                {
                    "id": str(uuid.uuid4()),
                    "run_id": run_id,
                    "path": node.path,
                    "parent_path": parents[node.path].path if node.path in parents else None,
                    "kind": node.kind,
                    "ref": node.ref,
                    "status": str(NodeStatus.PENDING),
                    "max_attempts": initial_max_attempts(node, arguments, now),
                }
                for node in template.nodes()
            ),
        )

    async def _fail_before_start(self, tx: Transaction, run_id: str, problems: list[Issue]) -> RunRecord:
        message = "dry run failed, no node was started:\n" + "\n".join(f"  {issue}" for issue in problems)
        await transition_run(
            tx, run_id, RunStatus.PENDING, RunStatus.FAILED, "dry run failed", self.clock.now(), error=message
        )
        run = await run_store.get_run(tx, run_id)
        assert run is not None
        return run

    async def abort_run(self, run_id: str, cause: str = "aborted by request") -> RunRecord:
        async with self.db.transaction() as tx:
            advanced = await apply_event(tx, run_id, AbortRequested(cause), self.clock.now(), self.templates)
            return advanced.run

    async def rename_run(
        self, run_id: str, *, name: str | None = None, description: str | None = None
    ) -> RunRecord:
        _check_run_labels(name, description)
        fields: dict[str, Any] = {"updated_at": self.clock.now()}
        if name is not None:
            fields["name"] = name or None
        if description is not None:
            fields["description"] = description
        async with self.db.transaction() as tx:
            before = await _run(tx, run_id)
            await run_store.update_run(tx, run_id, None, fields)
            run = await run_store.get_run(tx, run_id)
            assert run is not None
            changes = []
            if run.name != before.name:
                changes.append(f"name {before.display_name!r} -> {run.display_name!r}")
            if run.description != before.description:
                changes.append(f"description {before.description!r} -> {run.description!r}")
            if changes:
                # The run's status does not change: the event says so by repeating it.
                status = str(run.status)
                run_store.append_event(
                    tx, run_id, None, fields["updated_at"], status, status, "; ".join(changes)
                )
            return run

    async def approve(self, run_id: str, node_ref_or_path: str, approver: str, comment: str = "") -> None:
        """Approve a waiting Approval node, decided in this transaction (it succeeds once enough
        distinct people approved)."""
        await self._decide(run_id, node_ref_or_path, approve=True, by=approver, comment=comment)

    async def reject(self, run_id: str, node_ref_or_path: str, rejecter: str, reason: str = "") -> None:
        """Reject a waiting Approval node: it fails at once with the reason (no retry)."""
        await self._decide(run_id, node_ref_or_path, approve=False, by=rejecter, comment=reason)

    async def _decide(self, run_id: str, key: str, *, approve: bool, by: str, comment: str) -> None:
        if not by.strip():
            raise ValidationError([Issue("by", "say who decides")], subject="approval")
        async with self.db.transaction() as tx:
            # The decision, the planning it unblocks and the admission of a queued run: one transaction.
            decided = Decided(key, approve, by, comment)
            await apply_event(tx, run_id, decided, self.clock.now(), self.templates)


async def _flow(tx: Transaction, project_id: str, pipeline_id: str, stage: str) -> FlowRecord:
    flow = await catalog.get_flow(tx, project_id, pipeline_id, stage)
    if flow is None:
        if await catalog.get_flow(tx, project_id, pipeline_id, stage, include_archived=True):
            raise ConflictError(
                f"the release flow of stage '{stage}' of pipeline '{project_id}/{pipeline_id}' is archived"
                " (pruned from the configuration); declare it in the file again to restore it"
            )
        raise NotFoundError(f"no release flow for stage '{stage}' of pipeline '{project_id}/{pipeline_id}'")
    return flow


async def _run(tx: Transaction, run_id: str) -> RunRecord:
    run = await run_store.get_run(tx, run_id)
    if run is None:
        raise NotFoundError(f"no run '{run_id}'")
    return run


def _check_run_labels(name: str | None, description: str | None) -> None:
    """Northflank's rules for a run's display name (compat 4.x: 3 to 39 characters, letters and digits
    in words joined by single hyphens or spaces) and description (at most 200 characters); neither
    may hold control or invisible formatting characters. An empty name means "no name"."""
    issues = []
    if name:
        problem = unsafe_characters(name)
        if problem is None and not (NAME_MIN <= len(name) <= NAME_LIMIT and NAME_PATTERN.match(name)):
            problem = (
                f"'{name}' is not a valid run name: {NAME_MIN} to {NAME_LIMIT} characters; letters and "
                "digits, starting with a letter, in words joined by single hyphens or spaces"
            )
        if problem is not None:
            issues.append(Issue("name", problem))
    if description:
        if len(description) > DESCRIPTION_LIMIT:
            issues.append(Issue("description", f"must be at most {DESCRIPTION_LIMIT} characters"))
        elif (problem := unsafe_characters(description)) is not None:
            issues.append(Issue("description", problem))
    if issues:
        raise ValidationError(issues, subject="run request")
