"""The work queue inside node_runs: due nodes, leases with fencing tokens, heartbeats, workers."""

from __future__ import annotations

import socket
from datetime import datetime

from releaseflow.domain.statuses import RECLAIMABLE_NODE_STATUSES
from releaseflow.store.database import Transaction, from_epoch, to_epoch
from releaseflow.store.records import NodeRecord


async def claim_due_nodes(
    tx: Transaction, owner: str, now: datetime, lease_until: datetime, limit: int
) -> list[NodeRecord]:
    """Lease up to ``limit`` due nodes to ``owner``; each claim bumps the node's fencing token."""
    lock = " FOR UPDATE SKIP LOCKED" if tx.dialect == "postgresql" else ""
    rows = await tx.fetchall(
        "SELECT id FROM node_runs WHERE due_at IS NOT NULL AND due_at <= ? AND lease_owner IS NULL"
        f" ORDER BY due_at LIMIT ?{lock}",
        (to_epoch(now), limit),
    )
    if not rows:
        return []
    ids = [row["id"] for row in rows]
    marks = ", ".join("?" for _ in ids)
    await tx.execute(
        "UPDATE node_runs SET lease_owner = ?, lease_token = lease_token + 1, lease_expires_at = ?,"
        f" due_at = NULL WHERE id IN ({marks})",
        [owner, to_epoch(lease_until), *ids],
    )
    claimed = await tx.fetchall(f"SELECT * FROM node_runs WHERE id IN ({marks}) ORDER BY became_due_at", ids)
    return [NodeRecord.from_row(row) for row in claimed]


async def next_due_at(tx: Transaction) -> datetime | None:
    value = await tx.fetchvalue(
        "SELECT MIN(due_at) AS due FROM node_runs WHERE due_at IS NOT NULL AND lease_owner IS NULL"
    )
    return from_epoch(value)


async def extend_leases(tx: Transaction, owner: str, until: datetime) -> int:
    return await tx.execute(
        "UPDATE node_runs SET lease_expires_at = ? WHERE lease_owner = ?", (to_epoch(until), owner)
    )


async def expired_leases(tx: Transaction, now: datetime, limit: int = 100) -> list[NodeRecord]:
    statuses = [str(status) for status in RECLAIMABLE_NODE_STATUSES]
    lock = " FOR UPDATE SKIP LOCKED" if tx.dialect == "postgresql" else ""
    rows = await tx.fetchall(
        "SELECT * FROM node_runs WHERE lease_owner IS NOT NULL AND lease_expires_at < ?"
        f" AND status IN ({', '.join('?' for _ in statuses)}) ORDER BY lease_expires_at LIMIT ?{lock}",
        [to_epoch(now), *statuses, limit],
    )
    return [NodeRecord.from_row(row) for row in rows]


async def leased_nodes_of_aborting_runs(tx: Transaction, owner: str) -> list[tuple[str, int]]:
    """(node id, lease token) of nodes ``owner`` holds whose run is being aborted."""
    rows = await tx.fetchall(
        "SELECT n.id, n.lease_token FROM node_runs n JOIN runs r ON r.id = n.run_id"
        " WHERE n.lease_owner = ? AND r.status = 'aborting'",
        (owner,),
    )
    return [(row["id"], int(row["lease_token"])) for row in rows]


async def register_worker(tx: Transaction, worker_id: str, pid: int, now: datetime) -> None:
    await tx.execute(
        "INSERT INTO workers (id, hostname, pid, started_at, heartbeat_at) VALUES (?, ?, ?, ?, ?)",
        (worker_id, socket.gethostname(), pid, to_epoch(now), to_epoch(now)),
    )


async def heartbeat(tx: Transaction, worker_id: str, now: datetime) -> None:
    await tx.execute("UPDATE workers SET heartbeat_at = ? WHERE id = ?", (to_epoch(now), worker_id))


async def forget_worker(tx: Transaction, worker_id: str) -> None:
    await tx.execute("DELETE FROM workers WHERE id = ?", (worker_id,))
