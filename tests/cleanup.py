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

PG_CTL = "/usr/lib/postgresql/15/bin/pg_ctl"


def stop_everything_under(folder: Path) -> None:
    folder = folder.resolve()
    for pid_file in folder.rglob("postmaster.pid"):
        data = pid_file.parent
        command = [PG_CTL, "stop", "-D", str(data), "-m", "immediate", "-w"]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, capture_output=True, timeout=30)
    own_group = os.getpgrp()
    for pid in _processes_in(folder):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            group = os.getpgid(pid)
            # A process started by the test itself shares the test's group: kill it alone.
            if group == own_group:
                os.kill(pid, signal.SIGKILL)
            else:
                os.killpg(group, signal.SIGKILL)


def _processes_in(folder: Path) -> list[int]:
    """Processes whose working directory is inside ``folder``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if cwd == folder or folder in cwd.parents:
            found.append(int(entry.name))
    return found
