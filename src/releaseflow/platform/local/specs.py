"""The ``spec`` of each resource kind on the local driver, parsed into typed values.

A configuration file keeps ``spec`` open (it belongs to the driver), so this is where a misspelt key
or a wrong type is caught: every error names the resource, the key and what is expected, and unknown
keys are refused rather than ignored.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from releaseflow.platform.driver import DriverError, Resource
from releaseflow.platform.local.health import HealthCheck
from releaseflow.platform.local.postgres_connection import ConnectionTarget

KIND_WORDS = {"service": "service", "job": "job", "addon": "addon", "build_service": "build service"}


class SpecError(DriverError):
    """A resource's spec cannot be used by the local driver; another attempt cannot fix it."""

    def __init__(self, resource: Resource, key: str, problem: str, *, kind: str | None = None) -> None:
        what = KIND_WORDS.get(kind or resource.kind, kind or resource.kind)
        where = f"spec.{key}" if key else "spec"
        super().__init__(f"{what} '{resource.id}' (local driver): {where} {problem}", retryable=False)


class _Reader:
    """Reads typed keys out of one resource's spec and refuses keys it was never asked about."""

    def __init__(self, resource: Resource, known: tuple[str, ...]) -> None:
        self.resource = resource
        self.spec: Mapping[str, Any] = resource.spec or {}
        unknown = sorted(set(self.spec) - set(known))
        if unknown:
            raise SpecError(
                resource, unknown[0], f"is not a known key (known keys: {', '.join(sorted(known))})"
            )

    def error(self, key: str, problem: str) -> SpecError:
        return SpecError(self.resource, key, problem)

    def text(self, key: str, *, required: bool = False, default: str | None = None) -> str | None:
        value = self.spec.get(key)
        if value is None:
            if required:
                raise self.error(key, "is required")
            return default
        if not isinstance(value, str) or not value.strip():
            raise self.error(key, f"must be a non-empty string, not {value!r}")
        return value

    def required_text(self, key: str) -> str:
        value = self.text(key, required=True)
        assert value is not None
        return value

    def number(self, key: str, default: float, *, minimum: float = 0.0) -> float:
        value = self.spec.get(key)
        if value is None:
            return default
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= minimum:
            raise self.error(key, f"must be a number greater than {minimum:g}, not {value!r}")
        return float(value)

    def port(self, key: str) -> int | None:
        value = self.spec.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
            raise self.error(key, f"must be a port number between 1 and 65535, not {value!r}")
        return value

    def env(self, key: str = "env") -> dict[str, str]:
        value = self.spec.get(key)
        if value is None:
            return {}
        if not isinstance(value, Mapping):
            raise self.error(key, "must be a mapping of variable names to values")
        return {str(name): env_value(self, f"{key}.{name}", item) for name, item in value.items()}

    def command(self, key: str, *, required: bool) -> tuple[str, ...] | None:
        """A command as a list of arguments, or a string run with ``sh -c``."""
        value = self.spec.get(key)
        if value is None:
            if required:
                raise self.error(key, "is required (a list of arguments, or a string run with sh -c)")
            return None
        if isinstance(value, str) and value.strip():
            return ("sh", "-c", value)
        if (
            isinstance(value, list | tuple)
            and value
            and all(isinstance(arg, str) for arg in value)
            and value[0].strip()
        ):
            return tuple(value)
        raise self.error(key, "must be a non-empty list of strings, or a non-empty string run with sh -c")

    def relative_path(self, key: str) -> str | None:
        value = self.text(key)
        if value is None:
            return None
        path = PurePosixPath(value)
        if path.is_absolute() or ".." in path.parts:
            raise self.error(
                key, f"must be a path inside the checkout (relative, without '..'), not {value!r}"
            )
        normal = str(path)
        return None if normal == "." else normal


def env_value(reader: _Reader, key: str, value: Any) -> str:
    # Numbers and booleans are accepted because YAML turns `PORT: 8000` into an int; anything
    # structured is refused rather than stringified into something surprising.
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str | int | float):
        return str(value)
    raise reader.error(key, f"must be a string, number or boolean, not {type(value).__name__}")


@dataclass(frozen=True)
class BuildServiceSpec:
    """Builds a git commit with a shell command; keeps ``artifact_path`` (or the whole checkout)."""

    repository: str  # a git URL, or a path to a local repository
    build_command: str  # run with ``sh -c`` in the checkout
    branch: str | None = None  # the branch built when a Build node names none
    env: Mapping[str, str] = field(default_factory=dict)
    artifact_path: str | None = None  # a folder of the checkout; None keeps the whole checkout
    timeout_seconds: float = 1800.0

    KEYS = ("repository", "buildCommand", "branch", "env", "artifactPath", "timeoutSeconds")

    @classmethod
    def parse(cls, resource: Resource) -> BuildServiceSpec:
        read = _Reader(resource, cls.KEYS)
        return cls(
            repository=read.required_text("repository"),
            build_command=read.required_text("buildCommand"),
            branch=read.text("branch"),
            env=read.env(),
            artifact_path=read.relative_path("artifactPath"),
            timeout_seconds=read.number("timeoutSeconds", 1800.0),
        )


