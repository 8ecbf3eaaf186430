"""Whether a service's container is healthy: probed from this host on its published port, or by exec.

``healthCheck`` in a service's spec: ``{type: http|tcp|command, path, command, timeoutSeconds,
intervalSeconds}``. ``timeoutSeconds`` is how long a new container has to become healthy (default 60);
``intervalSeconds`` the pause between probes (default 1). Without a health check a service with a
``port`` gets a tcp probe, one without a port must merely stay running for a few probe intervals.
A container that exits or is restarted by the engine while being checked fails at once: it will not
get better by waiting.
"""

from __future__ import annotations

import asyncio
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from releaseflow.domain.errors import describe_error
from releaseflow.platform.docker.client import DockerClient
from releaseflow.platform.driver import DriverError

# A new container is looked at this often during its first seconds, then every ``intervalSeconds``:
# traffic moves to it (and a container that exits at start is noticed) only when it is looked at.
FAST_PAUSE_SECONDS = 0.1
FAST_SECONDS = 5.0


@dataclass(frozen=True)
class HealthCheck:
    kind: str  # http, tcp, command, or running (no probe: the container only has to keep running)
    path: str = "/"
    command: tuple[str, ...] = ()
    timeout_seconds: float = 60.0
    interval_seconds: float = 1.0

    @property
    def probe_timeout(self) -> float:
        return max(1.0, min(5.0, self.interval_seconds * 2))


def as_command(value: Any, what: str) -> list[str]:
    """A command as a list (strings are split like a shell would, but never run through one)."""
    if isinstance(value, str):
        return shlex.split(value)
    if isinstance(value, list | tuple) and all(isinstance(part, str | int | float) for part in value):
        return [str(part) for part in value]
    raise DriverError(f"{what} must be a string or a list of strings, not {value!r}", retryable=False)


def parse_health_check(spec: Mapping[str, Any], service: str) -> HealthCheck:
    raw = spec.get("healthCheck")
    if raw is None:
        return HealthCheck("tcp" if spec.get("port") else "running")
    if not isinstance(raw, Mapping):
        raise DriverError(f"service '{service}': healthCheck must be an object", retryable=False)
    kind = str(raw.get("type") or ("tcp" if spec.get("port") else "running"))
    if kind not in ("http", "tcp", "command", "running"):
        raise DriverError(
            f"service '{service}': healthCheck.type '{kind}' is unknown (use http, tcp or command)",
            retryable=False,
        )
    if kind in ("http", "tcp") and not spec.get("port"):
        raise DriverError(
            f"service '{service}': an {kind} health check needs the service's 'port'", retryable=False
        )
    command: tuple[str, ...] = ()
    if kind == "command":
        if not raw.get("command"):
            raise DriverError(f"service '{service}': a command health check needs 'command'", retryable=False)
        command = tuple(as_command(raw["command"], f"service '{service}' healthCheck.command"))
    try:
        timeout = float(raw.get("timeoutSeconds", 60))
        interval = float(raw.get("intervalSeconds", 1))
    except (TypeError, ValueError):
        raise DriverError(
            f"service '{service}': healthCheck timeoutSeconds and intervalSeconds must be numbers",
            retryable=False,
        ) from None
    return HealthCheck(kind, str(raw.get("path") or "/"), command, max(timeout, 0.1), max(interval, 0.05))


def published_address(container: Mapping[str, Any], port: int, default_host: str) -> tuple[str, int] | None:
    """Where this host reaches the container's ``port`` (None while the engine has not published it)."""
    ports = (container.get("NetworkSettings") or {}).get("Ports") or {}
    for binding in ports.get(f"{port}/tcp") or []:
        host_port = binding.get("HostPort")
        if host_port:
            host_ip = binding.get("HostIp") or ""
            host = default_host if host_ip in ("", "0.0.0.0", "::") else host_ip
            return host, int(host_port)
    return None


