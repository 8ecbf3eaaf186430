"""Worker liveness on PostgreSQL: a session advisory lock that a worker holds for as long as it lives.

Each worker process holds ``pg_advisory_lock(key of its worker id)`` on a connection of its own. When
the process dies — SIGKILL, a crash, the host's kernel ending it — the kernel closes its socket and
PostgreSQL releases the lock at once; a lease, by contrast, has to run out. The reaper reads which
locks are held (``pg_locks``) to tell dead workers from live ones (engine/reaper.py, and
docs/engine.md, "Dead workers" for why this never reaps a live worker in normal operation).

SQLite needs none of this: it serves one process, which takes back every lease left behind when it
starts.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Collection
from datetime import datetime

import psycopg

from releaseflow.domain.statuses import RECLAIMABLE_NODE_STATUSES
from releaseflow.store.database import Database, Transaction
from releaseflow.store.outages import Backoff, FailureStreak, pause
from releaseflow.store.postgres import CONNECT_TIMEOUT_SECONDS, PostgresDatabase
from releaseflow.store.records import NodeRecord

log = logging.getLogger(__name__)

# A worker whose lock connection dropped tries again quickly, and at most this long apart: the
# reapers give it a grace period (WorkerSettings.liveness_grace_seconds) to take its lock back.
RECONNECT_BACKOFF = Backoff(maximum=0.5)
# While an earlier session of this worker still holds the lock (the server has not yet noticed that
# its connection is gone), look again this often.
RETAKE_SECONDS = 0.25


def lock_key(worker_id: str) -> int:
    """The advisory lock key of a worker: 64 bits of a hash of its id, as PostgreSQL's signed bigint.

    64 bits make two live workers sharing a key (each then hides the other's death) vanishingly rare."""
    digest = hashlib.blake2b(f"releaseflow worker {worker_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class LivenessLock:
    """Holds one worker's advisory lock on a dedicated connection, and takes it again after the
    connection drops or the server restarts. ``held`` is set while the lock is known to be held."""

    def __init__(self, db: PostgresDatabase, worker_id: str, check_seconds: float) -> None:
        self.db = db
        self.worker_id = worker_id
        self.key = lock_key(worker_id)
        # How often a quiet connection is asked whether it still answers (a dropped network path sends
        # nothing; a closed socket is noticed at once).
        self.check_seconds = check_seconds
        self.held = asyncio.Event()

    @classmethod
    def for_database(cls, db: Database, worker_id: str, check_seconds: float) -> LivenessLock | None:
        """The lock for a worker of ``db``, or None where liveness is not tracked (SQLite)."""
        if isinstance(db, PostgresDatabase):
            return cls(db, worker_id, check_seconds)
        return None

    async def hold(self) -> None:
        """Hold the lock until cancelled. Rides out lost connections; raises on anything else (a bug)."""
        streak = FailureStreak(
            self.db, f"holding the liveness lock of worker {self.worker_id}", RECONNECT_BACKOFF
        )
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.db.url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_SECONDS
                ) as connection:
                    await self._take(connection)
                    streak.succeeded()
                    self.held.set()
                    await self._watch(connection)
            except Exception as error:
                self.held.clear()
                await pause(streak.failed(error))
            finally:
                self.held.clear()

    async def _take(self, connection: psycopg.AsyncConnection[tuple[bool]]) -> None:
        while True:
            cursor = await connection.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))
            row = await cursor.fetchone()
            if row is not None and row[0]:
                return
            await asyncio.sleep(RETAKE_SECONDS)

    async def _watch(self, connection: psycopg.AsyncConnection[tuple[bool]]) -> None:
        """Return never; raise as soon as the connection is lost (and with it the lock)."""
        while True:
            # Waits on the socket: a closed connection (a restart, a terminated backend) raises at once.
            async for _ in connection.notifies(timeout=self.check_seconds):
                pass
            try:
                async with asyncio.timeout(self.check_seconds + CONNECT_TIMEOUT_SECONDS):
                    await connection.execute("SELECT 1")
            except TimeoutError:
                # A silent network path: as good as lost (and as transient), so connect again.
                raise psycopg.OperationalError("the liveness lock's connection stopped answering") from None


async def server_started_at(tx: Transaction) -> datetime:
    """When the PostgreSQL server started: every advisory lock is gone after a restart."""
    started: datetime = await tx.fetchvalue("SELECT pg_postmaster_start_time() AS started")
    return started


async def owners_of_leases(tx: Transaction) -> set[str]:
    """The registered workers holding a lease on a node that a lost lease would hand back."""
    statuses = [str(status) for status in RECLAIMABLE_NODE_STATUSES]
    rows = await tx.fetchall(
        "SELECT DISTINCT n.lease_owner FROM node_runs n JOIN workers w ON w.id = n.lease_owner"
        f" WHERE n.status IN ({', '.join('?' for _ in statuses)})",
        statuses,
    )
    return {row["lease_owner"] for row in rows}


async def without_lock(tx: Transaction, workers: Collection[str]) -> set[str]:
    """Those of ``workers`` whose liveness lock nobody holds in this database."""
    if not workers:
        return set()
    # A bigint advisory lock shows as classid (high 32 bits) and objid (low 32 bits), objsubid 1.
    rows = await tx.fetchall(
        "SELECT (classid::bigint << 32) | objid::bigint AS key FROM pg_locks"
        " WHERE locktype = 'advisory' AND objsubid = 1 AND granted"
        " AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
    )
    held = {int(row["key"]) for row in rows}
    return {worker for worker in workers if lock_key(worker) not in held}


async def leases_of(tx: Transaction, workers: Collection[str], limit: int = 100) -> list[NodeRecord]:
    """The nodes leased to ``workers`` that a lost lease hands back, locked for reclaiming."""
    if not workers:
        return []
    statuses = [str(status) for status in RECLAIMABLE_NODE_STATUSES]
    rows = await tx.fetchall(
        f"SELECT * FROM node_runs WHERE lease_owner IN ({', '.join('?' for _ in workers)})"
        f" AND status IN ({', '.join('?' for _ in statuses)}) ORDER BY lease_expires_at LIMIT ?"
        " FOR UPDATE SKIP LOCKED",
        [*workers, *statuses, limit],
    )
    return [NodeRecord.from_row(row) for row in rows]
