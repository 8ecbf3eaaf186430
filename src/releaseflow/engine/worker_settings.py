"""A worker's timing and capacity, apart from the worker itself.

Kept in a module of its own so that reading the settings (every command does) does not import the
worker, its executors and the drivers behind them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class WorkerSettings:
    lease_seconds: float = 15.0
    heartbeat_seconds: float = 2.0
    reap_seconds: float = 1.0
    # PostgreSQL: how long a worker's liveness lock must stay released before the reapers take it
    # for dead — time for a live worker whose connection dropped (or whose server restarted) to take
    # its lock back (docs/engine.md, "Dead workers").
    liveness_grace_seconds: float = 2.0
    # Actions are mostly waits on I/O, so many fit in one process.
    max_concurrency: int = 256
    # Sleep between looks for due work when no wake-up arrives (work made due by another
    # process on SQLite, or a missed notification).
    idle_poll_seconds: float = 0.5
    # Look for due notification deliveries this often (the outbox is read with one indexed query).
    deliver_seconds: float = 1.0
    # A delivery being sent is held this long: a worker that dies mid-send leaves it to be sent
    # again after it (the sender's timeout is half of it, so a live sender never doubles a send).
    delivery_hold_seconds: float = 20.0
