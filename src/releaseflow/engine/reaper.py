"""The reaper: work whose lease expired (its worker died or froze) is made due again at once.

A lost attempt is resumed under the same attempt number (``outcomes.lose_claim``); it is not a
failure of the node and does not wait out the retry backoff.
"""

from __future__ import annotations

from datetime import datetime

from releaseflow.engine.run_events import LeaseLost, apply_event
from releaseflow.engine.templates import TemplateCache
from releaseflow.store import queue
from releaseflow.store.database import Database


async def reap_expired_leases(
    db: Database, now: datetime, templates: TemplateCache, *, expired_before: datetime | None = None
) -> int:
    """Reclaim every node whose lease expired before ``expired_before`` (default: now); returns how many."""
    async with db.transaction() as tx:
        expired = await queue.expired_leases(tx, expired_before or now)
        for node in expired:
            cause = f"worker {node.lease_owner} lost its lease (it stopped or stopped answering)"
            await apply_event(tx, node.run_id, LeaseLost(node, cause), now, templates)
    return len(expired)
