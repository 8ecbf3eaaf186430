"""Moving a run forward inside one transaction: apply the planner's changes, conclude the run.

Called after every event that may unblock something: a run admitted, a node finished, an abort.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime

from releaseflow.domain import expressions
from releaseflow.domain.progress import ChangeKind, RunView, plan_progress
from releaseflow.domain.secret_values import reveal
from releaseflow.domain.statuses import TERMINAL_RUN_STATUSES, NodeStatus, RunStatus
from releaseflow.domain.template import Node, Template
from releaseflow.engine.templates import TemplateCache
from releaseflow.engine.transitions import transition_node, transition_run
from releaseflow.store import catalog
from releaseflow.store import runs as run_store
from releaseflow.store.database import Transaction
from releaseflow.store.records import NodeState, RunRecord


@dataclass
class Advanced:
    """What advancing a run did: the run as it is now, and the leaves it handed to the workers."""

    run: RunRecord
    made_due: list[str] = field(default_factory=list)  # node ids, in the order they became ready


@dataclass
class Lease:
    """A worker that takes the leaves that become ready at once (it recorded the answer that readied
    them): up to ``room`` of them are not made due but set aside in ``taken`` (node id, run id,
    path), and
    the worker MUST begin every one of them in this same transaction (``dispatch.begin`` with
    ``take_until``), which leases and starts each in one write."""

    owner: str
    until: datetime
    room: int
    taken: list[tuple[str, str, str]] = field(default_factory=list)


async def advance_run(
    tx: Transaction,
    run_id: str,
    now: datetime,
    templates: TemplateCache,
    *,
    lease: Lease | None = None,
    locked: RunRecord | None = None,
) -> Advanced:
    """Start what may start, end what has ended, and conclude the run when its root ended.

    ``locked``: the run, already read under its lock in this transaction by the caller.
    """
    run = locked if locked is not None else await run_store.lock_run(tx, run_id)
    assert run is not None, run_id
    if run.status in TERMINAL_RUN_STATUSES or run.status is RunStatus.QUEUED:
        return Advanced(run)
    template = templates.for_run(run)
    node_ids = templates.node_ids(run_id)
    if node_ids is None:
        node_ids = await run_store.node_ids(tx, run_id)
        if node_ids:  # a run that failed its dry run has none, and never will
            templates.remember_node_ids(run_id, node_ids)
    if not node_ids:
        return Advanced(run)
    nodes = await run_store.load_node_states(tx, run_id, node_ids)
    made_due: list[str] = []
    scope = await _skip_scope(tx, run, template, templates, now)
    statuses = nodes.statuses

    def should_skip(node: Node) -> bool:
        assert scope is not None  # the planner asks only about nodes that have skipNodeExecution
        value = expressions.resolve(node.skip_node_execution, scope, path=f"{node.path}.skipNodeExecution")
        return expressions.is_truthy(value)

    due = nodes.due
    while True:
        changes = plan_progress(
            template.root,
            statuses,
            frozenset(due),
            RunView(aborting=run.status is RunStatus.ABORTING),
            should_skip,
        )
        ready = [change.path for change in changes if change.kind is ChangeKind.MAKE_DUE]
        if ready:
            ids = [nodes.ids[path] for path in ready]
            due.update(ready)
            if lease is not None and lease.room > 0:
                taken = ready[: lease.room]
                lease.taken.extend((nodes.ids[path], run.id, path) for path in taken)
                lease.room -= len(taken)
                ids = ids[len(taken) :]
            if ids:
                # One statement however many leaves become ready (a parallel fan-out makes hundreds).
                await run_store.make_due(tx, ids, now)
                made_due.extend(ids)
        settled = [change for change in changes if change.kind is not ChangeKind.MAKE_DUE]
        if not settled:
            # Making leaves due changes no status, so planning again would find nothing new.
            break
        for change in settled:
            assert change.status is not None
            node = NodeState(nodes.ids[change.path], run.id, change.path, statuses[change.path])
            await transition_node(tx, node, change.status, change.cause, now)
            statuses[change.path] = change.status

    root_status = statuses[template.root.path]
    if run.status is RunStatus.PENDING and root_status is not NodeStatus.PENDING:
        await transition_run(tx, run.id, run.status, RunStatus.RUNNING, "first node started", now)
        run = _replace_run(run, RunStatus.RUNNING)
    if root_status in (NodeStatus.SUCCESS, NodeStatus.SKIPPED, NodeStatus.FAILED, NodeStatus.ABORTED):
        run = await conclude_run(tx, run, root_status, now)
    return Advanced(run, made_due)


async def conclude_run(tx: Transaction, run: RunRecord, root_status: NodeStatus, now: datetime) -> RunRecord:
    if run.status is RunStatus.ABORTING:
        final, cause = RunStatus.ABORTED, "abort finished: nothing is running any more"
    elif root_status in (NodeStatus.SUCCESS, NodeStatus.SKIPPED):
        final, cause = RunStatus.SUCCESS, "every node succeeded or was skipped"
    else:
        failed = await tx.fetchall(
            "SELECT path, error FROM node_runs WHERE run_id = ? AND status = 'failed' ORDER BY ended_at",
            (run.id,),
        )
        final = RunStatus.FAILED
        cause = "node failed: " + ", ".join(row["path"] for row in failed) if failed else "a node failed"
    await transition_run(tx, run.id, run.status, final, cause, now)
    return _replace_run(run, final)


async def _skip_scope(
    tx: Transaction, run: RunRecord, template: Template, templates: TemplateCache, now: datetime
) -> expressions.Scope | None:
    """What skipNodeExecution expressions are evaluated against; None when the template has none."""
    if not template.has_skip_expressions:
        return None
    flow = await catalog.get_flow_by_id(tx, run.flow_id)
    # Only skip expressions read node outputs, and no output changes while a run is advanced.
    outputs = reveal(
        await run_store.node_outputs(tx, run.id, skip_refs(template)), templates.secret_values(run)
    )
    return expressions.Scope(
        args=templates.arguments(run),
        refs={**run.trigger_refs, **outputs},
        now=now,
        secret_seed=flow.secret_seed if flow else "",
    )


def skip_refs(template: Template) -> set[str]:
    """The refs that skipNodeExecution expressions of a template read."""
    refs: set[str] = set()
    for node in template.nodes():
        if isinstance(node.skip_node_execution, str):
            refs |= expressions.referenced_refs(node.skip_node_execution)
    return refs


def _replace_run(run: RunRecord, status: RunStatus) -> RunRecord:
    return replace(run, status=status)
