"""Projects, resources, pipelines, stages and versioned release flows.

Pruning something with history archives it (``archived_at``) instead of deleting it: lists leave
archived rows out unless asked (``include_archived``), and ``get_flow`` by stage does not find an
archived flow, so nothing can start a run of it; reads by id (``get_pipeline``, ``get_flow_by_id``,
flow versions, runs) still find everything. Saving an archived row again restores it.
"""

from __future__ import annotations

import secrets
import uuid
from datetime import datetime
from typing import Any

from releaseflow.store.database import Row, Transaction, to_epoch
from releaseflow.store.records import FlowRecord, dump_json, load_json


async def list_projects(tx: Transaction) -> list[Row]:
    return await tx.fetchall("SELECT * FROM projects ORDER BY id")


async def save_project(tx: Transaction, project_id: str, name: str, description: str, now: datetime) -> None:
    changed = await tx.execute(
        "UPDATE projects SET name = ?, description = ?, updated_at = ? WHERE id = ?",
        (name, description, to_epoch(now), project_id),
    )
    if not changed:
        await tx.execute(
            "INSERT INTO projects (id, name, description, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
            (project_id, name, description, to_epoch(now), to_epoch(now)),
        )


def _live(include_archived: bool, column: str = "archived_at") -> str:
    return "" if include_archived else f" AND {column} IS NULL"


async def list_resources(tx: Transaction, project_id: str, *, include_archived: bool = False) -> list[Row]:
    rows = await tx.fetchall(
        f"SELECT * FROM resources WHERE project_id = ?{_live(include_archived)} ORDER BY kind, id",
        (project_id,),
    )
    return [{**row, "spec": load_json(row["spec"])} for row in rows]


async def archived_resources(tx: Transaction, project_id: str) -> set[str]:
    rows = await tx.fetchall(
        "SELECT id FROM resources WHERE project_id = ? AND archived_at IS NOT NULL", (project_id,)
    )
    return {row["id"] for row in rows}


async def save_resource(
    tx: Transaction, project_id: str, resource_id: str, kind: str, driver: str, spec: Any, now: datetime
) -> None:
    changed = await tx.execute(
        "UPDATE resources SET kind = ?, driver = ?, spec = ?, updated_at = ?, archived_at = NULL"
        " WHERE project_id = ? AND id = ?",
        (kind, driver, dump_json(spec), to_epoch(now), project_id, resource_id),
    )
    if not changed:
        await tx.execute(
            "INSERT INTO resources (project_id, id, kind, driver, spec, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (project_id, resource_id, kind, driver, dump_json(spec), to_epoch(now), to_epoch(now)),
        )


async def delete_resource(tx: Transaction, project_id: str, resource_id: str) -> None:
    await tx.execute(
        "DELETE FROM stage_resources WHERE project_id = ? AND resource_id = ?", (project_id, resource_id)
    )
    await tx.execute("DELETE FROM resources WHERE project_id = ? AND id = ?", (project_id, resource_id))


async def get_pipeline(tx: Transaction, project_id: str, pipeline_id: str) -> Row | None:
    return await tx.fetchone(
        "SELECT * FROM pipelines WHERE project_id = ? AND id = ?", (project_id, pipeline_id)
    )


async def list_pipelines(tx: Transaction, project_id: str, *, include_archived: bool = False) -> list[Row]:
    return await tx.fetchall(
        f"SELECT * FROM pipelines WHERE project_id = ?{_live(include_archived)} ORDER BY id", (project_id,)
    )


async def save_pipeline(
    tx: Transaction, project_id: str, pipeline_id: str, name: str, description: str, now: datetime
) -> None:
    changed = await tx.execute(
        "UPDATE pipelines SET name = ?, description = ?, updated_at = ?, archived_at = NULL"
        " WHERE project_id = ? AND id = ?",
        (name, description, to_epoch(now), project_id, pipeline_id),
    )
    if not changed:
        await tx.execute(
            "INSERT INTO pipelines (project_id, id, name, description, created_at, updated_at)"
            " VALUES (?, ?, ?, ?, ?, ?)",
            (project_id, pipeline_id, name, description, to_epoch(now), to_epoch(now)),
        )


async def list_stages(
    tx: Transaction, project_id: str, pipeline_id: str, *, include_archived: bool = False
) -> list[str]:
    rows = await tx.fetchall(
        f"SELECT name FROM stages WHERE project_id = ? AND pipeline_id = ?{_live(include_archived)}"
        " ORDER BY position",
        (project_id, pipeline_id),
    )
    return [row["name"] for row in rows]


async def archived_stages(tx: Transaction, project_id: str, pipeline_id: str) -> list[str]:
    rows = await tx.fetchall(
        "SELECT name FROM stages WHERE project_id = ? AND pipeline_id = ? AND archived_at IS NOT NULL"
        " ORDER BY position",
        (project_id, pipeline_id),
    )
    return [row["name"] for row in rows]


