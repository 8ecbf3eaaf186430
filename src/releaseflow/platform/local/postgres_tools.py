"""The host's PostgreSQL programs: finding them, running them, and telling their processes apart.

Used by the managed clusters (postgres_cluster.py) and by backups and restores (postgres_backups.py).
Every command runs with ``LC_ALL=C`` so that its messages can be recognised and explained.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from releaseflow.platform.driver import DriverError
from releaseflow.processes import is_alive, read_start_time

DEFAULT_BIN_DIR = Path("/usr/lib/postgresql/15/bin")
INSTALL_HINT = "install the PostgreSQL server binaries (Debian/Ubuntu: `apt-get install -y postgresql-15`)"
SERVER_BINARIES = ("initdb", "pg_ctl", "postgres")


# -- processes ---------------------------------------------------------------------------------------


def process_token(pid: int) -> str | None:
    """The start time of ``pid`` as the records keep it (text): tells it apart from a later one."""
    start_time = read_start_time(pid)
    return None if start_time is None else str(start_time)


def token_alive(pid: int, token: str | None) -> bool:
    """Whether ``pid`` is still the process whose ``process_token`` was ``token``."""
    return is_alive(pid, int(token) if token and token.isdigit() else None)


@dataclass(frozen=True)
class CommandResult:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str

    def tail(self, lines: int = 15) -> str:
        text = "\n".join(part for part in (self.stderr.strip(), self.stdout.strip()) if part)
        return "\n".join(text.splitlines()[-lines:]) or "(no output)"


async def kill_process(process: asyncio.subprocess.Process) -> None:
    if process.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        process.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(process.wait(), timeout=5)
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
        await process.wait()


def command_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    # LC_ALL=C: messages in English, so that errors can be recognised and explained.
    env = {key: value for key, value in os.environ.items() if not key.startswith("PG")}
    env["LC_ALL"] = "C"
    env.update(extra or {})
    return env


async def run_command(
    argv: Sequence[str],
    *,
    cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 120.0,
    new_session: bool = False,
) -> CommandResult:
    """Run a command to completion; a missing program becomes a DriverError that names it."""
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=dict(env) if env is not None else command_env(),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=new_session,
        )
    except FileNotFoundError as error:
        raise DriverError(f"program not found: {argv[0]}; {INSTALL_HINT}", retryable=False) from error
    try:
        stdout, stderr = await asyncio.wait_for(process.communicate(), timeout=timeout)
    except TimeoutError:
        await kill_process(process)
        raise DriverError(f"{Path(argv[0]).name} did not finish within {timeout:g} s") from None
    finally:
        await kill_process(process)  # cancelled: never leave the child behind
    return CommandResult(
        tuple(argv),
        process.returncode if process.returncode is not None else -1,
        stdout.decode(errors="replace"),
        stderr.decode(errors="replace"),
    )


# -- binaries ----------------------------------------------------------------------------------------


def find_bin_dir(explicit: Path | None = None) -> Path:
    """The directory of the server binaries: ``explicit``, the Debian path of 15, ``pg_config``, PATH."""
    looked: list[Path] = []

    def usable(candidate: Path) -> bool:
        looked.append(candidate)
        return all((candidate / name).is_file() for name in SERVER_BINARIES)

    if explicit is not None:
        if usable(explicit):
            return explicit
    elif usable(DEFAULT_BIN_DIR):
        return DEFAULT_BIN_DIR
    else:
        pg_config = shutil.which("pg_config")
        if pg_config is not None:
            # One quick synchronous call, made only when the usual directory is absent.
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                out = subprocess.run(
                    [pg_config, "--bindir"], capture_output=True, text=True, timeout=10, check=False
                ).stdout.strip()
                if out and usable(Path(out)):
                    return Path(out)
        initdb = shutil.which("initdb")
        if initdb is not None and usable(Path(initdb).resolve().parent):
            return Path(initdb).resolve().parent
    raise DriverError(
        f"PostgreSQL server binaries ({', '.join(SERVER_BINARIES)}) not found (looked in: "
        f"{', '.join(map(str, looked)) or 'PATH'}); {INSTALL_HINT}",
        retryable=False,
    )


def find_client_tool(name: str, bin_dir: Path | None) -> str:
    """``pg_dump``/``pg_restore``: next to the server binaries when known, else on PATH."""
    if bin_dir is not None and (bin_dir / name).is_file():
        return str(bin_dir / name)
    with contextlib.suppress(DriverError):
        found = find_bin_dir() / name
        if found.is_file():
            return str(found)
    on_path = shutil.which(name)
    if on_path is None:
        raise DriverError(
            f"{name} not found (PostgreSQL client tools); install them "
            "(Debian/Ubuntu: `apt-get install -y postgresql-client-15`, or postgresql-15)",
            retryable=False,
        )
    return on_path


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])
