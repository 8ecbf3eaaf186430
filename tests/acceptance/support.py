"""Real processes for acceptance tests: ``releaseflow serve`` on a free port, CLI calls, slow endpoints.

Every wait polls with a deadline; every process started here is killed when its test ends.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

import httpx
from tests.acceptance.config import INBOX_KEY
from tests.cleanup import stop_everything_under

from releaseflow.platform.available import managed_addons_root

T = TypeVar("T")

_SCRIPT = Path(sys.executable).with_name("releaseflow")
COMMAND = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "releaseflow.cli.main"]


def free_port(block: int = 1) -> int:
    """A loopback port nothing listens on, and the ``block - 1`` ports after it free too."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if all(_bindable(port + offset) for offset in range(1, block)):
            return port


def _bindable(port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except (OSError, OverflowError):  # in use, or past 65535
            return False
    return True


def wait_until(check: Callable[[], T | None], *, timeout: float = 20.0, what: str = "condition") -> T:
    """Poll ``check`` until it returns something other than None/False; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (httpx.HTTPError, AssertionError, KeyError, ValueError) as error:
            last = error
        else:
            if last is not None and last is not False:
                return last
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


@dataclass
class Releaseflow:
    """One releaseflow installation: a data directory, a port, and the processes using them."""

    data_dir: Path
    port: int
    cwd: Path
    extra_env: dict[str, str] = field(default_factory=dict)
    processes: list[subprocess.Popen[str]] = field(default_factory=list)
    # The admin token the first ``serve`` printed (only the first start of a fresh database prints one).
    admin_token: str | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def env(self) -> dict[str, str]:
        env = {key: value for key, value in os.environ.items() if not key.startswith("RELEASEFLOW_")}
        env.update(
            RELEASEFLOW_DATA_DIR=str(self.data_dir),
            RELEASEFLOW_PORT=str(self.port),
            # Runs started by another process (the CLI) are noticed by polling: keep it brisk.
            RELEASEFLOW_WORKER_IDLE_POLL_SECONDS="0.1",
            PYTHONUNBUFFERED="1",
            RELEASEFLOW_INBOX_KEY=INBOX_KEY,
        )
        env.update(self.extra_env)
        return env

    def cli(
        self, *args: str, timeout: float = 30.0, check: bool = False, stdin: str | None = None
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [*COMMAND, *args],
            cwd=self.cwd,
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=timeout,
            input=stdin,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"releaseflow {' '.join(args)} exited {result.returncode}:\n{result.stderr}")
        return result

    def cli_json(self, *args: str) -> Any:
        return json.loads(self.cli(*args, check=True).stdout)

    def spawn(self, *args: str) -> subprocess.Popen[str]:
        # The child writes to its own copy of the file descriptor; ours is closed at once.
        with (self.cwd / f"releaseflow-{len(self.processes)}.log").open("w") as log:
            process = subprocess.Popen(
                [*COMMAND, *args],
                cwd=self.cwd,
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
                text=True,
            )
        self.processes.append(process)
        return process

    def serve(self, *args: str) -> subprocess.Popen[str]:
        """Start ``releaseflow serve`` (or another serving command) and wait until it is healthy."""
        process = self.spawn(*(args or ("serve",)))
        wait_until(
            lambda: self._healthy(process), timeout=20, what=f"{' '.join(args or ('serve',))} to be healthy"
        )
        self.admin_token = self.admin_token or printed_token(self.logs())
        return process

    def _healthy(self, process: subprocess.Popen[str]) -> bool:
        if process.poll() is not None:
            raise AssertionError(f"server exited with {process.returncode}:\n{self.logs()}")
        return httpx.get(f"{self.url}/healthz", timeout=2).json().get("status") == "ok"

    def logs(self) -> str:
        return "\n".join(path.read_text() for path in sorted(self.cwd.glob("releaseflow-*.log")))

    def inbox(self, name: str) -> list[dict[str, Any]]:
        answer = httpx.get(f"{self.url}/inbox/{name}", headers=self.auth(), timeout=5)
        messages: list[dict[str, Any]] = answer.raise_for_status().json()["messages"]
        return messages

    def auth(self, token: str | None = None) -> dict[str, str]:
        """The Authorization header of ``token`` (default: the admin token ``serve`` printed)."""
        secret = token or self.admin_token
        assert secret, "no token: serve() a fresh installation first"
        return {"Authorization": f"Bearer {secret}"}

    def run_detail(self, run_id: str) -> Any:
        return self.cli_json("show", run_id, "--json")

    def wait_for_run(self, run_id: str, statuses: tuple[str, ...], timeout: float = 20.0) -> Any:
        def ended() -> Any:
            detail = self.run_detail(run_id)
            return detail if detail["status"] in statuses else None

        return wait_until(ended, timeout=timeout, what=f"run {run_id} to be {'/'.join(statuses)}")

    def wait_for_node(self, run_id: str, ref: str, status: str, timeout: float = 20.0) -> Any:
        def reached() -> Any:
            detail = self.run_detail(run_id)
            node = find_node(detail["spec"], ref)
            return detail if node and node["status"] == status else None

        return wait_until(reached, timeout=timeout, what=f"node {ref} of run {run_id} to be {status}")

    def kill_all(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                process.kill()
            process.wait(timeout=10)

    @staticmethod
    def stop(process: subprocess.Popen[str], timeout: float = 15.0) -> int:
        process.send_signal(signal.SIGTERM)
        return process.wait(timeout=timeout)


@contextmanager
def temporary_installation(prefix: str) -> Iterator[Releaseflow]:
    """An installation in a new temporary folder; its processes and the folder go when it ends."""
    # Not pytest's tmp_path: a managed PostgreSQL addon runs as the `postgres` user (tests run as
    # root in CI), which must be able to enter the installation's folders.
    folder = Path(tempfile.mkdtemp(prefix=prefix))
    folder.chmod(0o755)
    # The demo's three services listen on the three ports after the server's (demo.service_ports).
    installation = Releaseflow(data_dir=folder / "data", port=free_port(block=4), cwd=folder)
    try:
        yield installation
    finally:
        installation.kill_all()
        stop_everything_under(folder)
        # Managed PostgreSQL clusters live outside a data directory the `postgres` user cannot
        # enter (under /var/lib/releaseflow when the tests run as root): stopped and removed too.
        addons = managed_addons_root((folder / "data" / "local").resolve())
        if not addons.is_relative_to(folder.resolve()):
            stop_everything_under(addons.parent)
            shutil.rmtree(addons.parent, ignore_errors=True)
        shutil.rmtree(folder, ignore_errors=True)


def printed_token(output: str) -> str | None:
    """The secret of the first admin token in ``serve``'s output, if it printed one."""
    lines = output.splitlines()
    for number, line in enumerate(lines[:-1]):
        if line.startswith("created the first API token"):
            return lines[number + 1].strip()
    return None


def find_node(tree: Mapping[str, Any] | None, ref: str) -> Mapping[str, Any] | None:
    for node in walk(tree):
        if node.get("ref") == ref:
            return node
    return None


def walk(tree: Mapping[str, Any] | None) -> Iterator[Mapping[str, Any]]:
    if tree is None:
        return
    yield tree
    for child in tree.get("steps", []):
        yield from walk(child)


def started_run_id(output: str) -> str:
    """The run id from the first line of ``releaseflow run`` ("started run <id> (...)")."""
    for line in output.splitlines():
        if line.startswith("started run "):
            return line.split()[2]
    raise AssertionError(f"no 'started run' line in:\n{output}")


class SlowEndpoint:
    """An HTTP endpoint that holds its first request until released, and answers later ones at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.requests: list[dict[str, Any]] = []
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                endpoint.requests.append(
                    {"headers": dict(self.headers), "body": json.loads(self.rfile.read(length))}
                )
                if len(endpoint.requests) == 1:
                    endpoint.release.wait(timeout=30)
                try:
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.end_headers()
                    self.wfile.write(b'{"ok": true}')
                except OSError:
                    pass  # the caller was killed meanwhile; that is the point of the test

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> SlowEndpoint:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()
