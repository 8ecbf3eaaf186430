"""Stopping what a test left running under a folder: detached services, jobs, PostgreSQL clusters.

The local driver starts processes detached from releaseflow on purpose (they survive its restarts),
so a test that ran releaseflow must stop them itself.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from pathlib import Path

from releaseflow.processes import processes_under

PG_CTL = "/usr/lib/postgresql/15/bin/pg_ctl"


def stop_everything_under(folder: Path) -> None:
    folder = folder.resolve()
    for pid_file in folder.rglob("postmaster.pid"):
        data = pid_file.parent
        command = [PG_CTL, "stop", "-D", str(data), "-m", "immediate", "-w"]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, capture_output=True, timeout=30)
    kill_processes_under(folder)


def kill_processes_under(folder: Path) -> None:
    """SIGKILL every process whose working directory lies under ``folder``, with its process group."""
    own_group = os.getpgrp()
    for pid in processes_under([folder.resolve()]):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            group = os.getpgid(pid)
            # A process started by the test itself shares the test's group: kill it alone.
            if group == own_group:
                os.kill(pid, signal.SIGKILL)
            else:
                os.killpg(group, signal.SIGKILL)
