"""What ``runs``, ``show`` and ``run --follow`` print, from recorded run data (no database)."""

from __future__ import annotations

import io
import re
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

from releaseflow.cli import render
from releaseflow.cli.follow import _LogView
from releaseflow.cli.state import state_lines
from releaseflow.domain.statuses import NodeStatus, RunStatus
from releaseflow.engine.queries import EventView, NodeView, Progress, ReleaseView, RunDetail, RunSummary

T0 = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)
RUN_ID = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"


def summary(**changes: Any) -> RunSummary:
    run = RunSummary(
        id=RUN_ID,
        display_name=RUN_ID,
        name=None,
        description="",
        kind="release",
        status=RunStatus.SUCCESS,
        triggered_by="demo",
        created_at=T0,
        started_at=T0,
        concluded_at=T0 + timedelta(seconds=75),
        queued_reason=None,
        error=None,
        project_id="acme",
        pipeline_id="main",
        stage="Development",
        flow_version=1,
        seq=1,
    )
    return replace(run, **changes)


def node(path: str, ref: str | None, kind: str = "Job", **changes: Any) -> NodeView:
    view = NodeView(
        path=path,
        ref=ref,
        kind=kind,
        workflow_type="sequential" if kind == "Workflow" else None,
        status=NodeStatus.SUCCESS,
        attempts=0 if kind == "Workflow" else 1,
        max_attempts=3,
        next_attempt=None,
        started_at=T0,
        ended_at=T0 + timedelta(seconds=1),
        error=None,
        data=None,
        code=None,
        code_resolved=False,
        cause=None,
        attempt_log=(),
    )
    return replace(view, **changes)


def detail(root: NodeView, *, run: RunSummary | None = None, events: Sequence[EventView] = ()) -> RunDetail:
    actions = [item for item in root.walk() if not item.is_workflow]
    done = sum(
        1 for item in actions if item.status in (NodeStatus.SUCCESS, NodeStatus.FAILED, NodeStatus.SKIPPED)
    )
    return RunDetail(
        run=run or summary(),
        arguments={},
        root=root,
        progress=Progress(done, len(actions)),
        events=tuple(events),
    )


def local(moment: datetime) -> str:
    return moment.astimezone().strftime("%Y-%m-%d %H:%M:%S")


def test_runs_table__shows_name_status_kind_start_origin_end_duration_and_first_error() -> None:
    failed = summary(
        id="11111111-2222-3333-4444-555555555555",
        display_name="hotfix",
        name="hotfix",
        status=RunStatus.FAILED,
        kind="rollback",
        triggered_by="cli",
        origin_kind="rollback",
        origin_by="alice",
        rollback_of="99999999-2222-3333-4444-555555555555",
    )

    header, unnamed, named = render.runs_table(
        [summary(), failed], {failed.id: "migrate: exit code 3\nERROR: relation exists"}
    )

    assert header.split() == [
        "ID", "NAME", "STATUS", "KIND", "STARTED", "BY", "COMPLETED", "DURATION", "ERROR"
    ]  # fmt: skip
    assert cells(unnamed) == [
        RUN_ID[:8],
        RUN_ID,  # the display name of an unnamed run is its id
        "success",
        "release",
        local(T0),
        "person",  # started by a person whose name was not recorded
        local(T0 + timedelta(seconds=75)),
        "1m15s",
    ]
    assert cells(named)[1:] == [
        "hotfix",
        "failed",
        "rollback",
        local(T0),
        "rollback by alice to 99999999",
        local(T0 + timedelta(seconds=75)),
        "1m15s",
        "migrate: exit code 3 …",  # the first line of the first error
    ]


def cells(line: str) -> list[str]:
    return re.split(r"\s{2,}", line.strip())


def test_first_error__is_that_of_the_node_that_failed_first() -> None:
    later = node("spec.spec.steps[1]", "smoke", status=NodeStatus.FAILED, ended_at=T0 + timedelta(seconds=9))
    first = node("spec.spec.steps[0]", "migrate", status=NodeStatus.FAILED, error={"message": "exit code 3"})
    root = node("spec", None, "Workflow", children=(first, replace(later, error={"message": "late"})))

    assert render.first_error(detail(root)) == "migrate: exit code 3"


