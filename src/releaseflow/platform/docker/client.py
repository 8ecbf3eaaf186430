"""A small asynchronous client of the Docker Engine API (Docker, or podman's compatible service).

Only what the docker driver needs: build, tag, push, pull and inspect images; create, start, stop,
restart, remove, inspect, wait on containers, read their logs and run commands in them. Every failure
becomes a ``DockerError`` (a ``DriverError``) whose message says what was asked and what to check.
"""

from __future__ import annotations

import asyncio
import base64
import json
import struct
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

from releaseflow.domain.errors import describe_error
from releaseflow.platform.driver import DriverError

# The newest API version this client was written against; older engines are talked to in their own
# version (negotiated from /version), newer ones in this one.
MAX_API_VERSION = (1, 43)
MIN_API_VERSION = (1, 25)

LogSink = Callable[[str], None]


# Tries to remove a container that is changing state under the removal (see remove_container).
REMOVE_ATTEMPTS = 5


@dataclass(frozen=True)
class RegistryCredentials:
    """A login for a registry; ``registry`` is the server address (``host[:port]``) it is for."""

    username: str
    password: str
    registry: str = ""

    def header(self) -> str:
        return registry_auth_header(self)


def registry_auth_header(credentials: RegistryCredentials | None) -> str:
    """The X-Registry-Auth value: base64url of a JSON login (an empty object for anonymous access)."""
    payload: dict[str, str] = {}
    if credentials is not None:
        payload = {
            "username": credentials.username,
            "password": credentials.password,
            "serveraddress": credentials.registry,
        }
    return base64.urlsafe_b64encode(json.dumps(payload).encode()).decode()


class DockerError(DriverError):
    """The engine refused or could not be reached; ``status`` is the HTTP status when there was one."""

    def __init__(self, message: str, *, status: int | None = None, retryable: bool = True) -> None:
        super().__init__(message, retryable=retryable)
        self.status = status


@dataclass(frozen=True)
class ExecResult:
    exit_code: int
    output: str


def split_reference(reference: str) -> tuple[str, str]:
    """``repo[:tag]`` -> (repo, tag); a registry port is not a tag, a digest stays with the repo."""
    if "@" in reference:
        return reference, ""
    name, _, last = reference.rpartition("/")
    if ":" in last:
        repo_last, tag = last.rsplit(":", 1)
        return (f"{name}/{repo_last}" if name else repo_last), tag
    return reference, "latest"


def registry_of(reference: str) -> str:
    """The registry host of an image reference (``docker.io`` when the reference names none)."""
    first, sep, _ = reference.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def demultiplex(raw: bytes) -> str:
    """Text of a non-TTY attach/log stream: frames of an 8-byte header (stream, size) and a payload."""
    out: list[bytes] = []
    position = 0
    while position + 8 <= len(raw):
        kind = raw[position]
        (size,) = struct.unpack(">I", raw[position + 4 : position + 8])
        if kind not in (0, 1, 2) or raw[position + 1 : position + 4] != b"\0\0\0":
            # Not multiplexed after all (a TTY container): the bytes are the text.
            return raw.decode(errors="replace")
        out.append(raw[position + 8 : position + 8 + size])
        position += 8 + size
    if position < len(raw) and not out:
        return raw.decode(errors="replace")
    return b"".join(out).decode(errors="replace")


