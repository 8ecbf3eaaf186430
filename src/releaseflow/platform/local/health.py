"""Health checks of local services: is the process really serving, not merely alive?

A check is one of ``http`` (GET ``path``, any 2xx or 3xx answer), ``tcp`` (the port accepts a
connection) or ``command`` (``sh -c command`` in the service's folder exits 0). A service that names no
check is checked over TCP when it has a port; without a port, it counts as healthy once its process
has stayed up for a short while (a process that dies at once is still caught).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from releaseflow.platform.driver import DriverError
from releaseflow.platform.local.processes import run_command

CHECK_TYPES = ("http", "tcp", "command", "none")
HOST = "127.0.0.1"  # services are probed where releaseflow runs: on this host
SETTLE_SECONDS = 1.0  # how long a process without any check must stay up to count as started


# While a new version starts, it is probed this often for this long, then every ``intervalSeconds``:
# traffic moves to it only once a probe passed, so a slow first probe is time the deploy waits for.
FIRST_PROBE_PAUSE_SECONDS = 0.025
FAST_PROBE_SECONDS = 5.0


@dataclass(frozen=True)
class HealthCheck:
    type: str  # one of CHECK_TYPES; "none" only watches that the process stays up
    path: str = "/"
    command: str | None = None
    timeout_seconds: float = 60.0
    interval_seconds: float = 1.0

    @classmethod
    def parse(cls, owner: str, value: Any, port: int | None) -> HealthCheck:
        """The ``healthCheck`` of a service spec; ``owner`` names the service in errors."""

        def refuse(problem: str) -> DriverError:
            return DriverError(f"service '{owner}': spec.healthCheck{problem}", retryable=False)

        if value is None:
            return cls(type="tcp" if port is not None else "none")
        if not isinstance(value, Mapping):
            raise refuse(" must be a mapping such as {type: http, path: /health}")
        kind = value.get("type", "tcp" if port is not None else "none")
        if kind not in CHECK_TYPES:
            raise refuse(f".type must be one of {', '.join(CHECK_TYPES)}, not {kind!r}")
        if kind in ("http", "tcp") and port is None:
            raise refuse(f".type {kind} needs spec.port (the port the service listens on)")
        command = value.get("command")
        if kind == "command" and (not isinstance(command, str) or not command.strip()):
            raise refuse(".command is required for type command (a shell command that exits 0 when healthy)")
        path = value.get("path", "/")
        if not isinstance(path, str) or not path.startswith("/"):
            raise refuse(f".path must start with '/', not {path!r}")
        return cls(
            type=str(kind),
            path=path,
            command=command if isinstance(command, str) else None,
            timeout_seconds=_positive(value, "timeoutSeconds", 60.0, refuse),
            interval_seconds=_positive(value, "intervalSeconds", 1.0, refuse),
        )

    def describe(self, port: int | None) -> str:
        if self.type == "http":
            return f"http GET http://{HOST}:{port}{self.path}"
        if self.type == "tcp":
            return f"tcp connect to {HOST}:{port}"
        if self.type == "command":
            return f"command '{self.command}'"
        return f"process stays up for {SETTLE_SECONDS:g} s"


def _positive(
    value: Mapping[str, Any], key: str, default: float, refuse: Callable[[str], DriverError]
) -> float:
    number = value.get(key, default)
    if isinstance(number, bool) or not isinstance(number, int | float) or number <= 0:
        raise refuse(f".{key} must be a number of seconds greater than 0, not {number!r}")
    return float(number)


@dataclass(frozen=True)
class ProbeResult:
    healthy: bool
    detail: str  # why not, in words a user can act on; empty when healthy


@dataclass(frozen=True)
class WaitResult:
    healthy: bool
    process_died: bool  # the process ended while we waited (its exit code tells more)
    detail: str  # the last probe's answer when not healthy
    waited_seconds: float


async def probe(
    check: HealthCheck, *, port: int | None, cwd: Path, env: Mapping[str, str], timeout: float = 5.0
) -> ProbeResult:
    """One probe. ``none`` always passes here: liveness of the process is the caller's to judge."""
    try:
        if check.type == "http":
            return await _probe_http(check, port, timeout)
        if check.type == "tcp":
            return await _probe_tcp(port, timeout)
        if check.type == "command":
            return await _probe_command(check, cwd, env, timeout)
    except TimeoutError:
        return ProbeResult(False, f"no answer within {timeout:g} s")
    return ProbeResult(True, "")


