"""Run history for rollback: state snapshots at conclusion, rollback targets, pins, skipped triggers,
and the runs list of a stage paged by cursor."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from releaseflow.store.database import Row, Transaction, from_epoch, to_epoch
from releaseflow.store.records import RunRecord, dump_json, load_json


async def snapshot_stage_state(tx: Transaction, run_id: str) -> None:
    """Keep the release state of the run's stage as it is now, with the run (it just concluded)."""
    await tx.execute(
        "INSERT INTO run_release_states (run_id, resource_id, artifact, set_by_run, deployed_at)"
        " SELECT r.id, s.resource_id, s.artifact, s.run_id, s.deployed_at FROM runs r"
        " JOIN release_flows f ON f.id = r.flow_id"
        " JOIN release_state s ON s.project_id = f.project_id AND s.pipeline_id = f.pipeline_id"
        " AND s.stage = f.stage WHERE r.id = ?",
        (run_id,),
    )


async def state_after_run(tx: Transaction, run_id: str) -> dict[str, Row]:
    """The stage's release state right after the run concluded, by resource id (empty when unknown)."""
    rows = await tx.fetchall("SELECT * FROM run_release_states WHERE run_id = ?", (run_id,))
    return {
        row["resource_id"]: {
            **row,
            "artifact": load_json(row["artifact"]),
            "deployed_at": from_epoch(row["deployed_at"]),
        }
        for row in rows
    }


async def record_rollback_targets(tx: Transaction, run_id: str, targets: Sequence[Mapping[str, Any]]) -> None:
    await tx.executemany(
        "INSERT INTO rollback_targets (run_id, resource_id, kind, from_artifact, to_artifact)"
        " VALUES (?, ?, ?, ?, ?)",
        [
            (
                run_id,
                target["resource_id"],
                target["kind"],
                None if target["from_artifact"] is None else dump_json(dict(target["from_artifact"])),
                dump_json(dict(target["to_artifact"])),
            )
            for target in targets
        ],
    )


async def rollback_targets(tx: Transaction, run_id: str) -> list[Row]:
    rows = await tx.fetchall(
        "SELECT * FROM rollback_targets WHERE run_id = ? ORDER BY resource_id", (run_id,)
    )
    return [
        {
            **row,
            "from_artifact": load_json(row["from_artifact"]),
            "to_artifact": load_json(row["to_artifact"]),
        }
        for row in rows
    ]


async def rollbacks_of(tx: Transaction, run_id: str) -> list[RunRecord]:
    rows = await tx.fetchall("SELECT * FROM runs WHERE rollback_of = ? ORDER BY created_at DESC", (run_id,))
    return [RunRecord.from_row(row) for row in rows]


# Pins ----------------------------------------------------------------------------------------------


async def get_pin(tx: Transaction, flow_id: str) -> Row | None:
    row = await tx.fetchone("SELECT * FROM stage_pins WHERE flow_id = ?", (flow_id,))
    return None if row is None else {**row, "pinned_at": from_epoch(row["pinned_at"])}


async def set_pin(
    tx: Transaction, flow_id: str, *, by: str, reason: str, run_id: str | None, at: datetime
) -> None:
    await tx.execute("DELETE FROM stage_pins WHERE flow_id = ?", (flow_id,))
    await tx.execute(
        "INSERT INTO stage_pins (flow_id, pinned_by, reason, run_id, pinned_at) VALUES (?, ?, ?, ?, ?)",
        (flow_id, by, reason, run_id, to_epoch(at)),
    )


async def clear_pin(tx: Transaction, flow_id: str) -> bool:
    return await tx.execute("DELETE FROM stage_pins WHERE flow_id = ?", (flow_id,)) > 0


async def record_skipped_trigger(
    tx: Transaction, flow_id: str, *, origin_kind: str, origin_by: str, reason: str, at: datetime
) -> None:
    await tx.execute(
        "INSERT INTO skipped_triggers (flow_id, origin_kind, origin_by, reason, at) VALUES (?, ?, ?, ?, ?)",
        (flow_id, origin_kind, origin_by, reason, to_epoch(at)),
    )


async def skipped_triggers(tx: Transaction, flow_id: str, limit: int = 10) -> list[Row]:
    rows = await tx.fetchall(
        "SELECT * FROM skipped_triggers WHERE flow_id = ? ORDER BY id DESC LIMIT ?", (flow_id, limit)
    )
    return [{**row, "at": from_epoch(row["at"])} for row in rows]


# The runs list ---------------------------------------------------------------------------------------


async def runs_page(
    tx: Transaction,
    flow_id: str,
    *,
    statuses: Sequence[str] = (),
    kind: str | None = None,
    origin_kind: str | None = None,
    before_seq: int | None = None,
    limit: int = 50,
) -> list[RunRecord]:
    """Runs of a flow newest first, those older than ``before_seq`` (the cursor), at most ``limit``.

    Every filter keeps the query on an index that starts with the flow and ends with seq, so a
    page costs the same with a hundred runs or a hundred thousand.
    """
    sql = "SELECT * FROM runs WHERE flow_id = ?"
    params: list[Any] = [flow_id]
    if statuses:
        sql += f" AND status IN ({', '.join('?' for _ in statuses)})"
        params.extend(statuses)
    if kind:
        sql += " AND kind = ?"
        params.append(kind)
    if origin_kind:
        sql += " AND origin_kind = ?"
        params.append(origin_kind)
    if before_seq is not None:
        sql += " AND seq < ?"
        params.append(before_seq)
    sql += " ORDER BY seq DESC LIMIT ?"
    params.append(limit)
    return [RunRecord.from_row(row) for row in await tx.fetchall(sql, params)]


async def latest_run(tx: Transaction, flow_id: str) -> RunRecord | None:
    row = await tx.fetchone("SELECT * FROM runs WHERE flow_id = ? ORDER BY seq DESC LIMIT 1", (flow_id,))
    return None if row is None else RunRecord.from_row(row)


async def addon_backups_since(tx: Transaction, flow_id: str, seq: int) -> list[Row]:
    """Backups that runs of the flow from ``seq`` on took (successful AddonBackup nodes)."""
    rows = await tx.fetchall(
        "SELECT r.id AS run_id, r.seq, n.ref, n.path, n.code, n.data, n.ended_at FROM node_runs n"
        " JOIN runs r ON r.id = n.run_id"
        " WHERE r.flow_id = ? AND r.seq >= ? AND n.kind = 'AddonBackup' AND n.status = 'success'"
        " ORDER BY r.seq, n.path",
        (flow_id, seq),
    )
    return [
        {
            **row,
            "code": load_json(row["code"]),
            "data": load_json(row["data"]),
            "ended_at": from_epoch(row["ended_at"]),
        }
        for row in rows
    ]
