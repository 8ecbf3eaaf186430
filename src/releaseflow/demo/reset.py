"""Stopping what an old demo left running, so that ``releaseflow demo --reset`` can start afresh.

The local driver starts services, jobs and PostgreSQL clusters detached from releaseflow on purpose
(they survive its restarts), so removing the demo's data must first stop them: every process working
inside the demo's folders, PostgreSQL servers by their ``postmaster.pid``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterable
from pathlib import Path

from releaseflow.processes import is_alive, processes_under

STOP_SECONDS = 10.0


def stop_processes_under(folders: Iterable[Path], *, timeout: float = STOP_SECONDS) -> list[int]:
    """Stop every process whose working directory is inside one of ``folders``; the pids stopped.

    PostgreSQL servers get a fast shutdown (SIGINT to the postmaster), other processes SIGTERM to
    their process group; whatever still lives after ``timeout`` seconds is killed.
    """
    roots = [folder.resolve() for folder in folders if folder.exists()]
    postmasters = [pid for root in roots for pid in _postmasters(root)]
    for pid in postmasters:
        _signal(pid, signal.SIGINT, group=False)
    others = [pid for pid in processes_under(roots) if pid not in postmasters]
    for pid in others:
        _signal(pid, signal.SIGTERM, group=True)
    stopped = [*postmasters, *others]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(is_alive(pid) for pid in stopped):
        time.sleep(0.1)
    for pid in stopped:
        if is_alive(pid):
            _signal(pid, signal.SIGKILL, group=pid not in postmasters)
    return stopped


def _postmasters(root: Path) -> list[int]:
    found = []
    for pid_file in root.rglob("postmaster.pid"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            found.append(int(pid_file.read_text().splitlines()[0]))
    return [pid for pid in found if is_alive(pid)]


def _signal(pid: int, signum: signal.Signals, *, group: bool) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        # A process of our own group (started by this one) is signalled alone, never our group.
        if group and os.getpgid(pid) != os.getpgrp():
            os.killpg(os.getpgid(pid), signum)
        else:
            os.kill(pid, signum)
