"""The history reads as JSON: a stage's timeline, two runs compared, delivery figures."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from releaseflow.domain.release_history import StageComparison
from releaseflow.domain.run_diff import MISSING, ValueChange
from releaseflow.engine.insights import RunDiff, RunSide, StageMetrics, TimelineEntry
from releaseflow.wire.runs import iso


def timeline(entries: list[TimelineEntry]) -> list[dict[str, Any]]:
    return [
        {
            "deployedAt": iso(entry.change.entry.deployed_at),
            "resourceId": entry.change.entry.resource_id,
            "from": _artifact(entry.change.previous),
            "to": dict(entry.change.entry.artifact),
            "changed": entry.change.changed,
            "runId": entry.change.entry.run_id,
            "runName": entry.run_name,
            "runKind": entry.run_kind,
            "nodePath": entry.change.entry.node_path,
        }
        for entry in entries
    ]


def _artifact(artifact: Mapping[str, Any] | None) -> dict[str, Any] | None:
    return dict(artifact) if artifact is not None else None


def _side(side: RunSide) -> dict[str, Any]:
    return {
        "id": side.id,
        "displayName": side.display_name,
        "kind": side.kind,
        "status": side.status,
        "flowVersion": side.flow_version,
        "createdAt": iso(side.created_at),
    }


def _changes(changes: list[ValueChange]) -> list[dict[str, Any]]:
    """A key one run does not have is left out of its side (``null`` would be a value)."""
    return [
        {"key": change.key}
        | ({"first": change.before} if change.before is not MISSING else {})
        | ({"second": change.after} if change.after is not MISSING else {})
        for change in changes
    ]


def diff(view: RunDiff) -> dict[str, Any]:
    return {
        "stage": view.stage,
        "first": _side(view.first),
        "second": _side(view.second),
        "template": view.template,
        "arguments": _changes(view.arguments),
        "overrides": _changes(view.overrides),
        "artifacts": _changes(view.artifacts),
        "sameArtifacts": view.same_artifacts,
    }


def _seconds(span: timedelta | None) -> float | None:
    return None if span is None else round(span.total_seconds(), 3)


def metrics(view: StageMetrics) -> dict[str, Any]:
    figures = view.metrics
    return {
        "stage": view.stage,
        "since": iso(figures.window_start),
        "until": iso(figures.window_end),
        "releases": figures.releases,
        "deployments": figures.deployments,
        "deploymentsPerDay": round(figures.deployments_per_day, 4),
        "failed": list(figures.failed),
        "rolledBack": list(figures.rolled_back),
        "changeFailureRate": figures.change_failure_rate,
        "meanTimeToRestoreSeconds": _seconds(figures.mean_time_to_restore),
        "incidents": [
            {
                "badRuns": list(incident.bad_runs),
                "startedAt": iso(incident.started_at),
                "restoredBy": incident.restored_by,
                "restoredAt": iso(incident.restored_at),
            }
            for incident in figures.incidents
        ],
        "leadTimeMedianSeconds": _seconds(figures.lead_time_median),
        "leadTimeMeanSeconds": _seconds(figures.lead_time_mean),
        "leadTimes": len(figures.lead_times),
        "deploysWithoutCommitTime": figures.deploys_without_commit_time,
    }


def comparison(view: StageComparison) -> dict[str, Any]:
    """The side-by-side view of a pipeline: each lineage (a service or job as it exists in each stage)
    with what each of its resources runs there, and the neighbouring stages that differ."""
    return {
        "stages": list(view.stages),
        "lineages": [
            {
                "label": lineage.label,
                "cells": [
                    {
                        "stage": cell.stage,
                        "resources": [
                            {
                                "resourceId": resource_id,
                                "artifact": None if deployed is None else dict(deployed.artifact),
                                "runId": None if deployed is None else deployed.run_id,
                                "deployedAt": None if deployed is None else iso(deployed.deployed_at),
                            }
                            for resource_id, deployed in cell.resources
                        ],
                    }
                    for cell in lineage.cells
                ],
            }
            for lineage in view.lineages
        ],
        "differences": [
            {
                "left": difference.left,
                "right": difference.right,
                "same": difference.same,
                "differing": list(difference.differing),
                "compared": difference.compared,
            }
            for difference in view.differences
        ],
    }
