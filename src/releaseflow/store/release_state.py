"""Release state: per service and job, the artifact it runs now and the run that put it there.

``release_state`` holds the current row per resource; ``release_history`` keeps every deploy, so the
state right after any run can be recovered (rollback builds on this).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from releaseflow.store.database import Row, Transaction, to_epoch
from releaseflow.store.records import dump_json, load_json


async def record_deploy(
    tx: Transaction,
    *,
    project_id: str,
    resource_id: str,
    pipeline_id: str,
    stage: str,
    artifact: Mapping[str, Any],
    run_id: str,
    node_path: str,
    at: datetime,
) -> None:
    values = (pipeline_id, stage, dump_json(dict(artifact)), run_id, node_path, to_epoch(at))
    changed = await tx.execute(
        "UPDATE release_state SET pipeline_id = ?, stage = ?, artifact = ?, run_id = ?, node_path = ?,"
        " deployed_at = ? WHERE project_id = ? AND resource_id = ?",
        (*values, project_id, resource_id),
    )
    if not changed:
        await tx.execute(
            "INSERT INTO release_state (pipeline_id, stage, artifact, run_id, node_path, deployed_at,"
            " project_id, resource_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (*values, project_id, resource_id),
        )
    await tx.execute(
        "INSERT INTO release_history (pipeline_id, stage, artifact, run_id, node_path, deployed_at,"
        " project_id, resource_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
        (*values, project_id, resource_id),
    )


def _decoded(rows: list[Row]) -> list[Row]:
    return [{**row, "artifact": load_json(row["artifact"])} for row in rows]


async def current_artifacts(tx: Transaction, project_id: str) -> dict[str, dict[str, Any]]:
    """The artifact each resource of a project runs now, by resource id."""
    rows = await tx.fetchall(
        "SELECT resource_id, artifact FROM release_state WHERE project_id = ?", (project_id,)
    )
    return {row["resource_id"]: load_json(row["artifact"]) for row in rows}


async def stage_state(tx: Transaction, project_id: str, pipeline_id: str, stage: str | None) -> list[Row]:
    sql = "SELECT * FROM release_state WHERE project_id = ? AND pipeline_id = ?"
    params: list[Any] = [project_id, pipeline_id]
    if stage is not None:
        sql += " AND stage = ?"
        params.append(stage)
    return _decoded(await tx.fetchall(sql + " ORDER BY stage, resource_id", params))


async def history(
    tx: Transaction, project_id: str, pipeline_id: str, stage: str | None = None, limit: int = 50
) -> list[Row]:
    sql = "SELECT * FROM release_history WHERE project_id = ? AND pipeline_id = ?"
    params: list[Any] = [project_id, pipeline_id]
    if stage is not None:
        sql += " AND stage = ?"
        params.append(stage)
    return _decoded(await tx.fetchall(sql + " ORDER BY id DESC LIMIT ?", [*params, limit]))


async def run_deploys(tx: Transaction, run_id: str) -> list[Row]:
    """The deploys one run made, in order."""
    return _decoded(
        await tx.fetchall("SELECT * FROM release_history WHERE run_id = ? ORDER BY id", (run_id,))
    )


async def newest_changes(
    tx: Transaction, project_id: str, pipeline_id: str, stage: str, limit: int
) -> list[Row]:
    """The newest ``limit`` deploys of a stage, newest first, each with the artifact its target ran
    before it (``previous``, None for a target's first deploy).

    A deploy's previous one is usually among those read; for the oldest read deploy of each target it
    is looked up by the (project, resource, id) index. A long history is never read whole.
    """
    rows = _decoded(
        await tx.fetchall(
            "SELECT * FROM release_history WHERE project_id = ? AND pipeline_id = ? AND stage = ?"
            " ORDER BY id DESC LIMIT ?",
            (project_id, pipeline_id, stage, limit),
        )
    )
    changes: list[Row] = []
    newer: dict[str, Row] = {}  # per target, the deploy that waits to learn what came before it
    for row in rows:
        if row["resource_id"] in newer:
            newer[row["resource_id"]]["previous"] = row["artifact"]
        change = {**row, "previous": None}
        newer[row["resource_id"]] = change
        changes.append(change)
    for resource_id, change in newer.items():
        before = await tx.fetchvalue(
            "SELECT artifact FROM release_history WHERE project_id = ? AND resource_id = ? AND id < ?"
            " ORDER BY id DESC LIMIT 1",
            (project_id, resource_id, change["id"]),
        )
        change["previous"] = load_json(before)
    return changes


async def deploy_outlines(
    tx: Transaction, project_id: str, pipeline_id: str, stage: str, since: datetime | None
) -> list[Row]:
    """The deploys of a stage from ``since`` on, oldest first, their artifacts left as JSON text."""
    sql = (
        "SELECT run_id, resource_id, artifact, deployed_at FROM release_history"
        " WHERE project_id = ? AND pipeline_id = ? AND stage = ?"
    )
    params: list[Any] = [project_id, pipeline_id, stage]
    if since is not None:
        sql += " AND deployed_at >= ?"
        params.append(to_epoch(since))
    return await tx.fetchall(sql + " ORDER BY id", params)
