"""Approval nodes waiting for a decision as JSON (``GET /api/approvals``, ``releaseflow approvals``)."""

from __future__ import annotations

from typing import Any

from releaseflow.engine.approval_queue import WaitingApproval
from releaseflow.wire.runs import iso


def waiting_approval(waiting: WaitingApproval) -> dict[str, Any]:
    return {
        "runId": waiting.run_id,
        "runName": waiting.run_name,
        "project": waiting.project_id,
        "pipeline": waiting.pipeline_id,
        "stage": waiting.stage,
        "node": waiting.node,
        "since": iso(waiting.since),
        "expires": iso(waiting.expires),
        "required": waiting.required,
        "approvedBy": list(waiting.approved_by),
        "approvers": list(waiting.approvers),
        "startedBy": waiting.started_by,
    }
