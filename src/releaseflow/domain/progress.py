"""How a run moves forward: given the tree and the status of every node, what changes next.

``plan_progress`` is pure. The engine applies what it returns through its one transition function
and calls it again until it returns nothing.

Rules (the engine contract, docs/architecture.md):
- sequential starts a step once every step before it succeeded (or was skipped); parallel starts all;
- once any node of the run failed for good, no pending node starts: it ends skipped, visibly;
- while the run is aborting, pending and retrying nodes end aborted;
- a workflow ends when all its steps ended, with the worst of their statuses (explicit severity);
- a leaf node that may start is made due: a worker claims it and runs its action.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from releaseflow.domain.errors import ExpressionError
from releaseflow.domain.statuses import TERMINAL_NODE_STATUSES, NodeStatus, worst_status
from releaseflow.domain.template import Node

SKIPPED_BY_FAILURE = "not started: an earlier node of the run failed"
SKIPPED_BY_REQUEST = "skipNodeExecution is true"
ABORTED_BY_REQUEST = "the run was aborted"

_DONE_OK = frozenset({NodeStatus.SUCCESS, NodeStatus.SKIPPED})


class ChangeKind(StrEnum):
    SET_STATUS = "set_status"  # a workflow starts or ends, a pending node is skipped/aborted/failed
    MAKE_DUE = "make_due"  # a leaf may start: hand it to the workers


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    path: str
    status: NodeStatus | None = None
    cause: str = ""


@dataclass(frozen=True)
class RunView:
    """What the planner needs to know about the run besides its nodes."""

    aborting: bool = False


def plan_progress(
    root: Node,
    statuses: Mapping[str, NodeStatus],
    due: frozenset[str],
    run: RunView,
    should_skip: Callable[[Node], bool],
) -> list[Change]:
    """The next changes of a run. ``due`` holds the pending leaves already handed to workers.

    ``should_skip`` evaluates a node's skipNodeExecution; if it raises ExpressionError the node fails.
    """
    planner = _Planner(dict(statuses), due, run, should_skip)
    planner.visit(root, may_start=True)
    return planner.changes


class _Planner:
    def __init__(
        self,
        statuses: dict[str, NodeStatus],
        due: frozenset[str],
        run: RunView,
        should_skip: Callable[[Node], bool],
    ) -> None:
        self.statuses = statuses
        self.due = due
        self.run = run
        self.should_skip = should_skip
        self.changes: list[Change] = []
        self.failed = NodeStatus.FAILED in statuses.values()

    def _set(self, node: Node, status: NodeStatus, cause: str) -> None:
        self.statuses[node.path] = status
        self.changes.append(Change(ChangeKind.SET_STATUS, node.path, status, cause))
        if status is NodeStatus.FAILED:
            self.failed = True

    def _close_subtree(self, node: Node, status: NodeStatus, cause: str) -> None:
        for each in node.walk():
            if self.statuses[each.path] is NodeStatus.PENDING:
                self._set(each, status, cause)

    def visit(self, node: Node, *, may_start: bool) -> None:
        status = self.statuses[node.path]
        if status is NodeStatus.PENDING:
            self._visit_pending(node, may_start)
            status = self.statuses[node.path]
        if status is NodeStatus.RETRYING and self.run.aborting:
            self._set(node, NodeStatus.ABORTED, ABORTED_BY_REQUEST)
        elif node.is_workflow and status is NodeStatus.RUNNING:
            self._visit_running_workflow(node)

    def _visit_pending(self, node: Node, may_start: bool) -> None:
        if self.run.aborting:
            self._close_subtree(node, NodeStatus.ABORTED, ABORTED_BY_REQUEST)
        elif self.failed:
            self._close_subtree(node, NodeStatus.SKIPPED, SKIPPED_BY_FAILURE)
        elif not may_start:
            return
        elif self._skip_requested(node):
            self._close_subtree(node, NodeStatus.SKIPPED, SKIPPED_BY_REQUEST)
        elif node.is_workflow:
            self._set(node, NodeStatus.RUNNING, "started")
        elif node.path not in self.due:
            self.changes.append(Change(ChangeKind.MAKE_DUE, node.path, cause="ready to start"))

    def _skip_requested(self, node: Node) -> bool:
        if node.skip_node_execution in (None, False):
            return False
        try:
            return self.should_skip(node)
        except ExpressionError as error:
            self._set(node, NodeStatus.FAILED, f"skipNodeExecution cannot be evaluated: {error}")
            return False

    def _visit_running_workflow(self, node: Node) -> None:
        sequential = node.workflow_type == "sequential"
        statuses = self.statuses
        previous_ok = True
        for child in node.children:
            status = statuses[child.path]
            if status in _DONE_OK:
                continue  # an ended step (and all below it): nothing to do, the chain goes on
            if (
                not previous_ok
                and sequential
                and not self.failed
                and not self.run.aborting
                and status is NodeStatus.PENDING
            ):
                # The steps after one that has not succeeded yet wait, all of them, and the workflow
                # goes on: nothing further down this chain can change in this pass.
                return
            self.visit(child, may_start=previous_ok or not sequential)
            previous_ok = previous_ok and statuses[child.path] in _DONE_OK
        child_statuses = [self.statuses[child.path] for child in node.children]
        if all(status in TERMINAL_NODE_STATUSES for status in child_statuses):
            final = worst_status(child_statuses) or NodeStatus.SUCCESS
            self._set(node, final, "all steps ended")


def roll_up(statuses: list[NodeStatus]) -> NodeStatus:
    """What a workflow shows for its children: the worst status among them (explicit severity order)."""
    return worst_status(statuses) or NodeStatus.SUCCESS
