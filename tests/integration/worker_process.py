"""A worker in its own process, for tests that need several.

Usage: ``python -m tests.integration.worker_process DATABASE_URL``.

Runs the real worker with the real executors (no platform drivers) until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys

from releaseflow.engine.clock import SystemClock
from releaseflow.engine.executors import default_executors
from releaseflow.engine.worker import Worker, WorkerSettings
from releaseflow.platform.driver import DriverRegistry
from releaseflow.store.database import open_database


async def main(url: str) -> None:
    db = await open_database(url)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    worker = Worker(
        db,
        default_executors(DriverRegistry()),
        SystemClock(),
        # Two slots each, so that neither worker can take all the due work alone.
        WorkerSettings(lease_seconds=5.0, heartbeat_seconds=0.5, reap_seconds=0.5, max_concurrency=2),
    )
    print("ready", flush=True)
    try:
        await worker.run(stop)
    finally:
        await db.close()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1]))
