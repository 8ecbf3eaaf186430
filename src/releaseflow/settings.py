"""One settings object, read once from the environment (and command-line flags), then passed down.

| variable | default |
| --- | --- |
| ``RELEASEFLOW_DATA_DIR`` | ``./data`` |
| ``RELEASEFLOW_DATABASE_URL`` | ``sqlite:///<data dir, absolute>/releaseflow.db`` |
| ``RELEASEFLOW_HOST`` / ``RELEASEFLOW_PORT`` | ``127.0.0.1`` / ``8080`` |
| ``RELEASEFLOW_LOG_LEVEL`` | ``info`` |
| ``RELEASEFLOW_WORKER_LEASE_SECONDS`` | 15 |
| ``RELEASEFLOW_WORKER_HEARTBEAT_SECONDS`` | 2 |
| ``RELEASEFLOW_WORKER_REAP_SECONDS`` | 1 |
| ``RELEASEFLOW_WORKER_MAX_CONCURRENCY`` | 256 |
| ``RELEASEFLOW_WORKER_IDLE_POLL_SECONDS`` | 0.5 |
| ``RELEASEFLOW_DOCKER_HOST`` (or ``DOCKER_HOST``) | unset: the docker driver is off |
| ``RELEASEFLOW_DOCKER_REGISTRY`` | unset: docker builds are not pushed |
| ``RELEASEFLOW_DOCKER_CREDENTIALS_FILE`` | unset: no saved registry logins |
| ``RELEASEFLOW_GIT_POLL_SECONDS`` | 5 (0: local git repositories are not watched) |
| ``RELEASEFLOW_GITHUB_WEBHOOK_SECRET`` | unset: GitHub deliveries are refused |
| ``RELEASEFLOW_GITLAB_WEBHOOK_TOKEN`` | unset: GitLab deliveries are refused |
| ``RELEASEFLOW_INBOX_KEY`` | unset: the server makes one (kept in the database) |
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from releaseflow.domain.errors import Issue, ValidationError
from releaseflow.engine.worker_settings import WorkerSettings

if TYPE_CHECKING:
    pass

PREFIX = "RELEASEFLOW_"
_INBOX_KEY = re.compile(r"^[A-Za-z0-9_-]{16,128}$")
LOG_LEVELS = ("critical", "error", "warning", "info", "debug")

# Worker setting field -> environment variable suffix.
_WORKER_VARIABLES = {
    "lease_seconds": "WORKER_LEASE_SECONDS",
    "heartbeat_seconds": "WORKER_HEARTBEAT_SECONDS",
    "reap_seconds": "WORKER_REAP_SECONDS",
    "max_concurrency": "WORKER_MAX_CONCURRENCY",
    "idle_poll_seconds": "WORKER_IDLE_POLL_SECONDS",
}

T = TypeVar("T", int, float)


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    database_url: str
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "info"
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    # A Docker Engine API (unix:///path or tcp://host:port); without it the docker driver is off.
    docker_host: str | None = None
    # Where docker builds are pushed (host:port of a registry); without it images stay local.
    docker_registry: str | None = None
    # A JSON file of saved registry logins by id (see platform/available.py).
    docker_credentials_file: Path | None = None
    # How often the server looks at local git repositories of git triggers; 0: never.
    git_poll_seconds: float = 5.0
    # The shared secrets of GitHub (HMAC of each delivery) and GitLab (sent as is) webhooks.
    github_webhook_secret: str | None = None
    gitlab_webhook_token: str | None = None
    # The key that lets anyone post to the message inbox (/inbox/KEY/NAME); without it the server
    # makes one and keeps it in the database.
    inbox_key: str | None = None

    @classmethod
    def from_env(
        cls,
        environ: Mapping[str, str],
        *,
        data_dir: str | None = None,
        database_url: str | None = None,
        host: str | None = None,
        port: int | None = None,
    ) -> Settings:
        """Settings from ``environ``; the keyword arguments (command-line flags) win over it.

        Every bad value is reported at once, naming its variable.
        """
        issues: list[Issue] = []

        def get(name: str) -> str | None:
            value = environ.get(PREFIX + name)
            return value if value else None

        def number(name: str, kind: Callable[[str], T], default: T, minimum: T) -> T:
            raw = get(name)
            if raw is None:
                return default
            try:
                value = kind(raw)
            except ValueError:
                issues.append(Issue(PREFIX + name, f"must be a number, got {raw!r}"))
                return default
            if value < minimum:
                issues.append(Issue(PREFIX + name, f"must be at least {minimum}, got {raw}"))
                return default
            return value

        folder = Path(data_dir or get("DATA_DIR") or "data").expanduser().resolve()
        url = database_url or get("DATABASE_URL") or f"sqlite:///{folder / 'releaseflow.db'}"
        chosen_port = port if port is not None else number("PORT", int, 8080, 0)
        if not 0 <= chosen_port <= 65535:
            issues.append(Issue(PREFIX + "PORT", f"must be a TCP port (0-65535), got {chosen_port}"))
        log_level = (get("LOG_LEVEL") or "info").lower()
        if log_level not in LOG_LEVELS:
            issues.append(Issue(PREFIX + "LOG_LEVEL", f"must be one of {', '.join(LOG_LEVELS)}"))
        defaults = WorkerSettings()
        worker = WorkerSettings(
            lease_seconds=number(_WORKER_VARIABLES["lease_seconds"], float, defaults.lease_seconds, 0.1),
            heartbeat_seconds=number(
                _WORKER_VARIABLES["heartbeat_seconds"], float, defaults.heartbeat_seconds, 0.01
            ),
            reap_seconds=number(_WORKER_VARIABLES["reap_seconds"], float, defaults.reap_seconds, 0.01),
            max_concurrency=number(_WORKER_VARIABLES["max_concurrency"], int, defaults.max_concurrency, 1),
            idle_poll_seconds=number(
                _WORKER_VARIABLES["idle_poll_seconds"], float, defaults.idle_poll_seconds, 0.01
            ),
        )
        git_poll_seconds = number("GIT_POLL_SECONDS", float, 5.0, 0.0)
        inbox_key = get("INBOX_KEY")
        if inbox_key is not None and not _INBOX_KEY.match(inbox_key):
            issues.append(Issue(PREFIX + "INBOX_KEY", "must be 16 to 128 letters, digits, '-' or '_'"))
        if issues:
            raise ValidationError(issues, subject="settings")
        return cls(
            data_dir=folder,
            database_url=url,
            host=host or get("HOST") or "127.0.0.1",
            port=chosen_port,
            log_level=log_level,
            worker=worker,
            docker_host=get("DOCKER_HOST") or environ.get("DOCKER_HOST") or None,
            docker_registry=get("DOCKER_REGISTRY"),
            docker_credentials_file=Path(file) if (file := get("DOCKER_CREDENTIALS_FILE")) else None,
            git_poll_seconds=git_poll_seconds,
            github_webhook_secret=get("GITHUB_WEBHOOK_SECRET"),
            gitlab_webhook_token=get("GITLAB_WEBHOOK_TOKEN"),
            inbox_key=inbox_key,
        )

    @property
    def base_url(self) -> str:
        """Where a client on this host reaches the server (a wildcard address means loopback)."""
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else "[::1]" if self.host == "::" else self.host
        return f"http://{host}:{self.port}"