@dataclass(frozen=True)
class ServiceSpec:
    """A long-running process started in the artifact folder of the build deployed to the service."""

    run_command: str  # ``runCommand``, or ``command`` (a list is joined with shell quoting)
    health_check: HealthCheck  # without spec.healthCheck: tcp to the port, or "none" without one
    env: Mapping[str, str] = field(default_factory=dict)
    port: int | None = None  # passed as PORT; the default health check connects to it
    stop_timeout_seconds: float = 10.0

    KEYS = ("runCommand", "command", "env", "port", "healthCheck", "stopTimeoutSeconds")

    @classmethod
    def parse(cls, resource: Resource) -> ServiceSpec:
        read = _Reader(resource, cls.KEYS)
        if "runCommand" in read.spec and "command" in read.spec:
            raise read.error("command", "and spec.runCommand are the same setting: give only one")
        key = "runCommand" if "runCommand" in read.spec else "command"
        command = read.command(key, required=True)
        assert command is not None
        port = read.port("port")
        return cls(
            run_command=raw if isinstance(raw := read.spec[key], str) else shlex.join(command),
            env=read.env(),
            port=port,
            health_check=HealthCheck.parse(resource.id, read.spec.get("healthCheck"), port),
            stop_timeout_seconds=read.number("stopTimeoutSeconds", 10.0),
        )


@dataclass(frozen=True)
class JobSpec:
    """A command run to completion in the artifact folder of the build deployed to the job."""

    command: str  # a shell string, or a list of arguments (quoted for ``sh -c``)
    env: Mapping[str, str] = field(default_factory=dict)

    KEYS = ("command", "env")

    @classmethod
    def parse(cls, resource: Resource) -> JobSpec:
        read = _Reader(resource, cls.KEYS)
        command = read.command("command", required=True)
        assert command is not None
        raw = read.spec["command"]
        return cls(command=raw if isinstance(raw, str) else shlex.join(command), env=read.env())


ADDON_TYPE = "postgresql"
_SQL_NAME = re.compile(r"[A-Za-z0-9_]{1,63}")
_RESERVED_DATABASES = ("postgres", "template0", "template1")


@dataclass(frozen=True)
class PostgresAddonSpec:
    """A PostgreSQL addon: a managed cluster on this host, or an external server (``externalUrl``)."""

    database: str  # managed: the database releaseflow creates; external: the one in the URL
    user: str
    version: str | None = None
    external_url: str | None = field(default=None, repr=False)  # holds a password

    KEYS = ("type", "version", "database", "user", "externalUrl")

    @property
    def managed(self) -> bool:
        return self.external_url is None

    @classmethod
    def parse(cls, addon: Resource) -> PostgresAddonSpec:
        if addon.kind != "addon":
            raise SpecError(addon, "", f"belongs to a {addon.kind}, not an addon", kind="addon")
        read = _Reader(addon, cls.KEYS)
        kind = read.spec.get("type")
        if kind is None:
            raise read.error("type", f"is required; set it to '{ADDON_TYPE}'")
        if kind != ADDON_TYPE:
            raise read.error(
                "type", f"is {kind!r}, which the local driver cannot run; the only type is '{ADDON_TYPE}'"
            )
        version = read.spec.get("version")
        if version is not None and (isinstance(version, bool) or not str(version).isdigit()):
            raise read.error("version", f'must be a major version such as "15", not {version!r}')
        url = read.spec.get("externalUrl")
        if url is not None:
            if not isinstance(url, str):
                raise read.error("externalUrl", "must be a string (a libpq URL)")
            for key in ("database", "user"):
                if key in read.spec:
                    raise read.error(key, "cannot be set with externalUrl, whose URL names it")
            try:
                target = ConnectionTarget.from_url(url)
            except ValueError as error:
                raise read.error("externalUrl", str(error)) from None
            return cls(target.dbname, target.user, str(version) if version else None, url)
        database = read.spec.get("database", addon.id.replace("-", "_").replace(".", "_"))
        user = read.spec.get("user", database)
        for key, value in (("database", database), ("user", user)):
            if not isinstance(value, str) or not _SQL_NAME.fullmatch(value):
                raise read.error(key, f"must be 1-63 letters, digits or _, not {value!r}")
        if database in _RESERVED_DATABASES:
            raise read.error("database", f"cannot be {database!r}, which PostgreSQL reserves")
        if user == "postgres":
            raise read.error("user", "cannot be 'postgres', the cluster's superuser")
        return cls(database, user, str(version) if version else None)
