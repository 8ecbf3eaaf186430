"""Statuses of runs and nodes, the transitions allowed between them, and roll-up.

Each member says who sets it and what it means. The named sets (terminal, active, ...) are defined
once here and used everywhere else.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class RunStatus(StrEnum):
    # Set by the start command when the concurrency policy makes the run wait behind another run.
    QUEUED = "queued"
    # Set by the start command (or by admission from the queue): admitted, no node has started yet.
    PENDING = "pending"
    # Set by the engine when the first node starts.
    RUNNING = "running"
    # Set by the engine when the root workflow succeeded (or was skipped).
    SUCCESS = "success"
    # Set by the engine when a node failed for good and nothing is left running, or when the
    # dry run found an expression that cannot resolve.
    FAILED = "failed"
    # Set by the abort command: running nodes were asked to stop; nothing new starts.
    ABORTING = "aborting"
    # Set by the engine once an aborting run has nothing left running (or at once for a queued run).
    ABORTED = "aborted"


class NodeStatus(StrEnum):
    # Set when the run is created: the node will run once the steps before it succeed.
    PENDING = "pending"
    # Set by the engine when a worker starts the node's action (or a workflow starts its steps).
    RUNNING = "running"
    # Set by the engine when the action was accepted and must be awaited; polled until it holds
    # or its timeout passes.
    WAITING = "waiting"
    # Set by the engine when an attempt failed and another attempt is scheduled (nextAttempt).
    RETRYING = "retrying"
    # Set by the engine when the action (or every step of a workflow) succeeded.
    SUCCESS = "success"
    # Set by the engine when the last attempt failed, or a step of a workflow failed.
    FAILED = "failed"
    # Set by the engine when skipNodeExecution was true, or a step before it failed (cause says which).
    SKIPPED = "skipped"
    # Set by the engine when the run was aborted before or while the node ran.
    ABORTED = "aborted"


TERMINAL_RUN_STATUSES = frozenset({RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.ABORTED})
# Runs that hold their release flow's concurrency slot.
ACTIVE_RUN_STATUSES = frozenset({RunStatus.PENDING, RunStatus.RUNNING, RunStatus.ABORTING})

TERMINAL_NODE_STATUSES = frozenset(
    {NodeStatus.SUCCESS, NodeStatus.FAILED, NodeStatus.SKIPPED, NodeStatus.ABORTED}
)
# Nodes whose lease may be taken back by the reaper when the worker holding them dies.
RECLAIMABLE_NODE_STATUSES = frozenset({NodeStatus.RUNNING, NodeStatus.WAITING})

RUN_TRANSITIONS: dict[RunStatus, frozenset[RunStatus]] = {
    RunStatus.QUEUED: frozenset({RunStatus.PENDING, RunStatus.ABORTED}),
    RunStatus.PENDING: frozenset(
        {RunStatus.RUNNING, RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.ABORTING}
    ),
    RunStatus.RUNNING: frozenset({RunStatus.SUCCESS, RunStatus.FAILED, RunStatus.ABORTING}),
    RunStatus.ABORTING: frozenset({RunStatus.ABORTED}),
    RunStatus.SUCCESS: frozenset(),
    RunStatus.FAILED: frozenset(),
    RunStatus.ABORTED: frozenset(),
}

NODE_TRANSITIONS: dict[NodeStatus, frozenset[NodeStatus]] = {
    NodeStatus.PENDING: frozenset(
        {NodeStatus.RUNNING, NodeStatus.SKIPPED, NodeStatus.ABORTED, NodeStatus.FAILED}
    ),
    NodeStatus.RUNNING: frozenset(
        {
            NodeStatus.WAITING,
            NodeStatus.RETRYING,
            NodeStatus.SUCCESS,
            NodeStatus.FAILED,
            NodeStatus.ABORTED,
            # A workflow ends with the worst status of its steps: skipped when every step was skipped.
            NodeStatus.SKIPPED,
        }
    ),
    NodeStatus.WAITING: frozenset(
        {NodeStatus.RETRYING, NodeStatus.SUCCESS, NodeStatus.FAILED, NodeStatus.ABORTED}
    ),
    NodeStatus.RETRYING: frozenset({NodeStatus.RUNNING, NodeStatus.FAILED, NodeStatus.ABORTED}),
    NodeStatus.SUCCESS: frozenset(),
    NodeStatus.FAILED: frozenset(),
    NodeStatus.SKIPPED: frozenset(),
    NodeStatus.ABORTED: frozenset(),
}


def run_transition_allowed(current: RunStatus, new: RunStatus) -> bool:
    return new in RUN_TRANSITIONS[current]


def node_transition_allowed(current: NodeStatus, new: NodeStatus) -> bool:
    return new in NODE_TRANSITIONS[current]


# Worst first: the roll-up of a workflow's children shows the most severe status among them.
# This order is explicit on purpose; enum order carries no meaning.
ROLL_UP_SEVERITY: tuple[NodeStatus, ...] = (
    NodeStatus.FAILED,
    NodeStatus.ABORTED,
    NodeStatus.RETRYING,
    NodeStatus.WAITING,
    NodeStatus.RUNNING,
    NodeStatus.PENDING,
    NodeStatus.SUCCESS,
    NodeStatus.SKIPPED,
)


def worst_status(statuses: Iterable[NodeStatus]) -> NodeStatus | None:
    """The most severe status of ``statuses`` by ``ROLL_UP_SEVERITY``; None when there are none."""
    present = set(statuses)
    for status in ROLL_UP_SEVERITY:
        if status in present:
            return status
    return None