async def _probe_http(check: HealthCheck, port: int | None, timeout: float) -> ProbeResult:
    url = f"http://{HOST}:{port}{check.path}"
    # trust_env=False: an HTTP_PROXY of the host must not route a local probe elsewhere. verify=False:
    # the probe speaks plain HTTP, and loading the CA bundle would cost ~17 ms per probe.
    client = httpx.AsyncClient(timeout=timeout, trust_env=False, follow_redirects=False, verify=False)
    async with client:
        try:
            response = await client.get(url)
        except httpx.HTTPError as error:
            return ProbeResult(False, f"GET {url} failed: {type(error).__name__} {error}".strip())
    if 200 <= response.status_code < 400:
        return ProbeResult(True, "")
    return ProbeResult(False, f"GET {url} answered {response.status_code}")


async def _probe_tcp(port: int | None, timeout: float) -> ProbeResult:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(HOST, port), timeout)
    except OSError as error:
        return ProbeResult(False, f"connect to {HOST}:{port} failed: {error.strerror or error}")
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return ProbeResult(True, "")


async def _probe_command(
    check: HealthCheck, cwd: Path, env: Mapping[str, str], timeout: float
) -> ProbeResult:
    assert check.command is not None
    result = await run_command(["sh", "-c", check.command], cwd=cwd, env=env, timeout=timeout)
    if result.timed_out:
        return ProbeResult(False, f"command '{check.command}' did not finish within {timeout:g} s")
    if result.exit_code == 0:
        return ProbeResult(True, "")
    last = result.output.strip().splitlines()[-1:]
    said = f": {last[0]}" if last else ""
    return ProbeResult(False, f"command '{check.command}' exited with code {result.exit_code}{said}")


async def wait_until_healthy(
    check: HealthCheck,
    *,
    port: int | None,
    cwd: Path,
    env: Mapping[str, str],
    alive: Callable[[], bool],
    timeout: float | None = None,
) -> WaitResult:
    """Probe until healthy, the process dies, or the timeout passes.

    The first probes come quickly (a new process usually listens within a fraction of a second), every
    25 ms for the first seconds, then every ``interval_seconds``: a healthy deploy is noticed (and
    traffic moved to it) without waiting a whole interval.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    deadline = started + (check.timeout_seconds if timeout is None else timeout)
    detail = "no probe was made"
    pause = FIRST_PROBE_PAUSE_SECONDS
    while True:
        if not alive():
            return WaitResult(False, True, detail, loop.time() - started)
        if check.type == "none":
            if loop.time() - started >= min(SETTLE_SECONDS, deadline - started):
                return WaitResult(True, False, "", loop.time() - started)
        else:
            remaining = max(deadline - loop.time(), 0.1)
            result = await probe(check, port=port, cwd=cwd, env=env, timeout=min(5.0, remaining))
            if result.healthy:
                return WaitResult(True, False, "", loop.time() - started)
            detail = result.detail
        if loop.time() >= deadline:
            return WaitResult(False, not alive(), detail, loop.time() - started)
        await asyncio.sleep(min(pause, max(deadline - loop.time(), 0.0)))
        if check.type == "none":
            pause = 0.1
        elif loop.time() - started < FAST_PROBE_SECONDS:
            pause = min(FIRST_PROBE_PAUSE_SECONDS, check.interval_seconds)
        else:
            pause = check.interval_seconds
