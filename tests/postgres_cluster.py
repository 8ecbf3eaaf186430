"""A throwaway PostgreSQL 15 cluster for the test suite.

``PostgresCluster().start()`` returns a libpq URL of a superuser connection to the ``postgres`` database
of a server that is either

* the one named by ``RELEASEFLOW_TEST_POSTGRES_URL``, when that is set (nothing is started or stopped;
  the role must be allowed to create databases), or
* a brand-new cluster: ``initdb`` into a fresh temporary directory, trust authentication, listening on
  a free port on 127.0.0.1 only, with its unix socket inside that directory and durability switched off
  (``fsync``, ``synchronous_commit``, ``full_page_writes``) because nothing in it needs to survive.

PostgreSQL refuses to run as root, which CI and sessions are: then ``initdb`` and ``pg_ctl`` run as the
``postgres`` system user (created by the Debian package) in a directory it owns.

For outage tests, ``terminate_backends()`` cuts every client connection (``pg_terminate_backend``, on any
server), and on a cluster of its own ``stop_server()`` / ``start_server()`` take the server down and bring
it back on the same port, ``restart()`` does both (``pg_ctl restart``).

``stop()`` stops the server and deletes the directory. It also runs at interpreter exit, and a small
watchdog process does it if this process dies without a chance to clean up (SIGKILL), so a postmaster is
never left behind. Every failure raises ``PostgresClusterError`` with the tail of the server log: the
suite fails, never skips, when PostgreSQL cannot be started.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

URL_ENV = "RELEASEFLOW_TEST_POSTGRES_URL"
BIN_DIR_ENV = "RELEASEFLOW_TEST_POSTGRES_BIN"
DEFAULT_BIN_DIR = Path("/usr/lib/postgresql/15/bin")
INSTALL_HINT = (
    "Install the PostgreSQL 15 server binaries (Debian: `apt-get install -y postgresql-15`; `.ci/run` does "
    f"it), or point {URL_ENV} at a server where the role may create databases."
)

# Test-only settings: nothing in these clusters has to survive a crash.
SERVER_SETTINGS: Mapping[str, str] = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "200",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "'32MB'",
    "log_min_messages": "warning",
}

# Runs beside the tests; when the test process goes away by any means its stdin closes, and it stops
# the cluster that the test process could not stop itself.
_WATCHDOG = """
import os, shutil, subprocess, sys
pg_ctl, data_dir, base_dir, *run_as = sys.argv[1:]
sys.stdin.read()
if os.path.exists(os.path.join(data_dir, "postmaster.pid")):
    subprocess.run([*run_as, pg_ctl, "stop", "-D", data_dir, "-m", "immediate", "-w"],
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=base_dir)
shutil.rmtree(base_dir, ignore_errors=True)
"""


class PostgresClusterError(RuntimeError):
    """PostgreSQL could not be started or stopped; the message says why and what to do."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _kill_postmaster(data_dir: Path) -> None:
    """Last resort when ``pg_ctl stop`` failed: never delete the directory under a running server."""
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split()[0])
        os.kill(pid, signal.SIGKILL)
    except (OSError, ValueError, IndexError):
        pass


