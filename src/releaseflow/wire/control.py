"""releaseflow's own API as JSON, beyond runs and history: rollback previews and outcomes, pins,
release flow versions, tokens (never their hashes), the trigger log and streamed events."""

from __future__ import annotations

from typing import Any

from releaseflow.domain.rollback import TargetOutcome
from releaseflow.engine.pins import Pin
from releaseflow.engine.queries import FlowVersionView
from releaseflow.engine.rollback import RollbackPreview
from releaseflow.engine.tokens import TokenView
from releaseflow.engine.triggers import LogEntry
from releaseflow.store.records import EventRecord
from releaseflow.wire.runs import iso


def pin(found: Pin | None) -> dict[str, Any] | None:
    if found is None:
        return None
    return {"by": found.by, "reason": found.reason, "runId": found.run_id, "at": iso(found.at)}


def rollback_preview(preview: RollbackPreview) -> dict[str, Any]:
    return {
        "targetRun": {"id": preview.target_run.id, "displayName": preview.target_run.display_name},
        "project": preview.project_id,
        "pipeline": preview.pipeline_id,
        "stage": preview.stage,
        "changes": [
            {
                "resourceId": change.resource_id,
                "kind": change.kind,
                "from": None if change.from_artifact is None else dict(change.from_artifact),
                "to": dict(change.to_artifact),
                "unchanged": change.unchanged,
            }
            for change in preview.plan.changes
        ],
        "leftAsIs": [
            {"resourceId": item.resource_id, "reason": item.reason} for item in preview.plan.left_as_is
        ],
        "missing": list(preview.missing),
        "backups": [
            {
                "runId": offer.run_id,
                "addonId": offer.addon_id,
                "backupId": offer.backup_id,
                "nodeRef": offer.node_ref,
                "takenAt": iso(offer.taken_at),
            }
            for offer in preview.backups
        ],
        "configVersion": preview.config_version,
        "currentVersion": preview.current_version,
        "pin": pin(preview.pin),
        "warning": preview.warning,
    }


def rollback_outcome(outcomes: list[TargetOutcome]) -> list[dict[str, Any]]:
    return [
        {
            "resourceId": item.resource_id,
            "where": item.where,
            "artifact": None if item.artifact is None else dict(item.artifact),
        }
        for item in outcomes
    ]


def flow_version(view: FlowVersionView) -> dict[str, Any]:
    shown = {
        "version": view.version,
        "origin": view.origin,
        "createdAt": iso(view.created_at),
        "current": view.current,
    }
    if view.document is not None:
        shown["document"] = view.document
    return shown


def token(view: TokenView, state: str) -> dict[str, Any]:
    return {
        "id": view.id,
        "name": view.name,
        "project": view.project_id,
        "role": str(view.role),
        "state": state,
        "createdBy": view.created_by,
        "createdAt": iso(view.created_at),
        "expiresAt": iso(view.expires_at),
        "revokedAt": iso(view.revoked_at),
        "lastUsedAt": iso(view.last_used_at),
    }


def trigger_log(entries: list[LogEntry]) -> list[dict[str, Any]]:
    return [
        {
            "at": iso(entry.at),
            "source": entry.source,
            "request": entry.request,
            "decision": entry.decision,
            "reason": entry.reason,
            "runId": entry.run_id,
        }
        for entry in entries
    ]


def stream_event(event: EventRecord) -> dict[str, Any]:
    """One transition of a run (``node`` None) or of one of its nodes, as a stream sends it."""
    return {
        "id": event.id,
        "runId": event.run_id,
        "node": event.node_path,
        "at": iso(event.at),
        "from": event.from_status,
        "to": event.to_status,
        "cause": event.cause,
    }