async def save_stage(tx: Transaction, project_id: str, pipeline_id: str, name: str, position: int) -> None:
    changed = await tx.execute(
        "UPDATE stages SET position = ?, archived_at = NULL"
        " WHERE project_id = ? AND pipeline_id = ? AND name = ?",
        (position, project_id, pipeline_id, name),
    )
    if not changed:
        await tx.execute(
            "INSERT INTO stages (project_id, pipeline_id, name, position) VALUES (?, ?, ?, ?)",
            (project_id, pipeline_id, name, position),
        )


async def stage_resources(tx: Transaction, project_id: str, pipeline_id: str, stage: str) -> list[Row]:
    """The services, jobs and addons a stage holds, with their kinds."""
    return await tx.fetchall(
        "SELECT r.id, r.kind, r.driver FROM stage_resources s"
        " JOIN resources r ON r.project_id = s.project_id AND r.id = s.resource_id"
        " WHERE s.project_id = ? AND s.pipeline_id = ? AND s.stage = ? ORDER BY r.id",
        (project_id, pipeline_id, stage),
    )


async def set_stage_resources(
    tx: Transaction, project_id: str, pipeline_id: str, stage: str, resource_ids: list[str]
) -> None:
    await tx.execute(
        "DELETE FROM stage_resources WHERE project_id = ? AND pipeline_id = ? AND stage = ?",
        (project_id, pipeline_id, stage),
    )
    for resource_id in resource_ids:
        await tx.execute(
            "DELETE FROM stage_resources WHERE project_id = ? AND resource_id = ?", (project_id, resource_id)
        )
        await tx.execute(
            "INSERT INTO stage_resources (project_id, resource_id, pipeline_id, stage) VALUES (?, ?, ?, ?)",
            (project_id, resource_id, pipeline_id, stage),
        )


async def get_flow(
    tx: Transaction, project_id: str, pipeline_id: str, stage: str, *, include_archived: bool = False
) -> FlowRecord | None:
    """The stage's release flow; an archived one only when asked (it must not start runs)."""
    row = await tx.fetchone(
        "SELECT * FROM release_flows WHERE project_id = ? AND pipeline_id = ? AND stage = ?"
        + _live(include_archived),
        (project_id, pipeline_id, stage),
    )
    return None if row is None else FlowRecord.from_row(row)


async def flow_archived(tx: Transaction, flow_id: str) -> bool:
    value = await tx.fetchvalue("SELECT archived_at FROM release_flows WHERE id = ?", (flow_id,))
    return value is not None


async def get_flow_by_id(tx: Transaction, flow_id: str) -> FlowRecord | None:
    row = await tx.fetchone("SELECT * FROM release_flows WHERE id = ?", (flow_id,))
    return None if row is None else FlowRecord.from_row(row)


async def add_flow_version(
    tx: Transaction,
    project_id: str,
    pipeline_id: str,
    stage: str,
    document: Any,
    origin: str,
    now: datetime,
) -> int:
    """Store ``document`` as the new current version of the stage's flow (created on first use, and
    restored from the archive when it was archived)."""
    flow = await get_flow(tx, project_id, pipeline_id, stage, include_archived=True)
    if flow is None:
        flow_id = str(uuid.uuid4())
        version = 1
        await tx.execute(
            "INSERT INTO release_flows (id, project_id, pipeline_id, stage, current_version, secret_seed,"
            " created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (
                flow_id,
                project_id,
                pipeline_id,
                stage,
                version,
                secrets.token_hex(32),
                to_epoch(now),
                to_epoch(now),
            ),
        )
    else:
        flow_id = flow.id
        await tx.lock_row("release_flows", "id", flow_id)
        current = await tx.fetchvalue("SELECT current_version FROM release_flows WHERE id = ?", (flow_id,))
        version = int(current) + 1
        await tx.execute(
            "UPDATE release_flows SET current_version = ?, updated_at = ?, archived_at = NULL WHERE id = ?",
            (version, to_epoch(now), flow_id),
        )
    await tx.execute(
        "INSERT INTO release_flow_versions (flow_id, version, document, origin, created_at)"
        " VALUES (?, ?, ?, ?, ?)",
        (flow_id, version, dump_json(document), origin, to_epoch(now)),
    )
    return version


async def get_flow_version(tx: Transaction, flow_id: str, version: int) -> Row | None:
    row = await tx.fetchone(
        "SELECT * FROM release_flow_versions WHERE flow_id = ? AND version = ?", (flow_id, version)
    )
    return None if row is None else {**row, "document": load_json(row["document"])}


async def list_flow_versions(tx: Transaction, flow_id: str) -> list[Row]:
    rows = await tx.fetchall(
        "SELECT version, origin, created_at FROM release_flow_versions WHERE flow_id = ? ORDER BY version",
        (flow_id,),
    )
    return rows


