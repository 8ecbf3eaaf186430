"""releaseflow's own API as JSON, beyond runs and history: rollback previews and outcomes, pins,
release flow versions, tokens (never their hashes), the trigger log and streamed events."""

from __future__ import annotations

from typing import Any

from releaseflow.domain.rollback import TargetOutcome
from releaseflow.engine.history import PipelineOverview, StageHeader
from releaseflow.engine.pins import Pin
from releaseflow.engine.queries import FlowVersionView
from releaseflow.engine.release_flows import PipelineDetail
from releaseflow.engine.rollback import RollbackPreview
from releaseflow.engine.tokens import TokenView
from releaseflow.engine.triggers import LogEntry
from releaseflow.store.records import EventRecord
from releaseflow.wire.runs import iso, run_summary


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


def stage_header(header: StageHeader) -> dict[str, Any]:
    """What a stage is doing: its active (else latest) run, its pin, the triggers it skipped."""
    return {
        "stage": header.stage,
        "hasReleaseFlow": header.has_flow,
        "run": None if header.run is None else run_summary(header.run),
        "active": header.active,
        "pin": pin(header.pin),
        "skipped": [
            {
                "origin": {"kind": item.origin_kind, "by": item.origin_by},
                "reason": item.reason,
                "at": iso(item.at),
            }
            for item in header.skipped
        ],
        "nextStep": header.next_step,
    }


def pipeline_overview(overview: PipelineOverview, contents: PipelineDetail | None = None) -> dict[str, Any]:
    """A pipeline with each stage's header and, when given, the resources each stage holds."""
    held = {stage.name: stage.resources for stage in contents.stages} if contents else {}
    return {
        "project": overview.project_id,
        "id": overview.pipeline_id,
        "name": overview.name,
        "stages": [
            {
                **stage_header(header),
                **(
                    {"resources": [{"id": id_, "kind": kind} for id_, kind in held.get(header.stage, ())]}
                    if contents
                    else {}
                ),
            }
            for header in overview.stages
        ],
    }
