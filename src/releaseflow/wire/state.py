"""Release state as JSON: what a service or job of a stage runs, and which run put it there."""

from __future__ import annotations

from typing import Any

from releaseflow.engine.queries import ReleaseView
from releaseflow.wire.runs import iso


def release(view: ReleaseView) -> dict[str, Any]:
    return {
        "stage": view.stage,
        "resourceId": view.resource_id,
        "artifact": dict(view.artifact),
        "runId": view.run_id,
        "nodePath": view.node_path,
        "deployedAt": iso(view.deployed_at),
    }