def test_run_tree__prints_response_data_and_keeps_multiline_errors_indented() -> None:
    backup = node("spec.spec.steps[0]", "backup", "AddonBackup", data={"backupId": "bkp-42"})
    deploy = node(
        "spec.spec.steps[1]",
        "deploy",
        "ReleaseService",
        status=NodeStatus.FAILED,
        error={"message": "the new version exited\nTraceback: boom"},
        data={"exitCode": 1, "artifact": {"buildId": "bld-7", "commit": "abc"}, "address": "127.0.0.1:8081"},
    )
    tree = render.run_tree(detail(node("spec", None, "Workflow", children=(backup, deploy))))

    assert tree[0].endswith("sequential workflow  " + tree[0].split("workflow  ")[1])
    assert "spec" not in tree[0]
    assert "│      backupId: bkp-42" in tree
    error_at = tree.index("       error: the new version exited")
    assert tree[error_at + 1] == "         Traceback: boom"  # inside the tree's indentation
    assert '       artifact: {"buildId": "bld-7", "commit": "abc"}' in tree
    assert "       exitCode: 1" in tree and "       address: 127.0.0.1:8081" in tree


def test_event_subject__names_the_root_workflow_as_the_template_does() -> None:
    child = node("spec.spec.steps[0]", None, "Workflow", workflow_type="parallel")
    view = detail(node("spec", None, "Workflow", children=(child,)))

    assert render.subject(view, "spec") == "sequential workflow"
    assert render.subject(view, "spec.spec.steps[0]") == "parallel workflow"
    assert render.subject(view, None) == "run"


def event(number: int, path: str | None, before: str | None, after: str, cause: str = "") -> EventView:
    return EventView(number, T0, path, None, before, after, cause or after)


def test_follow_log__prints_events_in_order_true_counts_and_the_conclusion_last() -> None:
    a = node("spec.spec.steps[0]", "a", "Message")
    b = node("spec.spec.steps[1]", "b", "Message")
    finished = detail(
        node("spec", None, "Workflow", children=(a, b)),
        events=[
            event(1, None, None, "pending"),
            event(2, "spec", "pending", "running"),
            event(3, None, "pending", "running"),
            event(4, "spec.spec.steps[0]", "pending", "running"),
            event(5, "spec.spec.steps[0]", "running", "success"),
            event(6, "spec.spec.steps[1]", "pending", "running"),
            event(7, "spec.spec.steps[1]", "running", "success"),
            event(8, "spec", "running", "success"),
            event(9, None, "running", "success"),
        ],
    )
    # The first poll saw only what had happened by then; the second saw the rest at once.
    early = replace(
        finished,
        run=summary(status=RunStatus.RUNNING, concluded_at=None),
        events=finished.events[:4],
    )
    out = io.StringIO()
    view = _LogView(out)

    view.show(early)
    view.show(finished)
    view.finish(finished)

    lines = out.getvalue().splitlines()
    assert lines[1:] == [
        "sequential workflow: running  [0/2 nodes done]",
        "run running",
        "a (Message): running  [0/2 nodes done]",
        "a (Message): success  [1/2 nodes done]",
        "b (Message): running  [1/2 nodes done]",
        "b (Message): success  [2/2 nodes done]",
        "sequential workflow: success  [2/2 nodes done]",
        f"run {RUN_ID} ended: success  [2/2 nodes done] after 1m15s",
    ]


def test_state_lines__keep_the_pipeline_order_and_show_local_dates() -> None:
    deployed = [
        ReleaseView(
            stage,
            resource,
            {"kind": "image", "image": "web:1"},
            RUN_ID,
            "spec",
            datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC),
        )
        for stage, resource in (("Development", "web-dev"), ("Staging", "web-stg"), ("Production", "web"))
    ]

    header, *rows = state_lines(deployed)

    assert cells(header) == ["STAGE", "RESOURCE", "ARTIFACT", "RUN", "DEPLOYED"]
    assert [cells(row) for row in rows] == [
        [stage, resource, "web:1", RUN_ID[:8], local(T0)]
        for stage, resource in (("Development", "web-dev"), ("Staging", "web-stg"), ("Production", "web"))
    ]


def test_run_label__an_unnamed_run_is_its_short_id_a_named_one_adds_its_name_escaped() -> None:
    run_id = "79fb234b-2eb6-451c-bb23-013cf8c0367f"

    assert render.run_label(run_id, run_id) == "79fb234b"
    assert render.run_label(run_id, "Hotfix\x1b[31m") == "79fb234b “Hotfix\\x1b[31m”"
