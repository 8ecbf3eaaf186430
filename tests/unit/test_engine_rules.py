"""Pure engine rules: progress planning, roll-up, retry decisions and admission."""

from __future__ import annotations

from datetime import timedelta

import pytest

from releaseflow.domain.concurrency import AdmissionAction, admit
from releaseflow.domain.errors import ExpressionError
from releaseflow.domain.progress import (
    SKIPPED_BY_FAILURE,
    ChangeKind,
    RunView,
    plan_progress,
    roll_up,
)
from releaseflow.domain.retry import decide_retry
from releaseflow.domain.statuses import (
    NODE_TRANSITIONS,
    TERMINAL_NODE_STATUSES,
    NodeStatus,
    RunStatus,
    node_transition_allowed,
    run_transition_allowed,
)
from releaseflow.domain.template import ConcurrencyPolicy, Node, NodeKind
from releaseflow.domain.template_parser import parse_template
from releaseflow.engine.executors import ENGINE_KINDS, default_executors
from releaseflow.platform.driver import DriverRegistry
from releaseflow.testing import FakeClock

P, R, S, F, W, K, A = (
    NodeStatus.PENDING,
    NodeStatus.RUNNING,
    NodeStatus.SUCCESS,
    NodeStatus.FAILED,
    NodeStatus.WAITING,
    NodeStatus.SKIPPED,
    NodeStatus.ABORTED,
)


def leaf(ref: str, **extra: object) -> dict[str, object]:
    return {"kind": "Approval", "ref": ref, "spec": {"amount": 1}, **extra}


def tree(kind: str, *steps: dict[str, object]) -> Node:
    document = {
        "apiVersion": "v1.2",
        "spec": {"kind": "Workflow", "spec": {"type": kind, "steps": list(steps)}},
    }
    return parse_template(document).root


def never_skip(node: Node) -> bool:
    return False


def plan(
    root: Node, statuses: dict[str, NodeStatus], due: frozenset[str] = frozenset(), aborting: bool = False
):  # type: ignore[no-untyped-def]
    return plan_progress(root, statuses, due, RunView(aborting=aborting), never_skip)


STEP = "spec.spec.steps[{}]"


def test_progress__sequential_starts_only_the_first_step() -> None:
    root = tree("sequential", leaf("a"), leaf("b"))
    changes = plan(root, {"spec": P, STEP.format(0): P, STEP.format(1): P})
    assert [(c.kind, c.path) for c in changes] == [
        (ChangeKind.SET_STATUS, "spec"),
        (ChangeKind.MAKE_DUE, STEP.format(0)),
    ]


def test_progress__sequential_moves_on_after_success() -> None:
    root = tree("sequential", leaf("a"), leaf("b"))
    changes = plan(root, {"spec": R, STEP.format(0): S, STEP.format(1): P})
    assert [(c.kind, c.path) for c in changes] == [(ChangeKind.MAKE_DUE, STEP.format(1))]


def test_progress__parallel_makes_every_step_due() -> None:
    root = tree("parallel", leaf("a"), leaf("b"), leaf("c"))
    changes = plan(root, {"spec": R, **{STEP.format(i): P for i in range(3)}})
    assert {c.path for c in changes if c.kind is ChangeKind.MAKE_DUE} == {STEP.format(i) for i in range(3)}


def test_progress__already_due_leaves_are_not_handed_out_twice() -> None:
    root = tree("parallel", leaf("a"))
    assert plan(root, {"spec": R, STEP.format(0): P}, due=frozenset({STEP.format(0)})) == []


def test_progress__a_failure_skips_pending_nodes_and_ends_the_workflow() -> None:
    root = tree("sequential", leaf("a"), leaf("b"))
    changes = plan(root, {"spec": R, STEP.format(0): F, STEP.format(1): P})
    assert [(c.path, c.status, c.cause) for c in changes] == [
        (STEP.format(1), K, SKIPPED_BY_FAILURE),
        ("spec", F, "all steps ended"),
    ]


def test_progress__a_running_sibling_keeps_the_workflow_open() -> None:
    root = tree("parallel", leaf("a"), leaf("b"))
    assert plan(root, {"spec": R, STEP.format(0): F, STEP.format(1): W}) == []


def test_progress__abort_ends_pending_nodes_as_aborted() -> None:
    root = tree("sequential", leaf("a"), leaf("b"))
    changes = plan(root, {"spec": R, STEP.format(0): A, STEP.format(1): P}, aborting=True)
    assert [(c.path, c.status) for c in changes] == [(STEP.format(1), A), ("spec", A)]


