"""The ingress: one Caddy process that holds the public ports while versions switch behind it.

A service's public port is never held by the service itself: Caddy listens on it and proxies to the
private port of whichever version serves now. A deploy starts the new version beside the old one,
checks it on its private port and only then points the route at it. The old version's requests still
in flight finish before it is stopped.

A new configuration makes Caddy bind new listening sockets beside the old ones (SO_REUSEPORT) and close
the old ones. Linux resets the connections still queued on a closing listener unless
``net.ipv4.tcp_migrate_req`` hands them to another listener of the port, so the ingress turns that on
before it loads a configuration (``keep_queued_connections``): without it a client connecting at the
instant of a route change saw "connection reset" (39 times in 100 route changes; never with it).

Caddy runs detached, like the services (``processes.spawn``), with its own folders under ``root``::

    state.json      the Caddy process (pid and start time) and the loopback port of its admin API
    caddy.json      the configuration it starts with: the admin API only (routes come through the API)
    caddy.log       what Caddy writes
    lock            taken while Caddy is started or configured (workers may share the root)
    config/ data/   Caddy's XDG folders (nothing of the user's ~/.config or Debian's caddy service)

Routes are never kept here: Caddy holds them, and the owner (the local driver's services, the docker
driver) can derive them from its own records. Several worker processes may deploy on one root at
once, so a route is changed, never the whole set: ``change`` reads the routes Caddy serves, sets or
removes the named ones and loads the result (``POST /load``), all under the lock file, so a change
made by another process in between is kept, not overwritten by a set read before it. A Caddy that
has to be started (first use, or it died) begins with the routes the owner's records name
(``restore``, or the ``recorded`` source given to ``change``). After a restart of releaseflow the
process is adopted if it still runs (the pid with its recorded start time).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import logging
import os
import shlex
import shutil
import socket
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from releaseflow.platform.driver import DriverError
from releaseflow.platform.local.processes import (
    ProcessHandle,
    child_environment,
    spawn,
    stop_process,
)
from releaseflow.platform.local.state_files import read_json, write_json

log = logging.getLogger(__name__)

INSTALL_HINT = "install Caddy 2 (on Debian: apt-get install caddy)"
START_SECONDS = 10.0  # how long a new Caddy may take until its admin API answers
# Requests a version still answers when the route moves on: Caddy's old configuration waits this
# long for them before it closes their connections.
GRACE_SECONDS = 30
# A request that cannot reach its upstream (a crashed version being restarted) is retried for this
# long before Caddy answers 502, so a restart by the supervisor is not seen as an error.
TRY_SECONDS = 2


@dataclass(frozen=True)
class Route:
    """``listen`` ("host:port") is served by the version at ``upstream`` ("host:port")."""

    listen: str
    upstream: str


def free_port() -> int:
    """A port on the loopback that nothing listens on now (for a private port or the admin API)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def caddy_config(admin_port: int, data_dir: Path, routes: Mapping[str, Route]) -> dict[str, Any]:
    """Caddy's JSON configuration: the admin API on the loopback and one server per route."""
    servers = {
        f"{SERVER_PREFIX}{name}": {
            "listen": [route.listen],
            "routes": [
                {
                    "handle": [
                        {
                            "handler": "reverse_proxy",
                            "upstreams": [{"dial": route.upstream}],
                            # No pooled connections to a version: an open connection to its port
                            # is then a request in flight, which is what draining waits for.
                            "transport": {"protocol": "http", "keep_alive": {"enabled": False}},
                            "load_balancing": {"try_duration": f"{TRY_SECONDS}s", "try_interval": "50ms"},
                        }
                    ]
                }
            ],
            "automatic_https": {"disable": True},
        }
        for name, route in sorted(routes.items())
    }
    config: dict[str, Any] = {
        "admin": {"listen": f"127.0.0.1:{admin_port}", "config": {"persist": False}},
        "storage": {"module": "file_system", "root": str(data_dir)},
        "logging": {"logs": {"default": {"level": "WARN"}}},
    }
    if servers:
        config["apps"] = {"http": {"grace_period": f"{GRACE_SECONDS}s", "servers": servers}}
    return config


# Linux 5.14+: hand the connections queued on a closing SO_REUSEPORT listener to another listener of
# the port instead of resetting them (per network namespace).
MIGRATE_QUEUED_CONNECTIONS = Path("/proc/sys/net/ipv4/tcp_migrate_req")


def keep_queued_connections(setting: Path = MIGRATE_QUEUED_CONNECTIONS) -> str | None:
    """Turn on the kernel's migration of queued connections: None when it is on, else why it is not."""
    try:
        if setting.read_text().strip() == "1":
            return None
        setting.write_text("1\n")
    except OSError as error:
        return (
            f"clients connecting while the ingress (Caddy) changes a route may see 'connection reset':"
            f" cannot turn on net.ipv4.tcp_migrate_req ({error.strerror or error}); as root, run"
            f" `sysctl -w net.ipv4.tcp_migrate_req=1` (Linux 5.14 or later)"
        )
    log.info("turned on net.ipv4.tcp_migrate_req so route changes of the ingress reset no connection")
    return None