class DockerClient:
    """One connection pool to one engine, at ``unix:///path.sock``, ``tcp://host:port`` or ``http(s)://``."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self.base_url = base_url
        parts = urlsplit(base_url)
        if parts.scheme == "unix":
            transport = httpx.AsyncHTTPTransport(uds=parts.path)
            url = "http://docker"
            self.host = "127.0.0.1"  # ports published by a local engine are reached on loopback
        elif parts.scheme in ("tcp", "http", "https"):
            transport = httpx.AsyncHTTPTransport()
            scheme = "https" if parts.scheme == "https" else "http"
            url = f"{scheme}://{parts.netloc}"
            self.host = parts.hostname or "127.0.0.1"
        else:
            raise DockerError(
                f"unsupported Docker Engine address '{base_url}': use unix:///path/to/docker.sock or"
                " tcp://host:port (DOCKER_HOST / RELEASEFLOW_DOCKER_HOST)",
                retryable=False,
            )
        self._timeout = timeout
        self._http = httpx.AsyncClient(transport=transport, base_url=url, timeout=timeout)
        self._prefix: str | None = None
        self.api_version = ""

    async def close(self) -> None:
        await self._http.aclose()

    # -- plumbing -------------------------------------------------------------------------------------

    def _unreachable(self, error: Exception) -> DockerError:
        return DockerError(
            f"cannot reach the Docker Engine API at {self.base_url} ({describe_error(error)});"
            " check that the daemon (or `podman system service`) runs and that DOCKER_HOST /"
            " RELEASEFLOW_DOCKER_HOST points at it"
        )

    async def _negotiate(self) -> str:
        if self._prefix is None:
            try:
                response = await self._http.get("/version")
            except (httpx.TransportError, OSError) as error:
                raise self._unreachable(error) from error
            if response.status_code != 200:
                raise DockerError(f"{self.base_url}/version answered HTTP {response.status_code}")
            body = response.json()
            server = _parse_version(str(body.get("ApiVersion", "1.25")))
            if server < MIN_API_VERSION:
                raise DockerError(
                    f"the engine at {self.base_url} speaks API {body.get('ApiVersion')}; releaseflow needs"
                    f" at least {MIN_API_VERSION[0]}.{MIN_API_VERSION[1]}",
                    retryable=False,
                )
            chosen = min(server, MAX_API_VERSION)
            self.api_version = f"{chosen[0]}.{chosen[1]}"
            self._prefix = f"/v{self.api_version}"
        return self._prefix

    async def version(self) -> dict[str, Any]:
        await self._negotiate()
        return dict(await self._json("GET", "/version", what="read the engine version"))

    async def _request(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: Mapping[str, Any] | None = None,
        json_body: Any = None,
        headers: Mapping[str, str] | None = None,
        timeout: float | None = None,
        ok: Sequence[int] = (200, 201, 204, 304),
    ) -> httpx.Response:
        prefix = await self._negotiate()
        try:
            response = await self._http.request(
                method,
                prefix + path,
                params=params,
                json=json_body,
                headers=headers,
                timeout=timeout if timeout is not None else self._timeout,
            )
        except (httpx.TransportError, OSError) as error:
            raise self._unreachable(error) from error
        if response.status_code not in ok:
            raise _refusal(what, response.status_code, response.content)
        return response

    async def _json(self, method: str, path: str, *, what: str, **kwargs: Any) -> Any:
        response = await self._request(method, path, what=what, **kwargs)
        return response.json() if response.content else {}

    async def _stream(
        self,
        method: str,
        path: str,
        *,
        what: str,
        params: Mapping[str, Any],
        headers: Mapping[str, str],
        content: AsyncIterator[bytes] | bytes | None = None,
        on_log: LogSink,
    ) -> list[dict[str, Any]]:
        """Send a request whose answer is a stream of JSON progress messages; an error message raises."""
        prefix = await self._negotiate()
        messages: list[dict[str, Any]] = []
        decoder = json.JSONDecoder()
        buffer = ""
        # Builds and pushes can take long: no read timeout, the caller bounds the whole operation.
        timeout = httpx.Timeout(self._timeout, read=None)
        try:
            request = self._http.build_request(
                method, prefix + path, params=params, headers=headers, content=content, timeout=timeout
            )
            response = await self._http.send(request, stream=True)
            try:
                if response.status_code not in (200, 201):
                    raise _refusal(what, response.status_code, await response.aread())
                async for chunk in response.aiter_text():
                    buffer += chunk
                    while True:
                        buffer = buffer.lstrip()
                        if not buffer:
                            break
                        try:
                            message, end = decoder.raw_decode(buffer)
                        except json.JSONDecodeError:
                            break  # an incomplete message: wait for more text
                        buffer = buffer[end:]
                        if isinstance(message, dict):
                            messages.append(message)
                            _progress(message, on_log, what)
            finally:
                await response.aclose()
        except (httpx.TransportError, OSError) as error:
            raise self._unreachable(error) from error
        return messages

    # -- images ---------------------------------------------------------------------------------------

    async def build_image(
        self,
        context: AsyncIterator[bytes] | bytes,
        *,
        tags: Sequence[str],
        dockerfile: str,
        on_log: LogSink,
        labels: Mapping[str, str] | None = None,
        target: str | None = None,
        build_args: Mapping[str, str] | None = None,
    ) -> str:
        """Build from a tar context; answers the image id."""
        params: list[tuple[str, str]] = [("t", tag) for tag in tags]
        params += [("dockerfile", dockerfile), ("rm", "1"), ("forcerm", "1")]
        if labels:
            params.append(("labels", json.dumps(dict(labels))))
        if build_args:
            params.append(("buildargs", json.dumps(dict(build_args))))
        if target:
            params.append(("target", target))
        messages = await self._stream(
            "POST",
            "/build",
            what="build the image",
            params=httpx.QueryParams(params),  # type: ignore[arg-type]
            headers={"Content-Type": "application/x-tar"},
            content=context,
            on_log=on_log,
        )
        for message in reversed(messages):
            aux = message.get("aux")
            if isinstance(aux, dict) and aux.get("ID"):
                return str(aux["ID"])
        inspected = await self.inspect_image(tags[0])
        if inspected is None:
            raise DockerError(f"the build finished but image {tags[0]} does not exist; see the build log")
        return str(inspected["Id"])

    async def push_image(
        self, reference: str, *, credentials: RegistryCredentials | None, on_log: LogSink
    ) -> None:
        repo, tag = split_reference(reference)
        await self._stream(
            "POST",
            f"/images/{quote(repo, safe='/:')}/push",
            what=f"push {reference} to {registry_of(reference)}",
            params={"tag": tag},
            headers={"X-Registry-Auth": registry_auth_header(credentials)},
            on_log=on_log,
        )

    async def pull_image(
        self, reference: str, *, credentials: RegistryCredentials | None, on_log: LogSink
    ) -> None:
        repo, tag = split_reference(reference)
        params = {"fromImage": repo}
        if tag:
            params["tag"] = tag
        await self._stream(
            "POST",
            "/images/create",
            what=f"pull {reference} from {registry_of(reference)}",
            params=params,
            headers={"X-Registry-Auth": registry_auth_header(credentials)},
            on_log=on_log,
        )

    async def ensure_image(
        self, reference: str, *, credentials: RegistryCredentials | None, pull: bool, on_log: LogSink
    ) -> None:
        """Make the image present: pull it when asked to (tags move) or when the engine lacks it."""
        if not pull and await self.inspect_image(reference) is not None:
            return
        await self.pull_image(reference, credentials=credentials, on_log=on_log)

    async def inspect_image(self, reference: str) -> dict[str, Any] | None:
        response = await self._request(
            "GET",
            f"/images/{quote(reference, safe='')}/json",
            what=f"inspect image {reference}",
            ok=(200, 404),
        )
        return None if response.status_code == 404 else dict(response.json())

    # -- containers -----------------------------------------------------------------------------------

    async def create_container(self, name: str, config: Mapping[str, Any]) -> str:
        body = await self._json(
            "POST",
            "/containers/create",
            what=f"create container {name}",
            params={"name": name},
            json_body=config,
        )
        return str(body["Id"])

    async def start_container(self, container: str) -> None:
        await self._request("POST", f"/containers/{container}/start", what=f"start container {container}")

    async def stop_container(self, container: str, *, grace_seconds: int = 10) -> None:
        await self._request(
            "POST",
            f"/containers/{container}/stop",
            what=f"stop container {container}",
            params={"t": grace_seconds},
            timeout=self._timeout + grace_seconds,
            ok=(204, 304, 404),
        )

    async def restart_container(self, container: str, *, grace_seconds: int = 10) -> None:
        await self._request(
            "POST",
            f"/containers/{container}/restart",
            what=f"restart container {container}",
            params={"t": grace_seconds},
            timeout=self._timeout + grace_seconds,
        )

    async def remove_container(self, container: str) -> None:
        """Remove, stopping it first if need be; a container already gone is fine.

        A container that is exiting at that very moment (its restart policy racing the removal) makes
        podman answer "container state improper"; a moment later the removal goes through.
        """
        for attempt in range(REMOVE_ATTEMPTS):
            try:
                await self._request(
                    "DELETE",
                    f"/containers/{container}",
                    what=f"remove container {container}",
                    params={"force": "true", "v": "true"},
                    ok=(200, 204, 404),
                )
                return
            except DriverError as error:
                if "state improper" not in str(error) or attempt == REMOVE_ATTEMPTS - 1:
                    raise
            await asyncio.sleep(0.2 * (attempt + 1))

    async def inspect_container(self, container: str) -> dict[str, Any] | None:
        response = await self._request(
            "GET", f"/containers/{container}/json", what=f"inspect container {container}", ok=(200, 404)
        )
        return None if response.status_code == 404 else dict(response.json())

    async def wait_container(self, container: str, *, timeout: float | None = None) -> int:
        body = await self._json(
            "POST", f"/containers/{container}/wait", what=f"wait for container {container}", timeout=timeout
        )
        return int(body.get("StatusCode", -1))

    async def logs(self, container: str, *, tail: int = 200) -> str:
        response = await self._request(
            "GET",
            f"/containers/{container}/logs",
            what=f"read the logs of container {container}",
            params={"stdout": "true", "stderr": "true", "tail": str(tail)},
        )
        return demultiplex(response.content)

    async def exec(
        self,
        container: str,
        command: Sequence[str],
        *,
        env: Mapping[str, str] | None = None,
        user: str | None = None,
        detach: bool = False,
        timeout: float | None = None,
    ) -> ExecResult:
        config: dict[str, Any] = {"Cmd": list(command), "AttachStdout": True, "AttachStderr": True}
        if env:
            config["Env"] = [f"{key}={value}" for key, value in env.items()]
        if user:
            config["User"] = user
        created = await self._json(
            "POST", f"/containers/{container}/exec", what=f"run a command in {container}", json_body=config
        )
        exec_id = str(created["Id"])
        response = await self._request(
            "POST",
            f"/exec/{exec_id}/start",
            what=f"run a command in {container}",
            json_body={"Detach": detach, "Tty": False},
            timeout=timeout,
        )
        if detach:
            return ExecResult(exit_code=0, output="")
        output = demultiplex(response.content)
        state = await self._json("GET", f"/exec/{exec_id}/json", what="read the command's exit code")
        code = state.get("ExitCode")
        return ExecResult(exit_code=int(code) if code is not None else -1, output=output)


def _parse_version(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        return MIN_API_VERSION


def _refusal(what: str, status: int, content: bytes) -> DockerError:
    try:
        message = str(json.loads(content).get("message", "")) or content.decode(errors="replace")
    except (ValueError, AttributeError):
        message = content.decode(errors="replace")
    hint = {
        404: "it does not exist (check the name or image reference)",
        409: "it conflicts with the current state (a name in use, a container not running)",
        500: "the engine failed; its log says more",
    }.get(status, "")
    # 4xx other than conflicts are the request's fault: another attempt sends the same thing.
    retryable = status >= 500 or status in (408, 409, 429)
    text = f"the Docker Engine refused to {what} (HTTP {status}): {message.strip()}"
    return DockerError(f"{text}; {hint}" if hint else text, status=status, retryable=retryable)


def _progress(message: Mapping[str, Any], on_log: LogSink, what: str) -> None:
    error = message.get("error") or (message.get("errorDetail") or {}).get("message")
    if error:
        on_log(f"error: {error}")
        raise DockerError(f"could not {what}: {str(error).strip()}")
    for key in ("stream", "status"):
        text = message.get(key)
        if isinstance(text, str) and text.strip():
            detail = message.get("progress") or ""
            on_log(f"{text.rstrip()} {detail}".rstrip())