async def delete_stage(tx: Transaction, project_id: str, pipeline_id: str, stage: str) -> None:
    await tx.execute(
        "DELETE FROM stages WHERE project_id = ? AND pipeline_id = ? AND name = ?",
        (project_id, pipeline_id, stage),
    )


async def delete_pipeline(tx: Transaction, project_id: str, pipeline_id: str) -> None:
    await tx.execute("DELETE FROM pipelines WHERE project_id = ? AND id = ?", (project_id, pipeline_id))


async def flow_has_runs(tx: Transaction, flow_id: str) -> bool:
    return await tx.fetchone("SELECT 1 FROM runs WHERE flow_id = ? LIMIT 1", (flow_id,)) is not None


async def flow_unfinished_runs(tx: Transaction, flow_id: str, finished: tuple[str, ...]) -> int:
    """Runs of the flow whose status is not one of ``finished``."""
    marks = ", ".join("?" for _ in finished)
    value = await tx.fetchvalue(
        f"SELECT COUNT(*) FROM runs WHERE flow_id = ? AND status NOT IN ({marks})", (flow_id, *finished)
    )
    return int(value or 0)


async def resource_has_history(tx: Transaction, project_id: str, resource_id: str) -> bool:
    """Whether a run ever deployed to the resource (its release history would lose its subject)."""
    row = await tx.fetchone(
        "SELECT 1 FROM release_history WHERE project_id = ? AND resource_id = ? LIMIT 1",
        (project_id, resource_id),
    )
    return row is not None


async def archive_resource(tx: Transaction, project_id: str, resource_id: str, now: datetime) -> None:
    """Out of every stage and every list; its release history stays."""
    await tx.execute(
        "DELETE FROM stage_resources WHERE project_id = ? AND resource_id = ?", (project_id, resource_id)
    )
    await tx.execute(
        "UPDATE resources SET archived_at = ? WHERE project_id = ? AND id = ?",
        (to_epoch(now), project_id, resource_id),
    )


async def archive_flow(tx: Transaction, flow_id: str, now: datetime) -> None:
    await tx.execute("UPDATE release_flows SET archived_at = ? WHERE id = ?", (to_epoch(now), flow_id))


async def restore_flow(tx: Transaction, flow_id: str, now: datetime) -> None:
    await tx.execute(
        "UPDATE release_flows SET archived_at = NULL, updated_at = ? WHERE id = ?", (to_epoch(now), flow_id)
    )


async def archive_stage(
    tx: Transaction, project_id: str, pipeline_id: str, stage: str, now: datetime
) -> None:
    """The stage and its flow leave lists and triggers; its resources are freed for other stages."""
    await tx.execute(
        "DELETE FROM stage_resources WHERE project_id = ? AND pipeline_id = ? AND stage = ?",
        (project_id, pipeline_id, stage),
    )
    await tx.execute(
        "UPDATE release_flows SET archived_at = ? WHERE project_id = ? AND pipeline_id = ? AND stage = ?",
        (to_epoch(now), project_id, pipeline_id, stage),
    )
    await tx.execute(
        "UPDATE stages SET archived_at = ? WHERE project_id = ? AND pipeline_id = ? AND name = ?",
        (to_epoch(now), project_id, pipeline_id, stage),
    )


async def archive_pipeline(tx: Transaction, project_id: str, pipeline_id: str, now: datetime) -> None:
    for stage in await list_stages(tx, project_id, pipeline_id):
        await archive_stage(tx, project_id, pipeline_id, stage, now)
    await tx.execute(
        "UPDATE pipelines SET archived_at = ? WHERE project_id = ? AND id = ?",
        (to_epoch(now), project_id, pipeline_id),
    )


async def delete_flow(tx: Transaction, flow_id: str) -> None:
    await tx.execute("DELETE FROM release_flow_versions WHERE flow_id = ?", (flow_id,))
    await tx.execute("DELETE FROM release_flows WHERE id = ?", (flow_id,))


async def resources_in_context(tx: Transaction, project_id: str) -> list[Row]:
    """Every resource of a project with the stage that holds it and the artifact it runs (one query)."""
    rows = await tx.fetchall(
        "SELECT r.id, r.kind, r.driver, r.spec, s.pipeline_id AS placed_pipeline, s.stage AS placed_stage,"
        " rs.artifact FROM resources r"
        " LEFT JOIN stage_resources s ON s.project_id = r.project_id AND s.resource_id = r.id"
        " LEFT JOIN release_state rs ON rs.project_id = r.project_id AND rs.resource_id = r.id"
        " WHERE r.project_id = ? AND r.archived_at IS NULL ORDER BY r.id",
        (project_id,),
    )
    return [{**row, "spec": load_json(row["spec"]), "artifact": load_json(row["artifact"])} for row in rows]
