"""Runs, nodes and events as JSON: the Northflank-style run detail the CLI's ``--json`` and the API send.

Timestamps: every timestamp of releaseflow's own fields is ISO 8601 in UTC with a ``Z``
(``createdAt``, ``startTime``, ``nextAttempt``, an ``attemptLog`` entry's ``startTime``/``endTime``,
an event's ``at``). The one exception is a node's ``response`` object, which keeps the shape
Northflank's API reference documents for it (https://northflank.com/docs/v1/api/project/pipelines/):
``startTime``, ``endTime`` and the ``retries`` times are unix seconds, as Northflank's clients read them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from releaseflow.domain.statuses import NodeStatus
from releaseflow.engine.queries import EventView, NodeView, RunDetail, RunSummary

# Northflank's response.status words for ours. It has no "running" and no "pending": a node with no
# response has not started, and an action under way is "waiting" for its answer.
_RESPONSE_STATUS = {
    NodeStatus.RUNNING: "waiting",
    NodeStatus.WAITING: "waiting",
    NodeStatus.RETRYING: "retrying",
    NodeStatus.SUCCESS: "success",
    NodeStatus.FAILED: "failure",
    NodeStatus.SKIPPED: "skipped",
    NodeStatus.ABORTED: "aborted",
}
# Keys of an attempt log entry that hold a moment (stored as epoch seconds by the engine).
_ATTEMPT_TIMES = ("startTime", "endTime")


def iso(moment: datetime | None) -> str | None:
    """``moment`` in ISO 8601, UTC, with a ``Z``; None stays None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def run_summary(run: RunSummary) -> dict[str, Any]:
    """One item of a runs list."""
    return {
        "id": run.id,
        "name": run.name,
        "displayName": run.display_name,
        "description": run.description,
        "kind": run.kind,
        "status": str(run.status),
        "concluded": run.concluded,
        "triggeredBy": run.triggered_by,
        "origin": {"kind": run.origin_kind, "by": run.origin_by},
        "rollbackOf": run.rollback_of,
        "createdAt": iso(run.created_at),
        "startedAt": iso(run.started_at),
        "concludedAt": iso(run.concluded_at),
        "queuedReason": run.queued_reason,
        "error": run.error,
        "project": run.project_id,
        "pipeline": run.pipeline_id,
        "stage": run.stage,
        "flowVersion": run.flow_version,
        "number": run.seq,
        "resumedFrom": run.resumed_from,
    }


def run_detail(detail: RunDetail) -> dict[str, Any]:
    """A run with its arguments, progress, node tree and events."""
    return {
        **run_summary(detail.run),
        "arguments": dict(detail.arguments),
        "triggerRefs": dict(detail.trigger_refs),
        "progress": {"done": detail.progress.done, "total": detail.progress.total},
        "spec": node(detail.root) if detail.root else None,
        "events": [event(item) for item in detail.events],
    }


def node(view: NodeView) -> dict[str, Any]:
    """A workflow with its steps, or a node with its attempts, code and Northflank ``response``."""
    document: dict[str, Any] = {
        "path": view.path,
        "ref": view.ref,
        "kind": view.kind,
        "status": str(view.status),
        "startTime": iso(view.started_at),
        "endTime": iso(view.ended_at),
        "cause": view.cause,
    }
    if view.is_workflow:
        document["type"] = view.workflow_type
        document["steps"] = [node(child) for child in view.children]
    else:
        document.update(
            attempts=view.attempts,
            maxAttempts=view.max_attempts,
            nextAttempt=iso(view.next_attempt),
            error=dict(view.error) if view.error else None,
            data=view.data,
            code=view.code,
            codeResolved=view.code_resolved,
            attemptLog=[attempt_entry(entry) for entry in view.attempt_log],
            carriedFrom=view.carried_from,
        )
    document["response"] = response(view)
    return document


def attempt_entry(entry: Mapping[str, Any]) -> dict[str, Any]:
    """An attempt log entry with its moments in ISO 8601."""
    shown = dict(entry)
    for key in _ATTEMPT_TIMES:
        value = shown.get(key)
        if isinstance(value, int | float):
            shown[key] = iso(datetime.fromtimestamp(value, UTC))
    return shown


def response(view: NodeView) -> dict[str, Any] | None:
    """Northflank's ``response`` object (times in unix seconds); None for a node that has not started."""
    if view.status is NodeStatus.PENDING:
        return None
    status = _RESPONSE_STATUS[view.status]
    if view.kind == "Approval" and view.status is NodeStatus.WAITING:
        status = "approval_wait"
    answer: dict[str, Any] = {"status": status}
    if view.error:
        answer["error"] = {
            "code": int(view.error.get("code") or 500),
            "message": str(view.error.get("message")),
        }
    if not view.is_workflow and view.attempts:
        retries: dict[str, Any] = {"attempts": view.attempts, "maxAttempts": view.max_attempts}
        last_start = view.attempt_log[-1].get("startTime") if view.attempt_log else None
        if isinstance(last_start, int | float):
            retries["timestamp"] = int(last_start)
        if view.next_attempt is not None:
            retries["nextAttempt"] = _unix(view.next_attempt)
        answer["retries"] = retries
    if view.started_at is not None:
        answer["startTime"] = _unix(view.started_at)
    if view.ended_at is not None:
        answer["endTime"] = _unix(view.ended_at)
    if view.data is not None:
        answer["data"] = view.data
    return answer


def event(view: EventView) -> dict[str, Any]:
    return {
        "id": view.id,
        "at": iso(view.at),
        "node": view.node_path,
        "ref": view.ref,
        "from": view.from_status,
        "to": view.to_status,
        "cause": view.cause,
    }


def _unix(moment: datetime) -> int:
    return int(moment.timestamp())
