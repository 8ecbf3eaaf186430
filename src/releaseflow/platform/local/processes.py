"""Processes that outlive releaseflow: start them detached, recognise them again, stop them, read their logs.

A service or job is never releaseflow's own child. A tiny launcher (a short-lived child) starts it in a
new session and exits at once, so the process is re-parented to init: releaseflow never leaves zombies,
asyncio never kills it when a subprocess transport is collected, and a restarted releaseflow sees it
exactly as the one that started it did.

A process is known by its pid **and** its start time (field 22 of ``/proc/<pid>/stat``, in clock ticks
since boot): a pid alone may have been reused by an unrelated process after a reboot or a long pause.

The command runs under a wrapper shell that writes its exit status to a file when it ends, so the exit
code of a job (or of a crashed service) can be read by whichever releaseflow process looks next.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from releaseflow.platform.driver import DriverError
from releaseflow.platform.file_lock import open_lock, try_lock
from releaseflow.processes import is_alive, read_start_time, stat_fields

# Variables of releaseflow itself (database URL, data dir, ...) are not the business of what it runs.
OWN_VARIABLE_PREFIX = "RELEASEFLOW_"

# $1 is the user's command, $2 the exit file. The user's command is an argument, never spliced into the
# script, so no quoting of user text is needed anywhere. The file is written under a temporary name and
# renamed, so a reader sees either no exit code or a complete one.
_WRAPPER = 'sh -c "$1"; code=$?; echo "$code" > "$2.tmp" && mv -f "$2.tmp" "$2"; exit "$code"'

# Runs with ``python -I -S``. It forks the wrapper into a new session (its own process group, no
# controlling terminal); before the fork execs, the child writes its own handle (pid, start time, log
# offset, ...) to the marker file, when one is named, so the user's command never runs without a
# durable record of it. A pipe closed by the exec tells the launcher when that is done; then it prints
# the pid and start time and exits, and the wrapper is re-parented to init. Once the marker exists the
# command runs even if the launcher is gone (a kill of releaseflow's process group): a marker without
# a run or an exit code would read as a job killed by a signal. ``lock_fd`` (-1: none) is
# an flock held by whoever decided to start: the child keeps it until its exec, so the lock is held
# without a gap from that decision until the marker exists, even if releaseflow dies in between.
_LAUNCHER = """\
import json, os, sys
log_path, exit_path, wrapper, command, marker, lock_fd, started_at, offset = sys.argv[1:9]
lock_fd = int(lock_fd)
ready, done = os.pipe()
pid = os.fork()
if pid == 0:
    try:
        os.close(ready)
        os.setsid()
        stdin = os.open(os.devnull, os.O_RDONLY)
        log = os.open(log_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        os.dup2(stdin, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        with open("/proc/self/stat", "rb") as stat:
            start_time = int(stat.read().rsplit(b")", 1)[1].split()[19])
        handle = {"pid": os.getpid(), "startTime": start_time, "startedAt": started_at,
                  "logPath": log_path, "logOffset": int(offset), "exitFile": exit_path}
        if marker:
            temporary = marker + ".tmp"
            with open(temporary, "w") as file:
                json.dump(handle, file)
                file.flush()
                os.fsync(file.fileno())
            os.replace(temporary, marker)
        try:
            os.write(done, f"{os.getpid()} {start_time}".encode())
        except BrokenPipeError:
            pass  # the launcher was killed (with releaseflow's group): the marker says the rest
        if lock_fd >= 0:
            os.set_inheritable(lock_fd, False)  # released by the exec, once the marker exists
    except BaseException as error:
        os.write(2, f"releaseflow launcher: {error}\\n".encode())
        os._exit(70)
    try:
        os.execvp("sh", ["sh", "-c", wrapper, "releaseflow-process", command, exit_path])
    except BaseException as error:
        # The marker says the process started: give it an exit code, as the wrapper would have.
        os.write(2, f"releaseflow launcher: cannot run sh: {error}\\n".encode())
        with open(exit_path + ".tmp", "w") as file:
            file.write("127\\n")
        os.replace(exit_path + ".tmp", exit_path)
        os._exit(127)
os.close(done)
if lock_fd >= 0:
    os.close(lock_fd)
with os.fdopen(ready, "rb") as pipe:
    print(pipe.read().decode())
"""

_POLL_SECONDS = 0.05


def now_utc() -> datetime:
    return datetime.now(UTC)


def child_environment(*layers: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without releaseflow's own variables, then ``layers`` in order."""
    env = {name: value for name, value in os.environ.items() if not name.startswith(OWN_VARIABLE_PREFIX)}
    for layer in layers:
        env.update(layer)
    return env


@dataclass(frozen=True)
class ProcessHandle:
    """A process started by ``spawn``: enough to recognise, stop and diagnose it from any process."""

    pid: int
    start_time: int  # /proc/<pid>/stat field 22
    started_at: datetime
    log_path: Path
    log_offset: int  # size of the log before this process wrote to it: its own lines start here
    exit_file: Path

    def to_data(self) -> dict[str, Any]:
        return {
            "pid": self.pid,
            "startTime": self.start_time,
            "startedAt": self.started_at.isoformat(),
            "logPath": str(self.log_path),
            "logOffset": self.log_offset,
            "exitFile": str(self.exit_file),
        }

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> ProcessHandle:
        return cls(
            pid=int(data["pid"]),
            start_time=int(data["startTime"]),
            started_at=datetime.fromisoformat(str(data["startedAt"])),
            log_path=Path(str(data["logPath"])),
            log_offset=int(data["logOffset"]),
            exit_file=Path(str(data["exitFile"])),
        )

    def is_alive(self) -> bool:
        return is_alive(self.pid, self.start_time)

    def exit_code(self) -> int | None:
        return read_exit_code(self.exit_file)

    def log_tail(self, lines: int = 20) -> list[str]:
        return tail(self.log_path, lines, offset=self.log_offset)


async def spawn(
    command: str,
    *,
    cwd: Path,
    env: Mapping[str, str],
    log_path: Path,
    exit_file: Path,
    banner: str = "",
    marker: Path | None = None,
    lock_fd: int | None = None,
) -> ProcessHandle:
    """Start ``sh -c command`` detached from releaseflow; stdout and stderr are appended to ``log_path``.

    ``marker``: a file the new process writes its handle to before the command runs (``read_marker``
    reads it), so a start is findable whatever instant releaseflow dies at. ``lock_fd``: an open file
    holding an flock (``launch_lock``) that the launcher keeps held until the marker exists.
    """
    offset = _prepare_files(command, cwd, log_path, exit_file, banner, marker)
    started_at = now_utc()
    try:
        launcher = await asyncio.create_subprocess_exec(
            sys.executable,
            "-I",
            "-S",
            "-c",
            _LAUNCHER,
            str(log_path),
            str(exit_file),
            _WRAPPER,
            command,
            str(marker or ""),
            str(-1 if lock_fd is None else lock_fd),
            started_at.isoformat(),
            str(offset),
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            pass_fds=() if lock_fd is None else (lock_fd,),
        )
        out, err = await launcher.communicate()
    except OSError as error:
        raise DriverError(f"cannot start '{command}' in {cwd}: {error}") from error
    fields = out.decode(errors="replace").split()
    if launcher.returncode != 0 or len(fields) != 2:
        lines = (err.decode(errors="replace") + "\n".join(tail(log_path, 1, offset=offset))).strip()
        detail = lines.splitlines()[-1:] or ["no output"]
        raise DriverError(f"cannot start '{command}' in {cwd}: the launcher failed ({detail[0]})")
    return ProcessHandle(
        pid=int(fields[0]),
        start_time=int(fields[1]),
        started_at=started_at,
        log_path=log_path,
        log_offset=offset,
        exit_file=exit_file,
    )


def read_marker(marker: Path) -> ProcessHandle | None:
    """The handle a process started with ``spawn(marker=...)`` wrote before its command ran, or None."""
    try:
        return ProcessHandle.from_data(json.loads(marker.read_text(encoding="utf-8")))
    except FileNotFoundError:
        return None


@contextlib.asynccontextmanager
async def launch_lock(path: Path, *, timeout: float) -> AsyncIterator[int]:
    """Hold an exclusive flock on ``path`` and yield its file descriptor (for ``spawn(lock_fd=...)``).

    Held, it means: whoever decides whether to start the process under this lock, and the launcher
    until the process has written its marker. Free, it means nobody is between the two: a marker that
    is absent then proves the process never ran. Polled, so the event loop never blocks on it.
    """
    fd = await asyncio.to_thread(open_lock, path)
    try:
        deadline = time.monotonic() + timeout
        while not try_lock(fd):
            if time.monotonic() >= deadline:
                raise DriverError(f"{path} stayed locked for {timeout:g} s: another start hangs")
            await asyncio.sleep(_POLL_SECONDS / 5)
        yield fd
    finally:
        os.close(fd)  # closing our descriptor releases the lock unless a launcher still holds it


@dataclass(frozen=True)
class CommandResult:
    exit_code: int  # 127 when the program cannot be started; -9 when killed at the timeout
    output: str  # stdout and stderr together, at most the last 64 KiB
    timed_out: bool


async def run_command(
    argv: list[str], *, cwd: Path, env: Mapping[str, str], timeout: float, limit: int = 64 * 1024
) -> CommandResult:
    """Run a short command to its end (unlike ``spawn``, as a child that releaseflow waits for)."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            start_new_session=True,  # at the timeout, the command and whatever it started die together
        )
    except OSError as error:
        return CommandResult(127, f"cannot run {argv[0]} in {cwd}: {error.strerror or error}", False)
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout)
    except TimeoutError:
        _signal_group(process.pid, signal.SIGKILL)
        out, _ = await process.communicate()
        return CommandResult(-signal.SIGKILL.value, out[-limit:].decode(errors="replace"), True)
    assert process.returncode is not None
    return CommandResult(process.returncode, out[-limit:].decode(errors="replace"), False)


def _prepare_files(
    command: str, cwd: Path, log_path: Path, exit_file: Path, banner: str, marker: Path | None
) -> int:
    """Make the folders, drop a stale exit file and marker, write the banner; the log's size for the
    new process."""
    if not cwd.is_dir():
        raise DriverError(f"cannot start '{command}': the folder {cwd} does not exist", retryable=False)
    log_path.parent.mkdir(parents=True, exist_ok=True)
    exit_file.parent.mkdir(parents=True, exist_ok=True)
    # An exit code or marker of an earlier process must not pass for the new one's.
    for stale in (exit_file, marker):
        if stale is not None:
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()
    with log_path.open("ab") as log:
        if banner:
            log.write(f"--- releaseflow {now_utc().isoformat(timespec='seconds')}: {banner}\n".encode())
        return log.tell()


def group_alive(pgid: int) -> bool:
    """Whether any living process is in process group ``pgid``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = stat_fields(int(entry.name))
        if fields is not None and fields[0] not in ("Z", "X") and int(fields[2]) == pgid:
            return True
    return False


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


async def _wait_group_gone(pgid: int, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while group_alive(pgid):
        if loop.time() >= deadline:
            return False
        # Short pauses: a deploy's new process waits for the old one to free the port.
        await asyncio.sleep(_POLL_SECONDS / 5)
    return True


async def stop_process(handle: ProcessHandle, grace_seconds: float = 10.0) -> None:
    """SIGTERM the process group, give it ``grace_seconds``, then SIGKILL what is left.

    A pid that now belongs to another process (a different start time) is left alone. The group is
    the wrapper's (it leads a session of its own), so the command and its children are signalled too.
    """
    current = read_start_time(handle.pid)
    if current is not None and current != handle.start_time:
        return  # the pid was reused: that process is not ours
    # The leader may be gone while children of it still run in its group; while any member lives the
    # kernel does not hand the group's id to a new process, so signalling the group is still safe.
    if current is None and not group_alive(handle.pid):
        return
    _signal_group(handle.pid, signal.SIGTERM)
    if await _wait_group_gone(handle.pid, grace_seconds):
        return
    _signal_group(handle.pid, signal.SIGKILL)
    await _wait_group_gone(handle.pid, 5.0)


def read_exit_code(path: Path) -> int | None:
    try:
        text = path.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return int(text) if text.lstrip("-").isdigit() else None


def tail(path: Path, lines: int = 100, *, offset: int = 0) -> list[str]:
    """The last ``lines`` lines of ``path`` from byte ``offset`` on (at most the last 256 KiB)."""
    if lines <= 0:
        return []
    try:
        with path.open("rb") as file:
            size = file.seek(0, os.SEEK_END)
            start = max(offset, size - 256 * 1024)
            if start >= size:
                return []
            file.seek(start)
            data = file.read()
    except FileNotFoundError:
        return []
    # Lines end at "\n" only (a "\r" of a progress bar stays in its line), as ``log_files`` numbers
    # them: a log's tail and its numbered lines agree.
    text = [line.removesuffix("\r") for line in data.decode("utf-8", errors="replace").split("\n")]
    if text[-1] == "":
        text.pop()  # after the newline that ends the last line
    if start > offset and text:
        text = text[1:]  # the first line was cut in the middle
    return text[-lines:]
