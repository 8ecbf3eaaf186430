"""The reaper: work whose worker died or froze is made due again at once.

A worker is known dead when its lease expired (it stopped extending it) or, on PostgreSQL, when its
liveness lock has stayed released for a grace period (its process ended: store/liveness.py). A lost
attempt is resumed under the same attempt number (``outcomes.lose_claim``); it is not a failure of
the node and does not wait out the retry backoff.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from releaseflow.engine.run_events import LeaseLost, apply_event
from releaseflow.engine.templates import TemplateCache
from releaseflow.store import liveness, queue
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


@dataclass
class LockWatch:
    """What one reaper has seen of other workers' liveness locks, pass after pass.

    A worker counts as dead only once its lock has been seen released for ``grace`` without a break,
    all within one life of the server: a live worker whose connection dropped, or that has not yet
    taken its lock again after the server restarted, has that long to take it back. Whatever was seen
    before a pass failed (the database away) is forgotten: nobody is reaped across an outage.
    """

    grace: timedelta
    server_started: datetime | None = None
    released_since: dict[str, datetime] = field(default_factory=dict)

    def forget(self) -> None:
        self.server_started = None
        self.released_since.clear()

    def dead(self, server_started: datetime, released: set[str], now: datetime) -> list[str]:
        """Note a pass that saw the locks of ``released`` free; returns the workers now known dead."""
        if server_started != self.server_started:
            self.forget()  # a restart released every lock: each worker starts its grace again
            self.server_started = server_started
        self.released_since = {worker: self.released_since.get(worker, now) for worker in released}
        return sorted(worker for worker, since in self.released_since.items() if now - since >= self.grace)


async def reap_dead_workers(db: Database, now: datetime, templates: TemplateCache, watch: LockWatch) -> int:
    """Reclaim the nodes leased to workers whose liveness lock stayed released (PostgreSQL only);
    returns how many. Their leases need not have expired: their processes are gone."""
    async with db.transaction() as tx:
        started = await liveness.server_started_at(tx)
        released = await liveness.without_lock(tx, await liveness.owners_of_leases(tx))
        dead = watch.dead(started, released, now)
        nodes = await liveness.leases_of(tx, dead)
        for node in nodes:
            cause = f"worker {node.lease_owner} died (its liveness lock was released: its process ended)"
            await apply_event(tx, node.run_id, LeaseLost(node, cause), now, templates)
    return len(nodes)