# The routes the owner's records name (read when Caddy has to start with them), by route name.
RouteSource = Callable[[], Mapping[str, Route]]

SERVER_PREFIX = "route-"


def routes_of(servers: Mapping[str, Any] | None) -> dict[str, Route]:
    """The routes of Caddy's ``apps.http.servers`` (as ``caddy_config`` writes them), by name."""
    found: dict[str, Route] = {}
    for key, server in (servers or {}).items():
        listen = server.get("listen") or []
        dials = [
            upstream.get("dial")
            for route in server.get("routes") or []
            for handler in route.get("handle") or []
            for upstream in handler.get("upstreams") or []
        ]
        if key.startswith(SERVER_PREFIX) and listen and dials:
            found[key.removeprefix(SERVER_PREFIX)] = Route(str(listen[0]), str(dials[0]))
    return found


def _changed(routes: Mapping[str, Route], changes: Mapping[str, Route | None]) -> dict[str, Route]:
    merged = dict(routes)
    for name, route in changes.items():
        if route is None:
            merged.pop(name, None)
        else:
            merged[name] = route
    return merged


class Ingress:
    """The Caddy process kept under ``root``; ``owner`` names who uses it in errors."""

    def __init__(self, root: Path, *, owner: str = "the local driver") -> None:
        self.root = root
        self._owner = owner
        self._lock = asyncio.Lock()
        self._warned = False

    # -- state -------------------------------------------------------------------------------------

    def _state(self) -> tuple[ProcessHandle | None, int | None]:
        data = read_json(self.root / "state.json") or {}
        process = ProcessHandle.from_data(data["process"]) if data.get("process") else None
        port = data.get("adminPort")
        return process, port if isinstance(port, int) else None

    def process(self) -> ProcessHandle | None:
        """The Caddy process recorded now, alive or not."""
        return self._state()[0]

    def running(self) -> bool:
        process, _ = self._state()
        return process is not None and process.is_alive()

    # -- using it ----------------------------------------------------------------------------------

    @contextlib.asynccontextmanager
    async def _exclusive(self) -> AsyncIterator[None]:
        """This process's lock, then a lock file: workers sharing the root start one Caddy, not two."""
        async with self._lock:
            self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
            descriptor = os.open(self.root / "lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                while True:
                    try:
                        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                        break
                    except BlockingIOError:
                        await asyncio.sleep(0.01)
                yield
            finally:
                os.close(descriptor)  # releases the lock

    async def change(self, changes: Mapping[str, Route | None], recorded: RouteSource) -> None:
        """Set the named routes (remove those given None), keeping every other route Caddy serves.

        A Caddy that does not run yet starts with ``recorded()``, the routes the owner's records name,
        read under the lock.
        """
        async with self._exclusive():
            running = self.running()
            if not running and not _changed(recorded(), changes):
                return  # nothing to hold and nothing to take down
            admin, started = await self._ensure()
            serving = recorded() if started else await self._serving(admin)
            await self._load(admin, _changed(serving, changes))

    async def restore(self, recorded: RouteSource) -> None:
        """Start Caddy again when it does not run, with the routes the owner's records name.

        A Caddy that runs is left as it is: its routes are right, or a deployment under way puts them
        right (loading the records' routes could undo a switch another worker is making).
        """
        async with self._exclusive():
            if self.running():
                return
            routes = recorded()
            if routes:
                admin, _ = await self._ensure()
                await self._load(admin, routes)

    async def _serving(self, admin: int) -> dict[str, Route]:
        """The routes the Caddy at ``admin`` serves now, by name."""
        async with _admin_client() as client:
            try:
                # The whole configuration: a path into apps.http fails while Caddy serves no route.
                response = await client.get(f"http://127.0.0.1:{admin}/config/")
            except httpx.HTTPError as error:
                raise DriverError(
                    f"the ingress (Caddy) did not say which routes it serves: {error}"
                ) from error
        if response.status_code != 200:
            raise DriverError(
                f"the ingress (Caddy) did not say which routes it serves: {_caddy_error(response)}"
            )
        config = response.json() or {}
        return routes_of(config.get("apps", {}).get("http", {}).get("servers"))

    async def _load(self, admin: int, routes: Mapping[str, Route]) -> None:
        # Checked before every load (a host may turn the setting off while Caddy runs); said once.
        problem = keep_queued_connections()
        if problem and not self._warned:
            self._warned = True
            log.warning(problem)
        config = caddy_config(admin, self.root / "data", routes)
        async with _admin_client() as client:
            try:
                response = await client.post(f"http://127.0.0.1:{admin}/load", json=config)
            except httpx.HTTPError as error:
                raise DriverError(f"the ingress (Caddy) did not take the new routes: {error}") from error
        if response.status_code != 200:
            raise DriverError(
                f"the ingress (Caddy) refused the routes {_describe(routes)}: {_caddy_error(response)}"
            )

    async def routes(self) -> dict[str, str] | None:
        """What Caddy serves now: listen address -> upstream, or None when it does not run."""
        process, admin = self._state()
        if process is None or admin is None or not process.is_alive():
            return None
        try:
            serving = await self._serving(admin)
        except DriverError:
            return None
        return {route.listen: route.upstream for route in serving.values()}

    async def shutdown(self) -> None:
        """Stop Caddy (its public ports close); the next ``apply`` starts it again."""
        async with self._exclusive():
            process, _ = self._state()
            if process is not None:
                await stop_process(process, 5.0)
            write_json(self.root / "state.json", {"process": None, "adminPort": None})

    def require(self) -> None:
        """Refuse at once (not after a new version started) when Caddy is not installed."""
        if shutil.which("caddy") is None:
            raise DriverError(
                f"{self._owner} serves each service's public port through Caddy, which is not installed:"
                f" {INSTALL_HINT}",
                retryable=False,
            )

    async def _ensure(self) -> tuple[int, bool]:
        """The admin port of a Caddy that answers (the recorded one if it lives, else a new one), and
        whether it was started here (then it serves no route yet)."""
        process, admin = self._state()
        if process is not None and admin is not None and process.is_alive():
            if await _wait_admin(admin, process, START_SECONDS):
                return admin, False
            await stop_process(process, 2.0)  # alive but deaf: replace it
        self.require()
        executable = shutil.which("caddy")
        assert executable is not None
        for folder in ("config", "data"):
            (self.root / folder).mkdir(parents=True, exist_ok=True, mode=0o700)
        admin = free_port()
        config_path = self.root / "caddy.json"
        config_path.write_text(json.dumps(caddy_config(admin, self.root / "data", {})))
        command = f"exec {shlex.quote(executable)} run --config {shlex.quote(str(config_path))}"
        process = await spawn(
            command,
            cwd=self.root,
            env=child_environment(
                {
                    "HOME": str(self.root),
                    "XDG_CONFIG_HOME": str(self.root / "config"),
                    "XDG_DATA_HOME": str(self.root / "data"),
                }
            ),
            log_path=self.root / "caddy.log",
            exit_file=self.root / "caddy.exit",
            banner=f"starting the ingress: {command}",
        )
        # Recorded before it is known to answer, so a releaseflow that dies now finds it next time.
        write_json(self.root / "state.json", {"process": process.to_data(), "adminPort": admin})
        if not await _wait_admin(admin, process, START_SECONDS):
            lines = "\n".join(f"  | {line}" for line in process.log_tail(10)) or "  (it wrote nothing)"
            await stop_process(process, 2.0)
            raise DriverError(
                f"the ingress (Caddy, {executable}) did not start within {START_SECONDS:g} s;"
                f" last lines of {process.log_path}:\n{lines}"
            )
        return admin, True


def _admin_client() -> httpx.AsyncClient:
    # trust_env=False: an HTTP_PROXY of the host must not carry admin calls elsewhere. verify=False:
    # the admin API speaks plain HTTP on the loopback; loading the CA bundle would cost ~17 ms a call.
    return httpx.AsyncClient(timeout=10.0, trust_env=False, verify=False)


async def _wait_admin(port: int, process: ProcessHandle, timeout: float) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    async with _admin_client() as client:
        while process.is_alive():
            try:
                response = await client.get(f"http://127.0.0.1:{port}/config/")
                if response.status_code == 200:
                    return True
            except httpx.HTTPError:
                pass
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.02)
    return False


def _caddy_error(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error") or response.text).strip()
    except ValueError:
        return response.text.strip() or f"HTTP {response.status_code}"


def _describe(routes: Mapping[str, Route]) -> str:
    return ", ".join(f"{route.listen} -> {route.upstream}" for _, route in sorted(routes.items())) or "(none)"


def open_connections(port: int, *, side: str = "local") -> int:
    """Established TCP connections of this host whose ``side`` ("local" or "remote") end is ``port``.

    Local: what a version listening on ``port`` serves now. Remote: what is connected to ``port``
    from here (the ingress's requests to a container's published port, which the engine forwards).
    The ingress keeps no idle connection to a version, so these are requests in flight.
    """
    column = 1 if side == "local" else 2
    count = 0
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            # The addresses are "<hex address>:<hex port>"; state 01 is ESTABLISHED.
            if len(fields) > 3 and fields[3] == "01" and int(fields[column].rsplit(":", 1)[1], 16) == port:
                count += 1
    return count


async def drained(port: int, timeout: float, *, side: str = "local", pause: float = 0.02) -> bool:
    """Wait until no connection's ``side`` end is ``port`` (True), or ``timeout`` passes (False)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while open_connections(port, side=side):
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(pause)
    return True