def test_progress__skip_request_skips_the_whole_subtree() -> None:
    inner = {
        "kind": "Workflow",
        "skipNodeExecution": True,
        "spec": {"type": "parallel", "steps": [leaf("x")]},
    }
    root = tree("sequential", inner, leaf("after"))
    statuses = {"spec": R, STEP.format(0): P, STEP.format(0) + ".spec.steps[0]": P, STEP.format(1): P}
    changes = plan_progress(root, statuses, frozenset(), RunView(), lambda node: True)
    assert [(c.path, c.status) for c in changes[:2]] == [
        (STEP.format(0), K),
        (STEP.format(0) + ".spec.steps[0]", K),
    ]
    assert changes[2].kind is ChangeKind.MAKE_DUE and changes[2].path == STEP.format(1)


def test_progress__an_unevaluable_skip_expression_fails_the_node() -> None:
    root = tree("sequential", leaf("a", skipNodeExecution="${args.nope}"))

    def broken(node: Node) -> bool:
        raise ExpressionError("argument 'nope' is not defined")

    changes = plan_progress(root, {"spec": R, STEP.format(0): P}, frozenset(), RunView(), broken)
    assert changes[0].status is F and "nope" in changes[0].cause


def test_roll_up__worst_status_wins_by_explicit_severity() -> None:
    assert roll_up([S, W, R]) is W
    assert roll_up([S, NodeStatus.RETRYING, W]) is NodeStatus.RETRYING
    assert roll_up([K, S]) is S
    assert roll_up([S, A, F]) is F
    assert roll_up([]) is S


def test_transitions__terminal_statuses_never_change() -> None:
    for status in TERMINAL_NODE_STATUSES:
        assert NODE_TRANSITIONS[status] == frozenset()
    assert not node_transition_allowed(S, R)
    assert node_transition_allowed(NodeStatus.RETRYING, R)
    assert run_transition_allowed(RunStatus.QUEUED, RunStatus.PENDING)
    assert not run_transition_allowed(RunStatus.SUCCESS, RunStatus.RUNNING)
    assert not run_transition_allowed(RunStatus.ABORTING, RunStatus.SUCCESS)


def test_retry__schedules_the_next_attempt_after_the_backoff() -> None:
    clock = FakeClock()
    decision = decide_retry(attempt=1, max_attempts=3, backoff_seconds=60, retryable=True, now=clock.now())
    assert decision.retry and decision.next_attempt_at == clock.now() + timedelta(seconds=60)


@pytest.mark.parametrize(("attempt", "retryable"), [(3, True), (1, False)])
def test_retry__gives_up_on_the_last_attempt_or_a_permanent_error(attempt: int, retryable: bool) -> None:
    decision = decide_retry(
        attempt=attempt, max_attempts=3, backoff_seconds=1, retryable=retryable, now=FakeClock().now()
    )
    assert not decision.retry and decision.next_attempt_at is None


def test_admission__each_policy_when_a_run_is_active() -> None:
    active, queued = ["a"], ["q1", "q2"]
    assert admit(ConcurrencyPolicy.ALLOW, active, queued).action is AdmissionAction.START
    queue = admit(ConcurrencyPolicy.QUEUE, active, queued)
    assert queue.action is AdmissionAction.QUEUE and "q2" in queue.reason
    assert admit(ConcurrencyPolicy.FORBID, active, []).action is AdmissionAction.REJECT
    latest = admit(ConcurrencyPolicy.LATEST, active, queued)
    assert (latest.action, latest.drop_queued) == (AdmissionAction.QUEUE, ("q1", "q2"))
    replace = admit(ConcurrencyPolicy.REPLACE, active, queued)
    assert (replace.action, replace.abort_active, replace.drop_queued) == (
        AdmissionAction.QUEUE,
        ("a",),
        ("q1", "q2"),
    )


def test_admission__an_idle_flow_starts_at_once_under_every_policy() -> None:
    for policy in ConcurrencyPolicy:
        assert admit(policy, [], []).action is AdmissionAction.START


def test_executors__every_kind_has_exactly_one_runner() -> None:
    executors = default_executors(DriverRegistry({}))
    assert set(executors).isdisjoint(ENGINE_KINDS)
    assert set(executors) | ENGINE_KINDS == set(NodeKind)
    assert all(isinstance(kind, NodeKind) for kind in executors)


def test_template__node_kinds_are_the_enum() -> None:
    root = tree("sequential", leaf("a"))
    assert root.kind is NodeKind.WORKFLOW and root.children[0].kind is NodeKind.APPROVAL
