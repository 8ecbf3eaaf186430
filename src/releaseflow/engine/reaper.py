"""The reaper: work whose lease expired (its worker died or froze) goes back to the retry policy."""

from __future__ import annotations

from datetime import datetime

from releaseflow.domain.statuses import NodeStatus
from releaseflow.engine.admission import settle
from releaseflow.engine.executors.base import Failed
from releaseflow.engine.outcomes import apply_answer
from releaseflow.engine.templates import TemplateCache
from releaseflow.store import queue
from releaseflow.store import runs as run_store
from releaseflow.store.database import Database


async def reap_expired_leases(
    db: Database, now: datetime, templates: TemplateCache, *, expired_before: datetime | None = None
) -> int:
    """Reclaim every node whose lease expired before ``expired_before`` (default: now); returns how many."""
    async with db.transaction() as tx:
        expired = await queue.expired_leases(tx, expired_before or now)
        for node in expired:
            await tx.lock_row("runs", "id", node.run_id)
            if node.status is NodeStatus.WAITING:
                # Only a poll was lost; the action itself is still running on the platform.
                await run_store.update_node(
                    tx,
                    node.id,
                    str(NodeStatus.WAITING),
                    {"lease_owner": None, "lease_expires_at": None, "due_at": now, "became_due_at": now},
                )
                tx.wake_workers()
            else:
                lost = Failed(f"worker {node.lease_owner} lost its lease (it stopped or stopped answering)")
                await apply_answer(tx, node, lost, now)
        for run_id in {node.run_id for node in expired}:
            await settle(tx, run_id, now, templates)
    return len(expired)
