"""An exclusive lock shared by every process on one host: an ``flock`` on a file.

Drivers keep their state in files that several releaseflow processes (a server and its workers) share;
this is how one of them does a step alone (start a job run once, change a cluster). The kernel releases
the lock when its holder dies, so a kill -9 never leaves it taken.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

from releaseflow.platform.driver import DriverError


@contextlib.asynccontextmanager
async def file_lock(path: Path, *, mode: int, timeout: float, stuck: DriverError) -> AsyncIterator[None]:
    """Hold an exclusive ``flock`` on ``path``; raise ``stuck`` if it is not ours within ``timeout``.

    The lock is polled, so the event loop never blocks on it while another process holds it.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, mode)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if try_lock(fd):
                break
            if time.monotonic() >= deadline:
                raise stuck
            await asyncio.sleep(0.05)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def open_lock(path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    return os.open(path, os.O_RDWR | os.O_CREAT, 0o600)


def try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True
