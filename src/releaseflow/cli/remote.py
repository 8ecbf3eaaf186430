"""Where the command line acts when it acts through a server: the target (``--server``/``--token``, the
RELEASEFLOW_SERVER/RELEASEFLOW_TOKEN variables, or the saved login) and the HTTP calls to it.

httpx is imported when the first call is made, not when the CLI starts: ``--help`` and the local
commands never pay for it. Every way a call can go wrong ends as a one-line releaseflow error (the
server unreachable, a token refused, an answer that is not releaseflow's), never a traceback.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from releaseflow.cli.common import UsageError
from releaseflow.domain.access import Forbidden, Unauthenticated
from releaseflow.domain.errors import ConflictError, NotFoundError, ReleaseflowError

if TYPE_CHECKING:
    import httpx

SERVER_VARIABLE = "RELEASEFLOW_SERVER"
TOKEN_VARIABLE = "RELEASEFLOW_TOKEN"
# Long enough for a server busy starting a run; short enough that a dead one is reported promptly.
TIMEOUT_SECONDS = 30.0
CONNECT_TIMEOUT_SECONDS = 5.0
# An event stream sends a keep-alive at least this often (engine.event_stream's heartbeat is 15 s):
# a stream silent for longer is a connection that died without closing.
STREAM_SILENCE_SECONDS = 60.0


@dataclass(frozen=True)
class Target:
    """A releaseflow server and the token the command line sends it."""

    url: str
    token: str


class RemoteError(ReleaseflowError):
    """The server could not be reached, or answered something that is not a releaseflow answer."""


def login_file(environ: Mapping[str, str]) -> Path:
    """Where ``releaseflow login`` keeps the server and token: the user's config directory."""
    base = environ.get("XDG_CONFIG_HOME") or str(Path(environ.get("HOME") or Path.home()) / ".config")
    return Path(base) / "releaseflow" / "login.json"


def save_login(target: Target, environ: Mapping[str, str]) -> Path:
    """Write the login readable by its owner only (0600), replacing any earlier one."""
    path = login_file(environ)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    partial = path.with_suffix(".tmp")
    partial.unlink(missing_ok=True)
    descriptor = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        json.dump({"server": target.url, "token": target.token}, out)
    partial.replace(path)
    return path


def saved_login(environ: Mapping[str, str]) -> Target | None:
    path = login_file(environ)
    try:
        saved = json.loads(path.read_text())
        return Target(normal_url(str(saved["server"])), str(saved["token"]))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise RemoteError(
            f"the saved login {path} is unreadable ({error}): run releaseflow login again"
        ) from None


def normal_url(url: str) -> str:
    url = url.strip().rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--server '{url}' is not an http:// or https:// URL")
    return url


def target_of(
    server: str | None, token: str | None, environ: Mapping[str, str], *, use_saved: bool = True
) -> Target | None:
    """The server the command acts through (flags first, then the environment, then the saved login
    unless ``use_saved`` is false); None: the command opens the local database."""
    server = server or environ.get(SERVER_VARIABLE) or None
    token = token or environ.get(TOKEN_VARIABLE) or None
    saved = saved_login(environ) if use_saved else None
    if server is None:
        if token is not None and saved is None:
            raise UsageError("--token needs a server: give --server URL too (or releaseflow login)")
        return Target(saved.url, token or saved.token) if saved else None
    url = normal_url(server)
    if token is None and saved is not None and saved.url == url:
        token = saved.token
    if token is None:
        raise UsageError(f"no token for {url}: give --token T, or save one with releaseflow login")
    return Target(url, token)


def segment(value: str) -> str:
    """A path segment, escaped (a stage or ref cannot change which route is called)."""
    return quote(value, safe="")


class Server:
    """The HTTP calls of one command to its server; ``close`` ends them."""

    def __init__(self, target: Target) -> None:
        import httpx

        self.target = target
        self._client = httpx.AsyncClient(
            base_url=target.url,
            headers={"Authorization": f"Bearer {target.token}", "Accept": "application/json"},
            timeout=httpx.Timeout(TIMEOUT_SECONDS, connect=CONNECT_TIMEOUT_SECONDS),
        )

    async def close(self) -> None:
        await self._client.aclose()

    async def call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        body: Mapping[str, Any] | None = None,
        whole: bool = False,
        text: bool = False,
    ) -> Any:
        """The answer's ``data`` (``whole``: the whole document, with its pagination; ``text``: the
        plain text a route answers); refusals raised as errors."""
        import httpx

        try:
            answer = await self._client.request(method, path, params=params, json=body)
        except httpx.HTTPError as error:
            raise self._unreachable(error) from None
        if text and answer.is_success:
            return answer.text
        document = self._document(answer)
        if answer.is_success:
            return document if whole or not isinstance(document, dict) else document.get("data", document)
        raise self._refusal(answer.status_code, document)

    async def stream(self, path: str, params: Mapping[str, Any]) -> AsyncIterator[str]:
        """The lines of a server-sent event stream, until the server ends it."""
        import httpx

        try:
            timeout = httpx.Timeout(STREAM_SILENCE_SECONDS, connect=CONNECT_TIMEOUT_SECONDS)
            async with self._client.stream("GET", path, params=params, timeout=timeout) as answer:
                if not answer.is_success:
                    await answer.aread()
                    raise self._refusal(answer.status_code, self._document(answer))
                async for line in answer.aiter_lines():
                    yield line
        except httpx.HTTPError as error:
            raise self._unreachable(error) from None

    def misunderstood(self, error: Exception) -> RemoteError:
        """An answer whose shape this command does not know (a server of another version)."""
        return RemoteError(
            f"the server at {self.target.url} answered in a shape this releaseflow does not read"
            f" ({type(error).__name__}: {error}): are the server and the command line the same version?"
        )

    def _unreachable(self, error: httpx.HTTPError) -> RemoteError:
        reason = str(error) or type(error).__name__
        return RemoteError(f"cannot reach the releaseflow server at {self.target.url}: {reason}")

    def _document(self, answer: httpx.Response) -> Any:
        try:
            return answer.json()
        except ValueError:
            raise RemoteError(
                f"{self.target.url} answered {answer.status_code} with no JSON: is it a releaseflow server?"
            ) from None

    def _refusal(self, status: int, document: Any) -> ReleaseflowError:
        error = document.get("error") if isinstance(document, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        if not message:
            return RemoteError(f"{self.target.url} answered {status}: is it a releaseflow server?")
        if status == 401:
            return Unauthenticated(f"the server at {self.target.url} refused the token: {message}")
        if status == 403:
            return Forbidden(f"the server at {self.target.url} refused: {message}")
        if status == 404:
            return NotFoundError(message)
        if status == 409:
            return ConflictError(message)
        if 400 <= status < 500:
            return UsageError(str(message))
        return RemoteError(f"the server at {self.target.url} failed ({status}): {message}")
