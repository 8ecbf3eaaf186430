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


async def stage_history(tx: Transaction, project_id: str, pipeline_id: str, stage: str) -> list[Row]:
    """Every deploy of a stage, oldest first (a timeline needs what each deploy replaced)."""
    return _decoded(
        await tx.fetchall(
            "SELECT * FROM release_history WHERE project_id = ? AND pipeline_id = ? AND stage = ?"
            " ORDER BY id",
            (project_id, pipeline_id, stage),
        )
    )


async def run_deploys(tx: Transaction, run_id: str) -> list[Row]:
    """The deploys one run made, in order."""
    return _decoded(
        await tx.fetchall("SELECT * FROM release_history WHERE run_id = ? ORDER BY id", (run_id,))
    )
