"""The one entry point that moves a run: apply one event to it, in the caller's transaction, then
plan once.

Events: a node answered (``NodeAnswered``), a worker lost a node (``LeaseLost``), a person approved
or rejected an Approval node (``Decided``), an abort was requested (``AbortRequested``), a run was
admitted (``Admitted``: created to start at once, or let in from its flow's queue). ``apply_event``
takes the run's lock, applies the event's own effect, then plans the run once (``settle``): nodes
that may start are made due (or leased straight to the worker that asked), workflows and the run
end when their children ended, and a run that ended lets the oldest queued run of its flow in —
which is planned in the same loop, never by recursion.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime

from releaseflow.domain.errors import ConflictError, NotFoundError
from releaseflow.domain.secret_values import hide
from releaseflow.domain.statuses import TERMINAL_RUN_STATUSES, NodeStatus, RunStatus
from releaseflow.domain.template import NodeKind
from releaseflow.engine import approvals
from releaseflow.engine.advance import Advanced, Lease, advance_run
from releaseflow.engine.executors.base import Failed
from releaseflow.engine.outcomes import Aborted, Answer, apply_answer, lose_claim
from releaseflow.engine.templates import TemplateCache
from releaseflow.engine.transitions import transition_node, transition_run
from releaseflow.store import runs as run_store
from releaseflow.store.database import Transaction
from releaseflow.store.records import NodeRecord, RunRecord


@dataclass(frozen=True)
class NodeAnswered:
    """The worker holding ``node`` (as its claim left it) answered; written fenced by its lease."""

    node: NodeRecord
    answer: Answer


@dataclass(frozen=True)
class LeaseLost:
    """The worker holding ``node`` is gone: its lease expired, or its process restarted."""

    node: NodeRecord
    cause: str


@dataclass(frozen=True)
class Decided:
    """A person approved or rejected a waiting Approval node (by ref or path)."""

    node: str
    approve: bool
    by: str
    comment: str = ""


@dataclass(frozen=True)
class AbortRequested:
    cause: str


@dataclass(frozen=True)
class Admitted:
    """The run was just created to start at once: plan its first nodes."""


RunEvent = NodeAnswered | LeaseLost | Decided | AbortRequested | Admitted


async def apply_event(
    tx: Transaction,
    run_id: str,
    event: RunEvent,
    now: datetime,
    templates: TemplateCache,
    *,
    lease: Lease | None = None,
) -> Advanced:
    """Apply ``event`` to the run in this transaction, then plan once (see the module's doc).

    ``lease``: the worker applying the event takes the leaves that become ready, as far as it has room.
    """
    run = await run_store.lock_run(tx, run_id)
    if run is None:
        raise NotFoundError(f"no run '{run_id}'")
    if isinstance(event, NodeAnswered):
        # What the platform answered may quote a secret argument: kept hidden, like the node's code.
        answer = _hidden(event.answer, templates.secret_values(run))
        await apply_answer(tx, event.node, answer, now)
    elif isinstance(event, LeaseLost):
        await lose_claim(tx, event.node, event.cause, now)
    elif isinstance(event, Decided):
        await _decide(tx, run, event, now)
    elif isinstance(event, AbortRequested):
        run = await _abort(tx, run, event.cause, now)
    return await settle(tx, run.id, now, templates, lease=lease, locked=run)


def _hidden(answer: Answer, secrets: dict[str, str]) -> Answer:
    if not secrets or isinstance(answer, Aborted):
        return answer
    if isinstance(answer, Failed):
        return replace(answer, message=hide(answer.message, secrets), data=hide(answer.data, secrets))
    return replace(answer, data=hide(answer.data, secrets))


async def settle(
    tx: Transaction,
    run_id: str,
    now: datetime,
    templates: TemplateCache,
    *,
    lease: Lease | None = None,
    locked: RunRecord | None = None,
) -> Advanced:
    """Plan a run; when that concluded it, admit the next queued run of its flow and plan that.

    A loop, not a recursion: a run admitted from the queue is planned in turn, and if it ends at
    once (nothing to do) the next one is admitted, and so on. Returns what planning ``run_id`` did,
    with every leaf made due along the way (admitted runs' too), for which workers are woken; with
    ``lease``, leaves that became ready are leased to that worker instead, as far as it has room.
    ``locked``: the run ``run_id``, already read under its lock by the caller.
    """
    first: Advanced | None = None
    made_due: list[str] = []
    todo = [run_id]
    while todo:
        next_id = todo.pop()
        advanced = await advance_run(
            tx, next_id, now, templates, lease=lease, locked=locked if next_id == run_id else None
        )
        first = first or advanced
        made_due.extend(advanced.made_due)
        if advanced.run.status in TERMINAL_RUN_STATUSES:
            admitted = await _admit_next_queued(tx, advanced.run.flow_id, now)
            if admitted is not None:
                todo.append(admitted)
    assert first is not None
    if made_due:
        tx.wake_workers()
    return Advanced(first.run, made_due)


async def _admit_next_queued(tx: Transaction, flow_id: str, now: datetime) -> str | None:
    """Admit the oldest queued run of a flow if no run holds its slot any more; returns its id."""
    if await run_store.runs_holding_slot(tx, flow_id):
        return None
    queued = await run_store.queued_runs(tx, flow_id)
    if not queued:
        return None
    first = queued[0]
    await transition_run(
        tx, first.id, RunStatus.QUEUED, RunStatus.PENDING, "admitted: the runs before it ended", now
    )
    return first.id


async def _decide(tx: Transaction, run: RunRecord, event: Decided, now: datetime) -> None:
    node = next(
        (node for node in await run_store.load_nodes(tx, run.id) if event.node in (node.ref, node.path)),
        None,
    )
    if node is None:
        raise NotFoundError(f"run {run.id} has no node with ref or path '{event.node}'")
    if node.kind is not NodeKind.APPROVAL or node.status is not NodeStatus.WAITING:
        raise ConflictError(f"node {event.node} is not an Approval awaiting a decision ({node.status})")
    started_by = approvals.starter_of(run.origin_kind, run.origin_by)
    await approvals.decide(
        tx, node, approve=event.approve, by=event.by, comment=event.comment, now=now, started_by=started_by
    )


async def _abort(tx: Transaction, run: RunRecord, cause: str, now: datetime) -> RunRecord:
    if run.status in TERMINAL_RUN_STATUSES:
        raise ConflictError(f"run {run.id} already ended ({run.status})")
    if run.status is RunStatus.ABORTING:
        return run
    if run.status is RunStatus.QUEUED:
        await transition_run(tx, run.id, run.status, RunStatus.ABORTED, cause, now)
        return replace(run, status=RunStatus.ABORTED)
    await transition_run(tx, run.id, run.status, RunStatus.ABORTING, cause, now)
    # Waiting nodes nobody is polling right now are handed to a worker at once, which asks the
    # platform to stop their action (approvals end here: nothing runs for them); leased ones are
    # stopped by their worker, which notices the abort at its next heartbeat.
    idle = []
    for node in await run_store.load_nodes(tx, run.id):
        if node.status is not NodeStatus.WAITING or node.lease_owner is not None:
            continue
        if node.kind is NodeKind.APPROVAL:
            await transition_node(tx, node, NodeStatus.ABORTED, Aborted.message, now)
        else:
            idle.append(node.id)
    if idle:
        await run_store.make_due(tx, idle, now)
        tx.wake_workers()
    return replace(run, status=RunStatus.ABORTING)
