"""The wire shapes of runs (``releaseflow.wire``): ISO 8601 for releaseflow's own times, Northflank's
unix seconds inside ``response``."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from releaseflow.domain.statuses import NodeStatus, RunStatus
from releaseflow.engine.queries import EventView, NodeView, Progress, ReleaseView, RunDetail, RunSummary
from releaseflow.wire import runs as wire
from releaseflow.wire.state import release

STARTED = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
ENDED = STARTED + timedelta(seconds=42, milliseconds=500)
# Every key of the run detail that holds a moment, outside Northflank's ``response`` objects.
TIME_KEYS = {"createdAt", "startedAt", "concludedAt", "startTime", "endTime", "nextAttempt", "at"}


def summary(**changes: Any) -> RunSummary:
    fields: dict[str, Any] = {
        "id": "0f6c3c1e-2f1f-4f59-9a62-6f1d3f1f0a01",
        "display_name": "first",
        "name": "first",
        "description": "",
        "kind": "release",
        "status": RunStatus.RUNNING,
        "triggered_by": "cli",
        "created_at": STARTED,
        "started_at": STARTED,
        "concluded_at": None,
        "queued_reason": None,
        "error": None,
        "project_id": "shop",
        "pipeline_id": "main",
        "stage": "Development",
        "flow_version": 1,
        "seq": 1,
    }
    return RunSummary(**{**fields, **changes})


def action(status: NodeStatus = NodeStatus.RETRYING, **changes: Any) -> NodeView:
    fields: dict[str, Any] = {
        "path": "spec.spec.steps[0]",
        "ref": "migrate",
        "kind": "JobRun",
        "workflow_type": None,
        "status": status,
        "attempts": 1,
        "max_attempts": 3,
        "next_attempt": ENDED + timedelta(seconds=60),
        "started_at": STARTED,
        "ended_at": ENDED,
        "error": {"code": 500, "message": "disk full"},
        "data": {"exitCode": 1},
        "code": {"kind": "JobRun"},
        "code_resolved": True,
        "cause": None,
        # As the engine stores it: epoch seconds.
        "attempt_log": (
            {"attempt": 1, "startTime": STARTED.timestamp(), "endTime": ENDED.timestamp(), "worker": "w1"},
        ),
    }
    return NodeView(**{**fields, **changes})


def detail() -> RunDetail:
    root = NodeView(
        path="spec",
        ref=None,
        kind="Workflow",
        workflow_type="sequential",
        status=NodeStatus.RUNNING,
        attempts=0,
        max_attempts=1,
        next_attempt=None,
        started_at=STARTED,
        ended_at=None,
        error=None,
        data=None,
        code=None,
        code_resolved=True,
        cause=None,
        attempt_log=(),
        children=(action(),),
    )
    event = EventView(1, ENDED, "spec.spec.steps[0]", "migrate", "running", "retrying", "disk full")
    return RunDetail(summary(), {"branch": "main"}, root, Progress(0, 1), (event,))


def moments(document: Any, path: str = "") -> Iterator[tuple[str, Any]]:
    """(path, value) of every time key, not looking inside ``response`` (Northflank's own shape)."""
    if isinstance(document, dict):
        for key, value in document.items():
            if key == "response":
                continue
            if key in TIME_KEYS:
                yield f"{path}.{key}", value
            yield from moments(value, f"{path}.{key}")
    elif isinstance(document, list):
        for index, item in enumerate(document):
            yield from moments(item, f"{path}[{index}]")


def test_run_detail__every_timestamp_outside_response_is_iso_8601_utc() -> None:
    document = wire.run_detail(detail())

    found = dict(moments(document))

    assert ".spec.steps[0].attemptLog[0].startTime" in found
    for path, value in found.items():
        if value is None:
            continue
        assert isinstance(value, str) and value.endswith("Z"), (path, value)
        assert datetime.fromisoformat(value).tzinfo is not None, path
    step = document["spec"]["steps"][0]
    assert step["attemptLog"][0] == {
        "attempt": 1,
        "startTime": "2026-03-01T12:00:00Z",
        "endTime": "2026-03-01T12:00:42.500000Z",
        "worker": "w1",
    }


def test_response__keeps_northflanks_unix_seconds() -> None:
    response = wire.response(action())

    assert response == {
        "status": "retrying",
        "error": {"code": 500, "message": "disk full"},
        "retries": {
            "attempts": 1,
            "maxAttempts": 3,
            "timestamp": int(STARTED.timestamp()),
            "nextAttempt": int((ENDED + timedelta(seconds=60)).timestamp()),
        },
        "startTime": int(STARTED.timestamp()),
        "endTime": int(ENDED.timestamp()),
        "data": {"exitCode": 1},
    }


def test_response__pending_node_has_none_and_awaited_approval_says_approval_wait() -> None:
    approval = wire.response(action(NodeStatus.WAITING, kind="Approval", error=None))

    assert wire.response(action(NodeStatus.PENDING)) is None
    assert approval is not None and approval["status"] == "approval_wait"


def test_iso__converts_other_zones_to_utc() -> None:
    moment = datetime(2026, 3, 1, 15, 0, tzinfo=timezone(timedelta(hours=2)))

    assert wire.iso(moment) == "2026-03-01T13:00:00Z"
    assert wire.iso(None) is None


def test_release__camel_case_with_iso_deploy_time() -> None:
    view = ReleaseView("Staging", "api", {"kind": "image", "image": "web:1"}, "run-1", "spec", STARTED)

    assert release(view) == {
        "stage": "Staging",
        "resourceId": "api",
        "artifact": {"kind": "image", "image": "web:1"},
        "runId": "run-1",
        "nodePath": "spec",
        "deployedAt": "2026-03-01T12:00:00Z",
    }
