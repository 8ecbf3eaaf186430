"""The PostgreSQL clusters that the local driver runs itself.

A managed addon is one cluster of the host's PostgreSQL binaries in ``<root>/<project>/<addon>/``::

    addon.json   state: port, generated passwords, role; written atomically, mode 0600
    data/        PGDATA (owned by the server user)
    run/         the unix socket directory (owned by the server user)
    log/         server.log (owned by the server user)
    backups/     backup files (see postgres_backups.py)

The cluster listens on 127.0.0.1 only, on a port chosen free at creation and kept in ``data/releaseflow.conf``
so that it comes back on the same port. Everything releaseflow does goes over TCP with a password
(scram-sha-256): the process may run as root while the server runs as ``postgres``, so peer authentication
would map to the wrong role. The postmaster is started in its own session and is not releaseflow's child:
it keeps running when releaseflow exits and is found again through ``data/postmaster.pid``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import pwd
import secrets
import shutil
import socket
import stat
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from releaseflow.platform.driver import DriverError
from releaseflow.platform.file_lock import file_lock
from releaseflow.platform.local.postgres_connection import (
    CONNECT_TIMEOUT,
    ConnectionTarget,
    Probe,
    explain_connection_error,
    probe,
)
from releaseflow.platform.local.postgres_tools import (
    INSTALL_HINT,
    CommandResult,
    find_bin_dir,
    free_port,
    run_command,
)
from releaseflow.platform.local.state_files import read_json, write_json
from releaseflow.processes import is_alive

SERVER_USER = "postgres"  # the Debian package creates it; PostgreSQL refuses to run as root
SUPERUSER = "postgres"
START_TIMEOUT = 60  # seconds pg_ctl waits for a start, stop or restart


def utcnow() -> datetime:
    return datetime.now(UTC)


def port_taken(port: int) -> DriverError:
    # Not retried: the operator must free the port or choose another one.
    return DriverError(
        f"port {port} of 127.0.0.1 (the addon's spec.port) is already in use by another program;"
        " free it, choose another spec.port, or remove spec.port to let releaseflow choose a free one",
        retryable=False,
    )


def require_free_port(port: int) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As PostgreSQL does: a port whose last connections linger in TIME_WAIT is free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            raise port_taken(port) from None


# -- the managed cluster -----------------------------------------------------------------------------


@dataclass
class ClusterState:
    """What ``addon.json`` keeps about a managed cluster."""

    port: int
    superuser_password: str = field(repr=False)
    role: str
    role_password: str = field(repr=False)
    created_at: str
    initialized: bool = False  # set once initdb, first start and provisioning all succeeded
    wanted_running: bool = True  # False after an explicit stop; start() brings back only wanted ones
    version: str = ""  # major version of the binaries that created it (PG_VERSION)
    # The addon's spec.port chose the port: never moved to another one when it is taken.
    port_fixed: bool = False

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": "managed",
            "port": self.port,
            "superuserPassword": self.superuser_password,
            "role": self.role,
            "rolePassword": self.role_password,
            "createdAt": self.created_at,
            "initialized": self.initialized,
            "wantedRunning": self.wanted_running,
            "version": self.version,
            "portFixed": self.port_fixed,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ClusterState:
        return cls(
            port=int(data["port"]),
            superuser_password=str(data["superuserPassword"]),
            role=str(data["role"]),
            role_password=str(data["rolePassword"]),
            created_at=str(data["createdAt"]),
            initialized=bool(data.get("initialized", False)),
            wanted_running=bool(data.get("wantedRunning", True)),
            version=str(data.get("version", "")),
            port_fixed=bool(data.get("portFixed", False)),
        )


def _server_user_ids() -> tuple[int, int, set[int]]:
    try:
        user = pwd.getpwnam(SERVER_USER)
    except KeyError:
        raise DriverError(
            f"releaseflow runs as root and there is no `{SERVER_USER}` system user to run PostgreSQL as "
            f"(PostgreSQL refuses to run as root); {INSTALL_HINT}, which creates it",
            retryable=False,
        ) from None
    groups = set(os.getgrouplist(SERVER_USER, user.pw_gid))
    return user.pw_uid, user.pw_gid, groups


def _unreachable_ancestor(path: Path, uid: int, groups: set[int]) -> Path | None:
    """The first directory above ``path`` that user ``uid`` cannot enter, if any."""
    for directory in [*reversed(path.parents), path]:
        info = directory.stat()
        if info.st_uid == uid:
            allowed = info.st_mode & stat.S_IXUSR
        elif info.st_gid in groups:
            allowed = info.st_mode & stat.S_IXGRP
        else:
            allowed = info.st_mode & stat.S_IXOTH
        if not allowed:
            return directory
    return None


def _initdb_locale() -> str:
    # C.UTF-8 sorts like C (no collation changes on glibc upgrades) yet knows Unicode letters.
    return "C.UTF-8" if Path("/usr/lib/locale/C.utf8").exists() else "C"


class ManagedCluster:
    """One releaseflow-run PostgreSQL cluster in its addon directory."""

    def __init__(
        self,
        directory: Path,
        *,
        bin_dir: Path | None = None,
        server_settings: Mapping[str, str] | None = None,
    ) -> None:
        self.directory = directory
        self.data_dir = directory / "data"
        self.socket_dir = directory / "run"
        self.log_file = directory / "log" / "server.log"
        self.state_file = directory / "addon.json"
        self._bin_dir = bin_dir
        self._bin_dir_checked = False
        self._server_settings = dict(server_settings or {})
        self._as_root = os.geteuid() == 0

    # -- state -------------------------------------------------------------------------------------

    def load_state(self) -> ClusterState | None:
        data = read_json(self.state_file)
        return None if data is None else ClusterState.from_json(data)

    def save_state(self, state: ClusterState) -> None:
        write_json(self.state_file, state.to_json())

    def postmaster_pid(self) -> int | None:
        """The pid of the running postmaster of this cluster, from ``postmaster.pid``; None if none runs."""
        try:
            first = (self.data_dir / "postmaster.pid").read_text().split("\n", 1)[0]
            pid = int(first.strip())
        except (OSError, ValueError):
            return None
        return pid if is_alive(pid) else None

    def admin_target(self, state: ClusterState, dbname: str = "postgres") -> ConnectionTarget:
        return ConnectionTarget("127.0.0.1", state.port, dbname, SUPERUSER, state.superuser_password)

    def app_target(self, state: ClusterState, dbname: str) -> ConnectionTarget:
        return ConnectionTarget("127.0.0.1", state.port, dbname, state.role, state.role_password)

    @property
    def bin_dir(self) -> Path:
        if not self._bin_dir_checked:
            self._bin_dir = find_bin_dir(self._bin_dir)
            self._bin_dir_checked = True
        assert self._bin_dir is not None
        return self._bin_dir

    def binaries_version(self) -> str:
        """The major version of the server binaries, from the directory name or ``PG_VERSION``."""
        data_version = self.data_dir / "PG_VERSION"
        with contextlib.suppress(OSError):
            return data_version.read_text().strip()
        name = self.bin_dir.parent.name
        return name if name.isdigit() else ""

    # -- lifecycle ---------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def locked(self, timeout: float = 120.0) -> AsyncIterator[None]:
        """Exclusive use of this cluster across processes (several workers may share one root)."""
        path = self.directory / ".lock"
        stuck = DriverError(
            f"another releaseflow process holds {path} for more than {timeout:g} s; check for a stuck worker"
        )
        async with file_lock(path, mode=0o600, timeout=timeout, stuck=stuck):
            yield

    async def initialize(self, role: str, port: int | None = None) -> ClusterState:
        """initdb a new cluster (wiping a half-made one) and start it; the caller then provisions.

        ``port`` is the addon's ``spec.port``; without it a free port is chosen.
        """
        if port is not None:
            require_free_port(port)
        bin_dir = self.bin_dir
        if self._as_root:
            uid, gid, groups = _server_user_ids()
            if shutil.which("runuser") is None:
                raise DriverError("runuser not found (util-linux); it runs PostgreSQL as `postgres`")
        if self.data_dir.exists():
            await asyncio.to_thread(shutil.rmtree, self.data_dir)
        # The server user must enter the addon folder and its project folder, whatever the umask said.
        for ours in (self.directory.parent, self.directory):
            ours.mkdir(parents=True, exist_ok=True)
            if self._as_root:
                ours.chmod(0o755)
        for directory in (self.data_dir, self.socket_dir, self.log_file.parent):
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if self._as_root:
                os.chown(directory, uid, gid)
        if self._as_root:
            blocked = _unreachable_ancestor(self.data_dir, uid, groups)
            if blocked is not None:
                raise DriverError(
                    f"the `{SERVER_USER}` user cannot enter {blocked}, so PostgreSQL cannot reach "
                    f"{self.data_dir}; allow it (e.g. `chmod o+x {blocked}`) or choose a releaseflow data "
                    "root it can reach",
                    retryable=False,
                )
        state = ClusterState(
            port=port if port is not None else free_port(),
            port_fixed=port is not None,
            superuser_password=secrets.token_urlsafe(24),
            role=role,
            role_password=secrets.token_urlsafe(24),
            created_at=utcnow().isoformat(),
        )
        # Saved before initdb so that a crash here leaves a record that is redone, not a stray cluster.
        self.save_state(state)
        password_file = self.directory / ".initdb-password"
        password_file.write_text(state.superuser_password + "\n")
        password_file.chmod(0o600)
        if self._as_root:
            os.chown(password_file, uid, gid)
        try:
            result = await self._as_server_user(
                [
                    str(bin_dir / "initdb"),
                    "--pgdata",
                    str(self.data_dir),
                    "--username",
                    SUPERUSER,
                    "--pwfile",
                    str(password_file),
                    # Peer on the socket (for a human: `runuser -u postgres -- psql -h <run dir>`),
                    # passwords on TCP, which is what releaseflow and jobs use.
                    "--auth-local",
                    "peer",
                    "--auth-host",
                    "scram-sha-256",
                    "--encoding",
                    "UTF8",
                    "--locale",
                    _initdb_locale(),
                ],
                timeout=300,
            )
        finally:
            password_file.unlink(missing_ok=True)
        if result.returncode != 0:
            raise self._failure("initdb", result)
        state.version = self.binaries_version()
        self._write_settings(state.port)
        with (self.data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write(
                "\n# releaseflow: listen address, port and socket of this addon\ninclude 'releaseflow.conf'\n"
            )
        self.save_state(state)
        await self.start(state)
        return state

    def _write_settings(self, port: int) -> None:
        settings = {
            "listen_addresses": "'127.0.0.1'",
            "port": str(port),
            "unix_socket_directories": f"'{self.socket_dir}'",
            "password_encryption": "'scram-sha-256'",
            **self._server_settings,
        }
        path = self.data_dir / "releaseflow.conf"
        path.write_text(
            "# Written by releaseflow; changes are overwritten when the port must change.\n"
            + "".join(f"{name} = {value}\n" for name, value in settings.items())
        )
        if self._as_root:
            uid, gid, _ = _server_user_ids()
            os.chown(path, uid, gid)

    async def start(self, state: ClusterState, attempts: int = 3) -> None:
        """Start the postmaster; when its port was taken meanwhile, move to a free one."""
        for attempt in range(1, attempts + 1):
            log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
            result = await self._pg_ctl("start", "-l", str(self.log_file))
            if result.returncode == 0:
                return
            log = self._log_since(log_offset)
            if ("could not bind" in log or "already in use" in log) and state.port_fixed:
                raise port_taken(state.port)
            if ("could not bind" in log or "already in use" in log) and attempt < attempts:
                state.port = free_port()
                self._write_settings(state.port)
                self.save_state(state)
                continue
            if "No space left on device" in log or "No space left on device" in result.tail():
                raise DriverError(
                    f"disk full: PostgreSQL could not start in {self.data_dir}; free space on that "
                    f"filesystem. Server log:\n{log or result.tail()}"
                )
            raise DriverError(
                f"pg_ctl start failed (exit {result.returncode}) for the cluster in {self.data_dir}:\n"
                f"{result.tail()}\n--- server log ({self.log_file}) ---\n{log or '(empty)'}"
            )

    async def stop(self, *, mode: str = "fast") -> None:
        if self.postmaster_pid() is None:
            return
        result = await self._pg_ctl("stop", "-m", mode)
        if result.returncode != 0 and self.postmaster_pid() is not None:
            # fast waits for nothing but a checkpoint; when even that fails, do not leave it half-stopped.
            result = await self._pg_ctl("stop", "-m", "immediate")
            if result.returncode != 0 and self.postmaster_pid() is not None:
                raise self._failure("pg_ctl stop", result)

    async def move_to_port(self, state: ClusterState, port: int | None) -> None:
        """Listen on ``port`` (spec.port), or keep the current port once spec.port is removed."""
        if port is None:
            state.port_fixed = False
            return
        state.port_fixed = True
        if port == state.port:
            return
        require_free_port(port)
        await self.stop()
        state.port = port
        self._write_settings(port)
        self.save_state(state)
        await self.start(state)

    async def restart(self, state: ClusterState) -> None:
        if self.postmaster_pid() is None:
            await self.start(state)
            return
        result = await self._pg_ctl("restart", "-m", "fast", "-l", str(self.log_file))
        if result.returncode != 0:
            raise self._failure("pg_ctl restart", result)

    async def provision(self, state: ClusterState, database: str) -> None:
        """Make sure the role (with its password) and the database (owned by it) exist."""
        target = self.admin_target(state)
        try:
            connection = await psycopg.AsyncConnection.connect(
                target.conninfo(), connect_timeout=CONNECT_TIMEOUT, autocommit=True
            )
        except psycopg.Error as error:
            raise DriverError(explain_connection_error(error, target)) from error
        async with connection:
            role = sql.Identifier(state.role)
            password = sql.Literal(state.role_password)
            cursor = await connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (state.role,))
            verb = sql.SQL("ALTER") if await cursor.fetchone() else sql.SQL("CREATE")
            await connection.execute(sql.SQL("{} ROLE {} LOGIN PASSWORD {}").format(verb, role, password))
            cursor = await connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            if await cursor.fetchone() is None:
                await connection.execute(
                    sql.SQL("CREATE DATABASE {} OWNER {}").format(sql.Identifier(database), role)
                )

    async def wait_until_accepting(self, state: ClusterState, timeout: float = 60.0) -> Probe:
        """A postmaster that runs may still be starting (crash recovery): poll until it answers."""
        deadline = time.monotonic() + timeout
        while True:
            result = await probe(self.admin_target(state))
            if result.ok or time.monotonic() >= deadline or self.postmaster_pid() is None:
                return result
            await asyncio.sleep(0.2)

    async def remove(self) -> None:
        """Stop the cluster and delete everything but its backups."""
        await self.stop(mode="immediate")
        for path in (self.data_dir, self.socket_dir, self.log_file.parent):
            await asyncio.to_thread(shutil.rmtree, path, True)
        for path in (self.state_file, self.directory / ".lock"):
            path.unlink(missing_ok=True)

    # -- helpers -----------------------------------------------------------------------------------

    async def _pg_ctl(self, *args: str) -> CommandResult:
        return await self._as_server_user(
            [
                str(self.bin_dir / "pg_ctl"),
                args[0],
                "-D",
                str(self.data_dir),
                "-w",
                "-t",
                str(START_TIMEOUT),
                *args[1:],
            ],
            timeout=START_TIMEOUT + 30,
        )

    async def _as_server_user(self, argv: list[str], *, timeout: float) -> CommandResult:
        prefix = ["runuser", "-u", SERVER_USER, "--"] if self._as_root else []
        # Own session: a Ctrl-C or SIGTERM meant for releaseflow's process group must not reach the
        # postmaster, which outlives releaseflow on purpose.
        return await run_command([*prefix, *argv], cwd=self.directory, timeout=timeout, new_session=True)

    def _log_since(self, offset: int) -> str:
        try:
            with self.log_file.open("rb") as handle:
                handle.seek(offset)
                text = handle.read().decode(errors="replace")
        except OSError:
            return ""
        return "\n".join(text.strip().splitlines()[-25:])

    def _failure(self, what: str, result: CommandResult) -> DriverError:
        log = self._log_since(max(0, (self.log_file.stat().st_size if self.log_file.exists() else 0) - 4000))
        hint = ""
        if "No space left on device" in result.tail() + log:
            hint = " (disk full: free space on that filesystem)"
        return DriverError(
            f"{what} failed (exit {result.returncode}) for {self.data_dir}{hint}:\n{result.tail()}"
            + (f"\n--- server log ({self.log_file}) ---\n{log}" if log else "")
        )
