"""A real Docker Engine API and registry for the docker driver's tests, started in a temporary directory.

* ``podman system service`` serves the Docker Engine API on a unix socket. Its configuration comes
  only from files written here (``CONTAINERS_CONF``, ``CONTAINERS_STORAGE_CONF``,
  ``CONTAINERS_REGISTRIES_CONF``), so the machine's own podman setup and image store stay untouched:
  runc as the runtime and no default rlimits (crun fails on this kind of host), a vfs store inside
  the directory, and the test registry marked insecure (it speaks plain HTTP on loopback).
* Debian's ``docker-registry`` on a free loopback port, storing into the directory.

Both are stopped, and every container removed, when the environment closes. When a tool is missing
the tests skip with the reason locally, and fail in CI (``CI`` set): what CI must check never skips.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

import pytest

INSTALL_HINT = "apt-get install -y podman runc busybox-static docker-registry   (.ci/run does this)"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def busybox_path() -> Path | None:
    """The statically linked busybox of Debian's busybox-static (it runs in a FROM scratch image)."""
    try:
        listing = subprocess.run(
            ["dpkg", "-L", "busybox-static"], capture_output=True, text=True, check=True
        ).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        return None
    for line in listing:
        if line.endswith("/busybox") and "/bin/" in line and Path(line).is_file():
            return Path(line)
    return None


def missing_tools() -> list[str]:
    missing = [tool for tool in ("podman", "runc", "docker-registry", "git") if shutil.which(tool) is None]
    if busybox_path() is None:
        missing.append("busybox-static")
    return missing


def require_tools() -> None:
    missing = missing_tools()
    if not missing:
        return
    reason = f"the docker driver tests need {', '.join(missing)}: {INSTALL_HINT}"
    if os.environ.get("CI"):
        pytest.fail(reason, pytrace=False)
    pytest.skip(reason)


def _wait_until(
    check: object, what: str, process: subprocess.Popen[bytes], log: Path, seconds: float
) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{what} exited with {process.returncode}: {log.read_text()[-2000:]}")
        try:
            if callable(check) and check():
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not come up within {seconds:g}s: {log.read_text()[-2000:]}")


@dataclass
class DockerEnvironment:
    directory: Path
    socket_path: Path
    registry: str  # host:port of the plain-HTTP test registry
    busybox: Path
    _processes: list[subprocess.Popen[bytes]]

    @property
    def base_url(self) -> str:
        return f"unix://{self.socket_path}"

    @classmethod
    def start(cls) -> DockerEnvironment:
        busybox = busybox_path()
        assert busybox is not None
        directory = Path(tempfile.mkdtemp(prefix="rf-docker-"))
        registry = f"127.0.0.1:{free_port()}"
        env = cls(directory, directory / "podman.sock", registry, busybox, [])
        try:
            env._start_registry()
            env._start_podman()
        except BaseException:
            env.close()
            raise
        return env

    def _start_registry(self) -> None:
        config = self.directory / "registry.yml"
        config.write_text(
            "version: 0.1\nlog:\n  level: warn\n"
            f"storage:\n  filesystem:\n    rootdirectory: {self.directory / 'registry'}\n"
            f"http:\n  addr: {self.registry}\n  secret: releaseflow-tests\n"
        )
        log = self.directory / "registry.log"
        # The child keeps its own copy of the log's descriptor; this process closes its copy at once.
        with log.open("wb") as output:
            process = subprocess.Popen(
                ["docker-registry", "serve", str(config)],
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._processes.append(process)

        def answers() -> bool:
            with urllib.request.urlopen(f"http://{self.registry}/v2/", timeout=2) as response:
                return bool(response.status == 200)

        _wait_until(answers, "docker-registry", process, log, 20)

    def _start_podman(self) -> None:
        conf = self.directory / "containers.conf"
        conf.write_text('[containers]\ndefault_ulimits = []\n\n[engine]\nruntime = "runc"\n')
        storage = self.directory / "storage.conf"
        storage.write_text(
            f'[storage]\ndriver = "vfs"\ngraphroot = "{self.directory / "storage"}"\n'
            f'runroot = "{self.directory / "run"}"\n'
        )
        registries = self.directory / "registries.conf"
        registries.write_text(f'[[registry]]\nlocation = "{self.registry}"\ninsecure = true\n')
        environment = {
            **os.environ,
            "CONTAINERS_CONF": str(conf),
            "CONTAINERS_STORAGE_CONF": str(storage),
            "CONTAINERS_REGISTRIES_CONF": str(registries),
        }
        log = self.directory / "podman.log"
        with log.open("wb") as output:
            process = subprocess.Popen(
                ["podman", "system", "service", "--time=0", self.base_url],
                env=environment,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self._processes.append(process)
        _wait_until(
            lambda: self._api("GET", "/version") is not None, "podman system service", process, log, 30
        )

    def _api(self, method: str, path: str) -> object:
        """A raw call on the engine socket (for setup and teardown, without the code under test)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(30)
            sock.connect(str(self.socket_path))
            sock.sendall(f"{method} {path} HTTP/1.0\r\nHost: podman\r\n\r\n".encode())
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        _head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
        return json.loads(body) if body.strip() else {}

    def remove_all_containers(self) -> None:
        containers = self._api("GET", "/containers/json?all=true")
        for container in containers if isinstance(containers, list) else []:
            self._api("DELETE", f"/containers/{container['Id']}?force=true")

    def close(self) -> None:
        if self.socket_path.exists():
            with contextlib.suppress(OSError):
                self.remove_all_containers()
        for process in reversed(self._processes):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        self._processes.clear()
        shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> DockerEnvironment:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()
