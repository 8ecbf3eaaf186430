"""Whether a process lives, and telling it apart from a later one that reused its pid (Linux).

One check for every layer that looks at processes it did not start or no longer holds a handle to:
the command line (is another server on this database still running?), the demo's reset, and the
local driver's services, builds and PostgreSQL clusters. It imports nothing of releaseflow, so any
layer may use it (see the layers in docs/architecture.md).

A process is known by its pid and its start time (field 22 of ``/proc/<pid>/stat``, in clock ticks
since boot): a pid can be reused, a (pid, start time) pair cannot. A zombie (ended, not yet reaped
by its parent) counts as ended.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def processes_under(folders: Iterable[Path]) -> list[int]:
    """Processes (but this one) whose working directory is one of ``folders`` or inside one.

    What the local driver starts runs in a folder of its data directory, detached from releaseflow
    (it survives releaseflow's restarts): this finds it without any record of its pid.
    """
    roots = [Path(folder) for folder in folders]
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cwd = Path(os.readlink(entry / "cwd"))
        except OSError:
            continue
        if any(cwd == root or root in cwd.parents for root in roots):
            found.append(int(entry.name))
    return found


def stat_fields(pid: int) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command name (state is [0]); None if there is no such pid."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_bytes()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces and parentheses; everything after the last ")" is plain.
    return raw.rsplit(b")", 1)[1].decode().split()


def read_start_time(pid: int) -> int | None:
    """Start time of a living process ``pid`` (zombies count as ended), or None."""
    fields = stat_fields(pid)
    if fields is None or fields[0] in ("Z", "X"):
        return None
    return int(fields[19])


def is_alive(pid: int, start_time: int | None = None) -> bool:
    """Whether ``pid`` lives; with ``start_time``, whether it is still the process that started then.

    Where ``/proc`` shows nothing of the pid (no ``/proc``, or one mounted to hide other users'
    processes), the kernel is asked: a pid that exists is taken for the process, because calling a
    running process gone (and acting on that) is worse than waiting for one that ended.
    """
    fields = stat_fields(pid)
    if fields is None:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True  # it exists; it belongs to another user
        return True
    if fields[0] in ("Z", "X"):
        return False
    return start_time is None or int(fields[19]) == start_time
