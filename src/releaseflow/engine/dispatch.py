"""Beginning an attempt: a claimed node gets its code resolved and becomes running.

The resolved code is what the run view shows as the node's code, and what the executor acts on.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from releaseflow.domain import expressions
from releaseflow.domain.errors import ExpressionError
from releaseflow.domain.retry import resolve_settings
from releaseflow.domain.secret_values import hide, reveal
from releaseflow.domain.statuses import NodeStatus, RunStatus
from releaseflow.domain.template import NodeKind
from releaseflow.engine import approvals
from releaseflow.engine.dry_run import initial_max_attempts
from releaseflow.engine.executors.base import Failed
from releaseflow.engine.outcomes import Aborted, apply_answer
from releaseflow.engine.templates import TemplateCache, node_code
from releaseflow.engine.transitions import transition_node, transition_run, update_fenced
from releaseflow.store import catalog
from releaseflow.store import runs as run_store
from releaseflow.store.database import Transaction
from releaseflow.store.records import FlowRecord, NodeRecord, RunRecord


@dataclass(frozen=True)
class Claim:
    """A node this worker holds, with what it needs to act."""

    node_id: str
    run_id: str
    path: str
    kind: NodeKind
    ref: str | None
    lease_token: int
    attempt: int
    max_attempts: int
    code: dict[str, Any]
    wait_state: Any
    poll: bool  # True: the node is waiting and this is a poll, not a new attempt
    cancel: bool  # True: the node is waiting and its run is aborting: stop its action
    project_id: str
    pipeline_id: str
    stage: str
    # The node's row as this claim left it (its lease included): the answer is written over it,
    # fenced by the lease, without reading it again.
    node: NodeRecord
    resumed: bool = False  # True: this claim re-runs an attempt whose worker was lost

    @property
    def idempotency_key(self) -> str:
        return f"{self.run_id}/{self.path}/{self.attempt}"


@dataclass
class BatchCache:
    """Runs read once per claim batch (many nodes of a batch share a run), and flows.

    What begin reads of a flow (project, pipeline, stage, secret seed) never changes, so a worker
    may keep its flows for its whole life and pass them in.
    """

    runs: dict[str, RunRecord] = field(default_factory=dict)
    flows: dict[str, FlowRecord] = field(default_factory=dict)

    async def run_and_flow(self, tx: Transaction, run_id: str) -> tuple[RunRecord, FlowRecord]:
        run = self.runs.get(run_id)
        if run is None:
            run = await run_store.get_run(tx, run_id)
            assert run is not None
            self.runs[run_id] = run
        flow = self.flows.get(run.flow_id)
        if flow is None:
            flow = await catalog.get_flow_by_id(tx, run.flow_id)
            assert flow is not None
            self.flows[run.flow_id] = flow
        return run, flow


async def begin(
    tx: Transaction,
    node: NodeRecord,
    worker_id: str,
    now: datetime,
    templates: TemplateCache,
    batch: BatchCache | None = None,
    *,
    take_until: datetime | None = None,
) -> Claim | None:
    """Turn a freshly leased node into a Claim; None when the node ended here instead.

    ``take_until``: ``node`` is a leaf that just became ready (``ready_record``), not leased yet:
    it is leased to ``worker_id`` until then by the same write that starts its attempt.
    """
    batch = batch or BatchCache()
    run, flow = await batch.run_and_flow(tx, node.run_id)
    if node.status is NodeStatus.WAITING and node.kind is NodeKind.APPROVAL:
        # Claimed only at its expiry (or its run's abort): decided here, nothing to run.
        if run.status is RunStatus.ABORTING:
            await _end_without_action(tx, node, now, Aborted())
        else:
            await approvals.expire(tx, node, now)
        return None
    if node.status is NodeStatus.WAITING:
        aborting = run.status is RunStatus.ABORTING
        return _claim_kept(node, run, flow, templates, poll=True, cancel=aborting)
    if run.status is RunStatus.ABORTING:
        await _end_without_action(tx, node, now, Aborted())
        return None
    if node.status is NodeStatus.RUNNING:
        return await _resume(tx, node, run, flow, worker_id, now, templates)
    template = templates.for_run(run)
    code = node_code(template.node(node.path))
    secrets = templates.secret_values(run)
    # Outputs of earlier nodes keep secret values hidden: revealed for this node's own code.
    outputs = reveal(await run_store.node_outputs(tx, run.id, expressions.referenced_refs(code)), secrets)
    scope = expressions.Scope(
        args=templates.arguments(run),
        refs={**run.trigger_refs, **outputs},
        now=now,
        secret_seed=flow.secret_seed,
    )
    attempt = node.attempt + 1
    attempts = [*node.attempts, {"attempt": attempt, "startTime": now.timestamp(), "worker": worker_id}]
    resolved: Any = None
    failure: Failed | None = None
    try:
        resolved = expressions.resolve(code, scope, path=node.path)
    except ExpressionError as error:
        failure = Failed(str(error), retryable=False, code=400)
    settings = resolve_settings(resolved, fallback_max_attempts=node.max_attempts)
    if node.kind is NodeKind.APPROVAL:
        # A person's decision is not retried: an approval has one attempt, decided by approve or reject.
        settings = replace(settings, max_attempts=1)
    max_attempts = settings.max_attempts
    taken: dict[str, Any] = {}
    if take_until is not None:
        # Never leased before (a pending leaf that was never due), so its fencing token was 0.
        taken = {
            "lease_owner": worker_id,
            "lease_token": 1,
            "lease_expires_at": take_until,
            "became_due_at": now,
            "due_at": None,
        }
    await transition_node(
        tx,
        node,
        NodeStatus.RUNNING,
        f"attempt {attempt} of {max_attempts} started by worker {worker_id}",
        now,
        **taken,
        attempt=attempt,
        max_attempts=max_attempts,
        backoff_seconds=settings.backoff_seconds,
        timeout_seconds=settings.timeout_seconds,
        # Kept with its secret values hidden (markers): readers see them masked, the worker reveals them.
        code=hide(resolved, secrets) if resolved is not None else code,
        attempts=attempts,
        wait_state=None,
        wait_deadline=None,
        next_attempt_at=None,
    )
    if run.status is RunStatus.PENDING:
        await transition_run(tx, run.id, run.status, RunStatus.RUNNING, "first node started", now)
        batch.runs[run.id] = replace(run, status=RunStatus.RUNNING)
    started = replace(
        node,
        status=NodeStatus.RUNNING,
        attempt=attempt,
        max_attempts=max_attempts,
        backoff_seconds=settings.backoff_seconds,
        timeout_seconds=settings.timeout_seconds,
        attempts=attempts,
        code=resolved if resolved is not None else code,
        wait_state=None,
        wait_deadline=None,
        next_attempt_at=None,
        started_at=node.started_at or now,
        **taken,
    )
    if failure is not None:
        await apply_answer(tx, started, failure, now)
        return None
    if node.kind is NodeKind.APPROVAL:
        await approvals.await_decision(tx, started, now)
        return None
    assert isinstance(resolved, dict)
    return _claim(started, run, flow.project_id, flow.pipeline_id, flow.stage, resolved, poll=False)


def ready_record(node_id: str, run: RunRecord, path: str, templates: TemplateCache) -> NodeRecord:
    """The row of a pending leaf that was never handed out, as it stands: it is known without a read
    (only ``max_attempts`` depends on the run, and it is settled again when the attempt begins)."""
    template = templates.for_run(run)
    node = template.node(path)
    parent = template.parents().get(path)
    return NodeRecord(
        id=node_id,
        run_id=run.id,
        path=path,
        parent_path=parent.path if parent is not None else None,
        kind=node.kind,
        ref=node.ref,
        status=NodeStatus.PENDING,
        attempt=0,
        max_attempts=initial_max_attempts(node, templates.arguments(run), run.created_at),
        due_at=None,
        became_due_at=None,
        lease_owner=None,
        lease_token=0,
        lease_expires_at=None,
        wait_deadline=None,
        next_attempt_at=None,
        started_at=None,
        ended_at=None,
        code=None,
        data=None,
        error=None,
        attempts=[],
        wait_state=None,
        cause=None,
    )


async def _resume(
    tx: Transaction,
    node: NodeRecord,
    run: RunRecord,
    flow: FlowRecord,
    worker_id: str,
    now: datetime,
    templates: TemplateCache,
) -> Claim:
    """A running node whose worker was lost: the same attempt again, on the code it resolved then."""
    entry = {"attempt": node.attempt, "startTime": now.timestamp(), "worker": worker_id, "resumed": True}
    attempts = [*node.attempts, entry]
    await update_fenced(tx, node, {"attempts": attempts})
    run_store.append_event(
        tx,
        run.id,
        node.path,
        now,
        str(NodeStatus.RUNNING),
        str(NodeStatus.RUNNING),
        f"attempt {node.attempt} of {node.max_attempts} resumed by worker {worker_id}",
    )
    resumed = replace(node, attempts=attempts)
    return _claim_kept(resumed, run, flow, templates, poll=False, resumed=True)


def _claim_kept(
    node: NodeRecord, run: RunRecord, flow: FlowRecord, templates: TemplateCache, **flags: bool
) -> Claim:
    """A claim on the code the node resolved when its attempt began, its secret values put back."""
    code = reveal(node.code, templates.secret_values(run))
    return _claim(node, run, flow.project_id, flow.pipeline_id, flow.stage, code, **flags)


def _claim(
    node: NodeRecord,
    run: RunRecord,
    project_id: str,
    pipeline_id: str,
    stage: str,
    code: Any,
    *,
    poll: bool,
    cancel: bool = False,
    resumed: bool = False,
) -> Claim:
    return Claim(
        node_id=node.id,
        run_id=run.id,
        path=node.path,
        kind=node.kind,
        ref=node.ref,
        lease_token=node.lease_token,
        attempt=node.attempt,
        max_attempts=node.max_attempts,
        code=dict(code or {}),
        wait_state=node.wait_state,
        poll=poll,
        cancel=cancel,
        project_id=project_id,
        pipeline_id=pipeline_id,
        stage=stage,
        node=node,
        resumed=resumed,
    )


async def _end_without_action(tx: Transaction, node: NodeRecord, now: datetime, answer: Aborted) -> None:
    if node.status in (NodeStatus.PENDING, NodeStatus.RETRYING, NodeStatus.WAITING):
        await transition_node(tx, node, NodeStatus.ABORTED, answer.message, now)
    else:
        await apply_answer(tx, node, answer, now)