class PostgresCluster:
    """One throwaway PostgreSQL server, or the external one named by ``RELEASEFLOW_TEST_POSTGRES_URL``."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        self.external_url: str | None = env.get(URL_ENV) or None
        self.bin_dir = Path(env.get(BIN_DIR_ENV) or DEFAULT_BIN_DIR)
        self.base_dir: Path | None = None
        self.port: int | None = None
        self._url: str | None = None
        self._watchdog: subprocess.Popen[bytes] | None = None

    # -- public ------------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """The admin URL; only valid after ``start()``."""
        if self._url is None:
            raise PostgresClusterError("the PostgreSQL test cluster has not been started")
        return self._url

    def start(self) -> str:
        """Start the server (or adopt the external one) and return its admin URL."""
        if self._url is not None:
            return self._url
        if self.external_url is not None:
            self._url = self.external_url
            return self._url
        self._check_binaries()
        self.base_dir = Path(tempfile.mkdtemp(prefix="releaseflow-pg-"))
        atexit.register(self.stop)
        try:
            self._chown_to_server_user(self.base_dir)
            self._start_watchdog()
            self._initdb()
            self._start_server()
        except BaseException:
            self.stop()
            raise
        return self.url

    def stop(self) -> None:
        """Stop the server and delete its directory; safe to call more than once."""
        base_dir, self.base_dir, self._url = self.base_dir, None, None
        if base_dir is None:
            return
        data_dir = base_dir / "data"
        try:
            if (data_dir / "postmaster.pid").exists():
                # Immediate: nothing needs to be written back, and it never waits on open sessions.
                result = self._run_as_server_user(
                    [str(self.bin_dir / "pg_ctl"), "stop", "-D", str(data_dir), "-m", "immediate", "-w"],
                    cwd=base_dir,
                    check=False,
                )
                if result.returncode != 0:
                    _kill_postmaster(data_dir)
        finally:
            shutil.rmtree(base_dir, ignore_errors=True)
            if self._watchdog is not None:
                self._watchdog.communicate(timeout=30)
                self._watchdog = None

    def terminate_backends(self) -> int:
        """Cut every client connection but this one (``pg_terminate_backend``); returns how many."""
        with psycopg.connect(self.url, autocommit=True, connect_timeout=10) as conn:
            rows = conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                " WHERE pid <> pg_backend_pid() AND backend_type = 'client backend'"
            ).fetchall()
        return sum(1 for (terminated,) in rows if terminated)

    def stop_server(self) -> None:
        """Take the server down (fast shutdown: clients are cut off), keeping its data and port."""
        base_dir = self._own_cluster("stop")
        self._run_as_server_user(
            [
                str(self.bin_dir / "pg_ctl"),
                "stop",
                "-D",
                str(base_dir / "data"),
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
            ],
            cwd=base_dir,
        )

    def start_server(self) -> None:
        """Bring the server stopped by ``stop_server()`` back, on the same port."""
        self._own_cluster("start")
        assert self.port is not None
        self._pg_ctl_start(self.port, check=True)

    def restart(self) -> None:
        """A full restart of the server (``pg_ctl restart``, fast mode): clients are cut off."""
        base_dir = self._own_cluster("restart")
        self._run_as_server_user(
            [
                str(self.bin_dir / "pg_ctl"),
                "restart",
                "-D",
                str(base_dir / "data"),
                "-m",
                "fast",
                "-l",
                str(base_dir / "server.log"),
                "-w",
                "-t",
                "60",
            ],
            cwd=base_dir,
        )

    def _own_cluster(self, action: str) -> Path:
        if self.base_dir is None:
            raise PostgresClusterError(
                f"cannot {action} the PostgreSQL server: "
                + ("it is the external one named by " + URL_ENV if self.external_url else "it is not running")
            )
        return self.base_dir

    def __enter__(self) -> str:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- steps -------------------------------------------------------------------------------------

    def _check_binaries(self) -> None:
        missing = [name for name in ("initdb", "pg_ctl") if not (self.bin_dir / name).is_file()]
        if missing:
            raise PostgresClusterError(
                f"PostgreSQL server binaries not found: {', '.join(missing)} in {self.bin_dir}. "
                + INSTALL_HINT
            )
        if os.geteuid() == 0:
            try:
                pwd.getpwnam("postgres")
            except KeyError:
                raise PostgresClusterError(
                    "running as root, but there is no `postgres` system user to run PostgreSQL as "
                    "(PostgreSQL refuses to run as root). " + INSTALL_HINT
                ) from None

    def _chown_to_server_user(self, path: Path) -> None:
        if os.geteuid() == 0:
            user = pwd.getpwnam("postgres")
            os.chown(path, user.pw_uid, user.pw_gid)

    def _start_watchdog(self) -> None:
        assert self.base_dir is not None
        self._watchdog = subprocess.Popen(
            [
                sys.executable,
                "-c",
                _WATCHDOG,
                str(self.bin_dir / "pg_ctl"),
                str(self.base_dir / "data"),
                str(self.base_dir),
                *self._run_as_prefix(),
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C meant for pytest must not kill it first
        )

    def _initdb(self) -> None:
        assert self.base_dir is not None
        data_dir = self.base_dir / "data"
        self._run_as_server_user(
            [
                str(self.bin_dir / "initdb"),
                "--pgdata",
                str(data_dir),
                "--username",
                "postgres",
                "--auth",
                "trust",  # local socket and loopback only: listen_addresses is 127.0.0.1
                "--encoding",
                "UTF8",
                "--locale",
                "C",
                "--no-sync",
                "--no-instructions",
            ],
            cwd=self.base_dir,
        )
        settings = {**SERVER_SETTINGS, "unix_socket_directories": f"'{self.base_dir}'"}
        with (data_dir / "postgresql.conf").open("a", encoding="utf-8") as conf:
            conf.write("\n# releaseflow test cluster\n")
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def _start_server(self, attempts: int = 3) -> None:
        assert self.base_dir is not None
        log_file = self.base_dir / "server.log"
        for attempt in range(1, attempts + 1):
            port = free_port()
            result = self._pg_ctl_start(port, check=False)
            if result.returncode == 0:
                self.port = port
                self._url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
                return
            # Another process may have taken the port between free_port() and the bind: try another.
            if "could not bind" not in self._log_tail() or attempt == attempts:
                raise PostgresClusterError(
                    f"pg_ctl start failed (exit {result.returncode}):\n{result.stdout.strip()}\n"
                    f"--- server log ({log_file}) ---\n{self._log_tail()}"
                )

    def _pg_ctl_start(self, port: int, *, check: bool) -> subprocess.CompletedProcess[str]:
        assert self.base_dir is not None
        data_dir, log_file = self.base_dir / "data", self.base_dir / "server.log"
        return self._run_as_server_user(
            [
                str(self.bin_dir / "pg_ctl"),
                "start",
                "-D",
                str(data_dir),
                "-l",
                str(log_file),
                "-o",
                f"-p {port}",
                "-w",
                "-t",
                "60",
            ],
            cwd=self.base_dir,
            check=check,
        )

    # -- helpers -----------------------------------------------------------------------------------

    def _run_as_prefix(self) -> list[str]:
        return ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run_as_server_user(
        self, command: list[str], *, cwd: Path, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*self._run_as_prefix(), *command],
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env={**os.environ, "LC_ALL": "C"},
            check=False,
        )
        if check and result.returncode != 0:
            raise PostgresClusterError(
                f"{Path(command[0]).name} failed (exit {result.returncode}):\n{result.stdout.strip()}\n"
                f"--- server log ---\n{self._log_tail()}"
            )
        return result

    def _log_tail(self, lines: int = 40) -> str:
        if self.base_dir is None:
            return "(no server log)"
        try:
            text = (self.base_dir / "server.log").read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no server log)"
        return "\n".join(text.splitlines()[-lines:])


def database_url(server_url: str, dbname: str) -> str:
    """``server_url`` (a libpq URL) with its database replaced by ``dbname``."""
    return urlunsplit(urlsplit(server_url)._replace(path="/" + dbname))


class FreshDatabases:
    """Creates uniquely named databases on one server and drops them all again."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.names: list[str] = []

    def create(self, template: str | None = None) -> str:
        """A new empty database (a copy of ``template`` when given); returns its URL."""
        name = f"rf_test_{uuid.uuid4().hex[:16]}"
        statement = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
        if template is not None:
            statement += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            conn.execute(statement)
        self.names.append(name)
        return database_url(self.admin_url, name)

    def drop_all(self) -> None:
        with psycopg.connect(self.admin_url, autocommit=True) as conn:
            for name in self.names:
                # FORCE: a pool the test forgot to close must not keep the database alive.
                conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
        self.names.clear()


@contextmanager
def throwaway_database() -> Iterator[str]:
    """The URL of a fresh database in a throwaway cluster (or on the server RELEASEFLOW_TEST_POSTGRES_URL
    names), dropped with the cluster afterwards: what a benchmark measuring PostgreSQL once needs."""
    with PostgresCluster() as admin_url:
        databases = FreshDatabases(admin_url)
        try:
            yield databases.create()
        finally:
            databases.drop_all()
