"""An apply's plan as JSON: what ``POST /api/projects/{projectId}/configuration/apply`` answers."""

from __future__ import annotations

from typing import Any

from releaseflow.domain.config_plan import PlanOutline


def applied_plan(outline: PlanOutline, *, dry_run: bool) -> dict[str, Any]:
    return {
        "changed": outline.has_changes,
        "changes": [
            {"action": change.action, "subject": change.subject, "summary": change.summary}
            for change in outline.changes
        ],
        "unchanged": outline.unchanged,
        "dryRun": dry_run,
    }