def _stopped(container: Mapping[str, Any], started_at: str | None) -> str | None:
    """Why the container is not (stably) running, or None when it is."""
    state = container.get("State") or {}
    if not state.get("Running"):
        return f"the container stopped (exit code {state.get('ExitCode')}{_error(state)})"
    if int(container.get("RestartCount") or 0) > 0 or (started_at and state.get("StartedAt") != started_at):
        return f"the container keeps exiting and being restarted (last exit code {state.get('ExitCode')})"
    return None


def _error(state: Mapping[str, Any]) -> str:
    return f", {state['Error']}" if state.get("Error") else ""


async def probe(
    client: DockerClient, container: Mapping[str, Any], check: HealthCheck, port: int | None
) -> str | None:
    """One probe: None when healthy, else what failed."""
    if check.kind == "running":
        return None
    if check.kind == "command":
        try:
            result = await asyncio.wait_for(
                client.exec(str(container["Id"]), check.command), timeout=check.probe_timeout * 2
            )
        except (TimeoutError, DriverError) as error:
            return f"health command failed: {error or 'timed out'}"
        tail = result.output.strip()[-200:]
        return None if result.exit_code == 0 else f"health command exited with {result.exit_code}: {tail}"
    assert port is not None
    address = published_address(container, port, client.host)
    if address is None:
        return f"container port {port} is not published yet"
    host, host_port = address
    if check.kind == "tcp":
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, host_port), check.probe_timeout)
        except (OSError, TimeoutError) as error:
            return f"nothing accepts connections on {host}:{host_port} ({error or 'timed out'})"
        writer.close()
        return None
    url = f"http://{host}:{host_port}/{check.path.lstrip('/')}"
    try:
        # verify=False: the probe speaks plain HTTP (loading the CA bundle costs ~17 ms per probe).
        async with httpx.AsyncClient(timeout=check.probe_timeout, verify=False) as http:
            response = await http.get(url)
    except httpx.HTTPError as error:
        return f"GET {url} failed ({describe_error(error)})"
    if response.status_code >= 400:
        return f"GET {url} answered HTTP {response.status_code}"
    return None


@dataclass(frozen=True)
class Unhealthy:
    """Why a new container never became healthy. ``exited``: it stopped or was gone (it would do the
    same on another attempt), rather than running without passing its check in time."""

    detail: str
    exited: bool

    def __str__(self) -> str:
        return self.detail


async def wait_healthy(
    client: DockerClient, container_id: str, check: HealthCheck, port: int | None
) -> Unhealthy | None:
    """Probe until healthy (None) or until the check's time is up (what failed last)."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    deadline = began + check.timeout_seconds
    # A container without a probe proves itself by staying up for a few intervals.
    settle_until = loop.time() + (check.interval_seconds * 3 if check.kind == "running" else 0)
    started_at: str | None = None
    last = "not probed yet"
    while True:
        container = await client.inspect_container(container_id)
        if container is None:
            return Unhealthy("the container disappeared", exited=True)
        started_at = started_at or (container.get("State") or {}).get("StartedAt")
        stopped = _stopped(container, started_at)
        if stopped:
            return Unhealthy(stopped, exited=True)
        failure = await probe(client, container, check, port)
        if failure is None and loop.time() >= settle_until:
            # The probe may have raced a dying container: it must still be the same running process.
            again = await client.inspect_container(container_id)
            stopped = "the container disappeared" if again is None else _stopped(again, started_at)
            if stopped:
                return Unhealthy(stopped, exited=True)
            return None
        last = failure or last
        if loop.time() >= deadline:
            return Unhealthy(f"not healthy after {check.timeout_seconds:g}s: {last}", exited=False)
        fast = loop.time() - began < FAST_SECONDS
        pause = min(FAST_PAUSE_SECONDS, check.interval_seconds) if fast else check.interval_seconds
        await asyncio.sleep(pause)
