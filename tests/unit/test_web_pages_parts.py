"""The pure parts of the web pages: the chart's geometry and words, the version diff's line kinds,
the options a settings form stores, and what a resume keeps."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from releaseflow.domain.access import Role
from releaseflow.domain.errors import ValidationError
from releaseflow.domain.statuses import NodeStatus
from releaseflow.engine.queries import FlowVersionView, NodeView
from releaseflow.engine.tokens import Principal
from releaseflow.web import views
from releaseflow.web.chart import BAR_HEIGHT, PLOT_WIDTH, bar_chart
from releaseflow.web.flow_history import diff_lines, version_number
from releaseflow.web.run_actions import resume_outline_of
from releaseflow.web.stage_settings import with_options


def test_bar_chart__scales_to_the_largest_value_and_says_every_value_in_words() -> None:
    chart = bar_chart("Releases", ("deployed", "failed"), [("Development", (4, 1)), ("Production", (2, 0))])
    first, second = chart.groups
    assert [bar.width for bar in first.bars] == [PLOT_WIDTH, PLOT_WIDTH / 4]
    assert [bar.width for bar in second.bars] == [PLOT_WIDTH / 2, 0]
    assert second.y > first.bars[-1].y + BAR_HEIGHT  # groups do not overlap
    assert chart.description == "Development: deployed 4, failed 1; Production: deployed 2, failed 0"
    assert [bar.text for bar in first.bars] == ["4", "1"]


def test_bar_chart__with_no_figures_or_only_zeros_draws_no_bar_wider_than_nothing() -> None:
    assert bar_chart("Releases", ("deployed",), []).description == "no figures"
    assert [bar.width for bar in bar_chart("R", ("a",), [("x", (0,))]).groups[0].bars] == [0]


def test_bar_chart__refuses_a_group_whose_values_do_not_match_the_series() -> None:
    with pytest.raises(ValueError, match="'Development' has 1 values for 2 series"):
        bar_chart("Releases", ("deployed", "failed"), [("Development", (1,))])


def version(number: int, document: Any) -> FlowVersionView:
    return FlowVersionView(number, "apply", datetime(2026, 1, 1, tzinfo=UTC), False, document)


def test_diff_lines__mark_each_line_by_its_sign() -> None:
    lines = diff_lines(version(1, {"options": {"paused": False}}), version(2, {"options": {"paused": True}}))
    kinds = {kind for kind, _ in lines}
    assert kinds == {"file", "hunk", "removed", "added", "same"}
    assert ("removed", '-    "paused": false') in lines and ("added", '+    "paused": true') in lines
    assert lines[0] == ("file", "--- version 1")
    assert diff_lines(version(1, {"a": 1}), version(2, {"a": 1})) == []


def test_version_number__takes_a_positive_number_or_nothing() -> None:
    assert version_number("", "before") is None and version_number("3", "before") == 3
    for bad in ("0", "x", "-1"):
        with pytest.raises(ValidationError, match=r"before: .* is not a version number"):
            version_number(bad, "before")


def test_with_options__sets_the_pause_and_policy_and_keeps_the_rest() -> None:
    document = {"spec": {"kind": "Workflow"}, "options": {"other": 1}}
    changed = with_options(document, paused=True, policy="queue")
    assert changed["options"] == {"other": 1, "paused": True, "concurrencyPolicy": "queue"}
    assert document["options"] == {"other": 1}  # the stored version is not changed in place
    with pytest.raises(ValidationError, match="'sometimes' is not a concurrency policy"):
        with_options(document, paused=False, policy="sometimes")


def node(kind: str, code: Any = None, data: Any = None, status: NodeStatus = NodeStatus.SUCCESS) -> NodeView:
    return NodeView(
        path=f"spec.{kind}",
        ref=kind.lower(),
        kind=kind,
        workflow_type=None,
        status=status,
        attempts=1,
        max_attempts=3,
        next_attempt=None,
        started_at=None,
        ended_at=None,
        error=None,
        data=data,
        code=code or {},
        code_resolved=True,
        cause=None,
        attempt_log=(),
    )


def test_resume_outline__keeps_the_actions_that_succeeded_and_runs_the_rest_again() -> None:
    root = node("Workflow")
    steps = (
        node("Build"),
        node("Approval", status=NodeStatus.FAILED),
        node("Release", status=NodeStatus.SKIPPED),
    )
    tree = NodeView(**{**root.__dict__, "children": steps})
    assert resume_outline_of(tree) == (["build"], ["approval", "release"])
    assert resume_outline_of(None) == ([], [])


def test_may__shows_an_action_to_the_roles_that_may_take_it_in_that_project() -> None:
    deployer = Principal.of_token("t1", "alice", "shop", Role.DEPLOYER)
    assert views.may(deployer, "viewer", "shop") and views.may(deployer, "deployer", "shop")
    assert not views.may(deployer, "admin", "shop") and not views.may(deployer, "viewer", "other")


def test_origin_of__a_token_starts_runs_under_the_name_it_approves_with() -> None:
    token = Principal.of_token("t1", "alice", "shop", Role.DEPLOYER)
    user = Principal.of_user("u1", "bob", [])
    assert views.origin_of(token).kind == "token" and token.actor == "token:alice"
    assert views.origin_of(user).kind == "person" and user.actor == "bob"


def test_span__writes_a_length_of_time_or_unknown() -> None:
    assert views.span(None) == "unknown"
    assert views.span(timedelta(seconds=3.5)) == "3.5s"
    assert views.span(timedelta(minutes=90)) == "1h30m"
