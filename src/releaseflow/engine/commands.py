"""The engine's commands: every write that api, web and cli ask for goes through here."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from releaseflow.domain.concurrency import AdmissionAction
from releaseflow.domain.config_model import NAME_PATTERN
from releaseflow.domain.errors import ConflictError, Issue, NotFoundError, ValidationError
from releaseflow.domain.run_origin import RunOrigin
from releaseflow.domain.statuses import (
    NodeStatus,
    RunStatus,
)
from releaseflow.domain.text import unsafe_characters
from releaseflow.engine import pins
from releaseflow.engine.clock import Clock
from releaseflow.engine.dry_run import initial_max_attempts
from releaseflow.engine.notifications import Notifications
from releaseflow.engine.plan import PreparedRun, describe_plan, prepare_document, prepare_run, queueing
from releaseflow.engine.plan import current_flow as _flow
from releaseflow.engine.resume import carried_fields, carried_nodes, resumption
from releaseflow.engine.run_events import AbortRequested, Admitted, Decided, apply_event
from releaseflow.engine.secrets import SecretKeyError, seal_arguments
from releaseflow.engine.templates import TemplateCache
from releaseflow.engine.transitions import transition_run
from releaseflow.store import runs as run_store
from releaseflow.store.database import Database, Transaction
from releaseflow.store.records import FlowRecord, NodeRecord, RunRecord

T = TypeVar("T")

# How often a command's transaction is run when the database keeps ending it to settle conflicts.
CONFLICT_ATTEMPTS = 3
NAME_MIN = 3
NAME_LIMIT = 39
DESCRIPTION_LIMIT = 200
# The event of a run started by hand (or by rollback) while its flow is paused.
PAUSED_BY_HAND = "the release flow is paused: its triggers start no run; this one was started by hand"


class PausedError(ConflictError):
    """A git push or webhook asked for a run of a paused release flow (``options.paused``)."""


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
    # Values of ``${refs.<trigger>.*}`` by trigger ref (the event that started the run, a webhook's
    # parameters); over ``overrides`` keyed by a trigger's ref and the trigger's own configuration.
    trigger_refs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)


@dataclass(frozen=True)
class _Labels:
    """What kind of run is created, and the run a rollback returns to."""

    kind: str = "release"
    rollback_of: str | None = None


# The columns of a node row that a resume may fill from the run it resumes (carried_fields): every
# row of one insert has the same columns.
_FRESH_NODE: dict[str, Any] = {
    "status": str(NodeStatus.PENDING),
    "attempt": 0,
    "started_at": None,
    "ended_at": None,
    "code": None,
    "data": None,
    "attempts": [],
    "backoff_seconds": None,
    "timeout_seconds": None,
    "cause": None,
    "carried_from": None,
}


@dataclass(frozen=True)
class _NewRun:
    """What a run about to be written is made of."""

    id: str
    prepared: PreparedRun
    request: RunRequest
    labels: _Labels
    resumed_from: str | None
    carried: Mapping[str, NodeRecord]


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

            async def create() -> RunRecord:
                now = self.clock.now()
                prepared = await prepare_run(tx, flow, flow.current_version, request, now=now)
                return await self._create_run(tx, prepared, request)

            made = await self._unless_pinned(tx, flow, request.origin, create)
        if isinstance(made, RunRecord):
            return made
        # Raised once the refusal is committed: it stays recorded as a skipped trigger.
        raise pins.PinnedError(made)

    async def resume_run(self, run_id: str, edits: RunRequest) -> RunRecord:
        """A new run, linked to the failed run ``run_id``, that keeps the nodes that succeeded there and
        runs the rest again (``engine/resume.py``); ``edits`` change its arguments and overrides.

        Refused (ConflictError) unless the run failed and no other resume of it is under way or done.
        A resume is a run like any other under the stage's pin: by hand it clears the pin.
        """
        _check_run_labels(edits.name, edits.description)
        async with self.db.transaction() as tx:
            wanted = await resumption(tx, run_id, edits, self.templates)

            async def create() -> RunRecord:
                now = self.clock.now()
                prepared = await prepare_run(tx, wanted.flow, wanted.failed.flow_version, wanted, now=now)
                carried = await carried_nodes(tx, wanted.failed, prepared.template)
                return await self._create_run(
                    tx, prepared, edits, resumed_from=wanted.failed.id, carried=carried
                )

            made = await self._unless_pinned(tx, wanted.flow, edits.origin, create)
        if isinstance(made, RunRecord):
            return made
        raise pins.PinnedError(made)

    async def _unless_pinned(
        self, tx: Transaction, flow: FlowRecord, origin: RunOrigin, create: Callable[[], Awaitable[RunRecord]]
    ) -> RunRecord | str:
        """The run ``create`` makes, if the stage's pin lets a run of this origin in (a run by hand
        clears the pin, and says so); otherwise why not (the refusal is recorded in ``tx``)."""
        admission = await pins.admit_origin(tx, flow.id, origin, self.clock.now())
        if admission.refusal is not None:
            return admission.refusal
        run = await create()
        if admission.cleared is not None:
            status = str(run.status)
            cause = f"cleared the stage's pin ({admission.cleared.describe()})"
            run_store.append_event(tx, run.id, None, self.clock.now(), status, status, cause)
        return run

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
        prepared = await prepare_document(tx, flow, flow.current_version, dict(document), request, now=now)
        return await self._create_run(tx, prepared, request, labels=_Labels(kind, rollback_of))

    async def _create_run(
        self,
        tx: Transaction,
        prepared: PreparedRun,
        request: RunRequest,
        *,
        labels: _Labels = _Labels(),
        resumed_from: str | None = None,
        carried: Mapping[str, NodeRecord] | None = None,
    ) -> RunRecord:
        """Admit a prepared run under its flow's policy and write it with its plan."""
        now = self.clock.now()
        carried = carried or {}
        run_id = str(uuid.uuid4())
        new = _NewRun(run_id, prepared, request, labels, resumed_from, carried)
        if prepared.template.paused and request.origin.automatic:
            raise PausedError(
                f"{request.origin.label()} did not start a run: the release flow is paused"
                " (options.paused); runs by hand still start"
            )
        if prepared.problems:
            plan = await describe_plan(tx, prepared, None, now)
            await self._insert_run(tx, new, RunStatus.PENDING, "", plan, with_nodes=False)
            return await self._fail_before_start(tx, run_id, prepared.problems)
        queue = await queueing(tx, prepared, labels.kind)
        decision = queue.admission
        if decision.action is AdmissionAction.REJECT:
            raise ConflictError(f"run refused: {decision.reason}")
        waits = decision.action is AdmissionAction.QUEUE
        status = RunStatus.QUEUED if waits else RunStatus.PENDING
        plan = await describe_plan(tx, prepared, queue, now, carried_over=sorted(carried))
        await self._insert_run(tx, new, status, decision.reason, plan)
        if prepared.template.paused:
            run_store.append_event(tx, run_id, None, now, str(status), str(status), PAUSED_BY_HAND)
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

    def _sealed(self, prepared: PreparedRun) -> dict[str, Any]:
        """The arguments as stored: secret ones encrypted (the dry run saw them in the clear)."""
        if not prepared.secret_keys:
            return dict(prepared.arguments)
        if self.templates.secrets is None:
            raise SecretKeyError("secret arguments need the secret key: this process was started without one")
        return seal_arguments(prepared.arguments, prepared.secret_keys, self.templates.secrets)

    async def _insert_run(
        self,
        tx: Transaction,
        new: _NewRun,
        status: RunStatus,
        waiting_reason: str,
        plan: Mapping[str, Any],
        *,
        with_nodes: bool = True,
    ) -> None:
        now = self.clock.now()
        prepared, request, run_id = new.prepared, new.request, new.id
        triggered_by = request.triggered_by or request.origin.label()
        await run_store.insert_run(
            tx,
            {
                "id": run_id,
                "flow_id": prepared.flow.id,
                "flow_version": prepared.version,
                "seq": await run_store.next_run_seq(tx, prepared.flow.id),
                "kind": new.labels.kind,
                "rollback_of": new.labels.rollback_of,
                "triggered_by": triggered_by,
                "origin_kind": str(request.origin.kind),
                "origin_by": request.origin.by,
                "name": request.name or None,
                "description": request.description,
                "status": str(status),
                "waiting_reason": waiting_reason or None,
                "arguments": self._sealed(prepared),
                "secret_arguments": list(prepared.secret_keys),
                "overrides": dict(prepared.overrides),
                "release_node_overrides": dict(prepared.release_node_overrides),
                "document": dict(prepared.document),
                "trigger_refs": dict(prepared.trigger_refs),
                "created_at": now,
                "updated_at": now,
                "resumed_from": new.resumed_from,
                "plan": dict(plan),
            },
        )
        resumes = f"; resumes run {new.resumed_from}" if new.resumed_from else ""
        cause = f"created ({triggered_by}){resumes}" + (f"; {waiting_reason}" if waiting_reason else "")
        run_store.append_event(tx, run_id, None, now, None, str(status), cause)
        if not with_nodes:
            return
        template = prepared.template
        parents = template.parents()
        rows = []
        for node in template.nodes():
            row = {
                "id": str(uuid.uuid4()),
                "run_id": run_id,
                "path": node.path,
                "parent_path": parents[node.path].path if node.path in parents else None,
                "kind": node.kind,
                "ref": node.ref,
                **_FRESH_NODE,
                "max_attempts": initial_max_attempts(node, prepared.arguments, now),
            }
            if node.path in new.carried:
                row.update(carried_fields(new.carried[node.path]))
                run_store.append_event(tx, run_id, node.path, now, None, row["status"], row["cause"])
            rows.append(row)
        await run_store.insert_node_runs(tx, rows)

    async def _fail_before_start(self, tx: Transaction, run_id: str, problems: list[Issue]) -> RunRecord:
        message = "dry run failed, no node was started:\n" + "\n".join(f"  {issue}" for issue in problems)
        await transition_run(
            tx, run_id, RunStatus.PENDING, RunStatus.FAILED, "dry run failed", self.clock.now(), error=message
        )
        run = await run_store.get_run(tx, run_id)
        assert run is not None
        return run

    async def abort_run(self, run_id: str, cause: str = "aborted by request") -> RunRecord:
        async def abort(tx: Transaction) -> RunRecord:
            advanced = await apply_event(tx, run_id, AbortRequested(cause), self.clock.now(), self.templates)
            return advanced.run

        return await self._in_one_transaction(abort)

    async def _in_one_transaction(self, body: Callable[[Transaction], Awaitable[T]]) -> T:
        """Run a command's transaction; again when the database ended it to settle a conflict.

        A command that changes a run races the workers moving it (an abort while a worker begins
        the next node: PostgreSQL may pick the abort as a deadlock's victim). The loser is rolled
        back whole, so running it again is what the person asked for, not a second effect.
        """
        for attempt in range(1, CONFLICT_ATTEMPTS + 1):
            try:
                async with self.db.transaction() as tx:
                    return await body(tx)
            except Exception as error:
                if attempt == CONFLICT_ATTEMPTS or not self.db.is_conflict(error):
                    raise
        raise AssertionError("unreachable: the last attempt returns or raises")

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

        async def decide(tx: Transaction) -> None:
            # The decision, the planning it unblocks and the admission of a queued run: one transaction.
            decided = Decided(key, approve, by, comment)
            await apply_event(tx, run_id, decided, self.clock.now(), self.templates)

        await self._in_one_transaction(decide)


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
