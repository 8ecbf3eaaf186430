"""A worker in its own process, for tests that need several.

Usage: ``python -m tests.integration.worker_process DATABASE_URL [LEASE_SECONDS]`` (default 5).

Runs the real worker with the real executors (no platform drivers) until SIGTERM.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from releaseflow.engine.clock import SystemClock
from releaseflow.engine.executors import default_executors
from releaseflow.engine.worker import Worker, WorkerSettings
from releaseflow.platform.driver import DriverRegistry
from releaseflow.store.database import open_database


async def main(url: str, lease_seconds: float) -> None:
    db = await open_database(url)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    worker = Worker(
        db,
        default_executors(DriverRegistry()),
        SystemClock(),
        # Two slots each, so that neither worker can take all the due work alone.
        WorkerSettings(
            lease_seconds=lease_seconds, heartbeat_seconds=0.5, reap_seconds=0.5, max_concurrency=2
        ),
    )
    print("ready", flush=True)
    try:
        await worker.run(stop)
    finally:
        await db.close()


ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def worker_processes(
    url: str, count: int, lease_seconds: float = 5.0
) -> Iterator[list[subprocess.Popen[str]]]:
    """``count`` worker processes on ``url``, each ready when yielded; stopped with SIGTERM after."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "tests.integration.worker_process", url, str(lease_seconds)]
    processes = [
        subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True) for _ in range(count)
    ]
    try:
        for process in processes:
            assert process.stdout is not None and process.stdout.readline().strip() == "ready"
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.terminate()
        for process in processes:
            process.wait(timeout=15)
            if process.stdout is not None:
                process.stdout.close()  # else its pipe is left to the garbage collector (ResourceWarning)


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], float(sys.argv[2]) if len(sys.argv) > 2 else 5.0))
