"""Approval nodes waiting for a decision, across runs (read through a partial index)."""

from __future__ import annotations

from releaseflow.store.database import Row, Transaction


async def waiting_approvals(tx: Transaction) -> list[Row]:
    """Every waiting Approval node with its run's labels and place, oldest first."""
    return await tx.fetchall(
        "SELECT n.run_id, n.path, n.ref, n.code, n.data, n.started_at, n.wait_deadline,"
        " r.name AS run_name, r.seq, r.origin_kind, r.origin_by,"
        " f.project_id, f.pipeline_id, f.stage"
        " FROM node_runs n JOIN runs r ON r.id = n.run_id JOIN release_flows f ON f.id = r.flow_id"
        " WHERE n.kind = 'Approval' AND n.status = 'waiting' ORDER BY n.started_at, n.run_id, n.path"
    )
