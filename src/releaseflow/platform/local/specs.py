"""The ``spec`` of each resource kind on the local driver: its declared schema, and its parsers.

A configuration file keeps ``spec`` open (it belongs to the driver). The schemas below (``SCHEMAS``)
declare what each kind accepts; ``validate`` and ``apply`` check every resource against them before
anything changes, and the parsers check the same declaration again at deploy time (a resource stored
before the schema existed is still refused with every problem listed). A parser only reads keys its
schema declares (``_Reader`` refuses anything else), so the declaration and the parser cannot drift.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import PurePosixPath
from typing import Any

from releaseflow.domain.spec_schema import Excludes, OneOf, Requires, SpecField, SpecSchema
from releaseflow.platform.driver import Resource
from releaseflow.platform.local.health import CHECK_TYPES, HealthCheck
from releaseflow.platform.local.postgres_connection import ConnectionTarget
from releaseflow.platform.spec_check import SpecError, checked_spec

DRIVER = "local"


class _Reader:
    """Reads typed keys out of one resource's spec, after checking it against the kind's schema.

    Reading a key the schema does not declare is a programming error (the declaration would drift
    from what the driver uses), hence an assertion rather than a message for the user.
    """

    def __init__(self, resource: Resource, schema: SpecSchema) -> None:
        self.resource = resource
        self.schema = schema
        self.spec = checked_spec(resource, schema)

    def get(self, key: str, default: Any = None) -> Any:
        assert key in self.schema.fields, f"the {self.schema.name} schema does not declare {key}"
        return self.spec.get(key, default)

    def error(self, key: str, problem: str) -> SpecError:
        return SpecError(self.resource, DRIVER, key, problem)

    # The schema has checked every type, range and required key: what follows only converts.

    def text(self, key: str) -> str | None:
        value = self.get(key)
        return None if value is None else str(value)

    def required_text(self, key: str) -> str:
        return str(self.get(key))

    def number(self, key: str, default: float) -> float:
        value = self.get(key)
        return default if value is None else float(value)

    def port(self, key: str) -> int | None:
        value = self.get(key)
        return None if value is None else int(value)

    def env(self, key: str = "env") -> dict[str, str]:
        # Numbers and booleans are accepted because YAML turns `PORT: 8000` into an int.
        return {str(name): _env_text(item) for name, item in (self.get(key) or {}).items()}

    def command(self, key: str) -> tuple[str, ...]:
        """A command as a list of arguments, or a string run with ``sh -c``."""
        value = self.get(key)
        return ("sh", "-c", value) if isinstance(value, str) else tuple(value)

    def relative_path(self, key: str) -> str | None:
        value = self.text(key)
        if value is None:
            return None
        normal = str(PurePosixPath(value))
        return None if normal == "." else normal


def _env_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# -- declared schemas -------------------------------------------------------------------------------

_ENV = SpecField("env", "environment variables of the process: names to strings, numbers or booleans")
_SECONDS = "seconds, greater than 0"
# Folders of a checkout: relative, and never climbing out of it with "..".
_RELATIVE_PATH = r"(?!/)(?!(?:.*/)?\.\.(?:/|$)).+"
_SQL_NAME_PATTERN = r"[A-Za-z0-9_]{1,63}"
_RESERVED_DATABASES = ("postgres", "template0", "template1")
ADDON_TYPE = "postgresql"
# A managed cluster runs as an unprivileged user, which cannot bind the ports below 1024.
ADDON_PORT_RANGE = (1024, 65535)

HEALTH_CHECK = SpecField(
    "object",
    "how a new version proves it serves; default: tcp to spec.port, or (without a port) the process"
    " staying up",
    fields={
        "type": SpecField("string", "the kind of probe", enum=CHECK_TYPES),
        "path": SpecField(
            "string", "http: the path to GET", default="/", pattern="/.*", pattern_rule="must start with '/'"
        ),
        "command": SpecField("string", "command: a shell command that exits 0 when healthy"),
        "timeoutSeconds": SpecField(
            "number",
            f"how long a new version has to become healthy, {_SECONDS}",
            default=60,
            exclusive_minimum=0,
        ),
        "intervalSeconds": SpecField(
            "number", f"the pause between probes, {_SECONDS}", default=1, exclusive_minimum=0
        ),
    },
    rules=(Requires(("type",), "command", ("command",), "a command probe runs it"),),
)

SERVICE_SCHEMA = SpecSchema(
    DRIVER,
    "service",
    "a long-running process started in the folder of the build deployed to the service",
    {
        "runCommand": SpecField("command", "what to run: a shell string, or a list of arguments"),
        "command": SpecField("command", "another spelling of runCommand"),
        "env": _ENV,
        "port": SpecField(
            "integer", "the port the service listens on, passed as PORT", minimum=1, maximum=65535
        ),
        "healthCheck": HEALTH_CHECK,
        "stopTimeoutSeconds": SpecField(
            "number",
            f"how long a stopping process may take before it is killed, {_SECONDS}",
            default=10,
            exclusive_minimum=0,
        ),
    },
    rules=(
        OneOf(("runCommand", "command")),
        Requires(("healthCheck", "type"), "port", ("http", "tcp"), "the probe connects to it"),
    ),
)

JOB_SCHEMA = SpecSchema(
    DRIVER,
    "job",
    "a command run to completion in the folder of the build deployed to the job",
    {
        "command": SpecField("command", "what to run: a shell string, or a list of arguments", required=True),
        "env": _ENV,
    },
)

BUILD_SERVICE_SCHEMA = SpecSchema(
    DRIVER,
    "build_service",
    "builds a git commit with a shell command and keeps a folder of the checkout as the artifact",
    {
        "repository": SpecField("string", "a git URL, or the path of a local repository", required=True),
        "buildCommand": SpecField("string", "run with sh -c in the checkout", required=True),
        "branch": SpecField("string", "the branch built when a Build node names none"),
        "env": _ENV,
        "artifactPath": SpecField(
            "string",
            "the folder of the checkout to keep (default: the whole checkout)",
            pattern=_RELATIVE_PATH,
            pattern_rule="must be a path inside the checkout (relative, without '..')",
        ),
        "timeoutSeconds": SpecField(
            "number", f"how long a build may take, {_SECONDS}", default=1800, exclusive_minimum=0
        ),
    },
)

ADDON_SCHEMA = SpecSchema(
    DRIVER,
    "addon",
    "a PostgreSQL database: a cluster managed on this host, or an external server (externalUrl)",
    {
        "type": SpecField("string", "the kind of addon", required=True, enum=(ADDON_TYPE,)),
        "version": SpecField(
            "digits", 'the PostgreSQL major version, e.g. "16" (default: the newest installed)'
        ),
        "database": SpecField(
            "string",
            "managed: the database to create (default: the addon id with _ for -)",
            pattern=_SQL_NAME_PATTERN,
            pattern_rule="must be 1-63 letters, digits or _",
            forbidden=_RESERVED_DATABASES,
            forbidden_rule="PostgreSQL reserves it",
        ),
        "user": SpecField(
            "string",
            "managed: the role that owns the database (default: the database name)",
            pattern=_SQL_NAME_PATTERN,
            pattern_rule="must be 1-63 letters, digits or _",
            forbidden=("postgres",),
            forbidden_rule="the cluster's superuser",
        ),
        "port": SpecField(
            "integer",
            "managed: the port of 127.0.0.1 the cluster listens on (default: a free port chosen at creation)",
            minimum=ADDON_PORT_RANGE[0],
            maximum=ADDON_PORT_RANGE[1],
        ),
        "externalUrl": SpecField(
            "string",
            "an existing server instead of a managed cluster: postgresql://user:password@host:port/database",
            pattern=r"postgres(?:ql)?://.+",
            pattern_rule="must be a libpq URL (postgresql://user:password@host:port/database)",
        ),
    },
    rules=(Excludes("externalUrl", ("database", "user", "port"), "the URL names them"),),
)

# What the local driver runs, by resource kind.
SCHEMAS: Mapping[str, SpecSchema] = {
    schema.kind: schema for schema in (SERVICE_SCHEMA, JOB_SCHEMA, BUILD_SERVICE_SCHEMA, ADDON_SCHEMA)
}


# -- parsers -----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuildServiceSpec:
    """Builds a git commit with a shell command; keeps ``artifact_path`` (or the whole checkout)."""

    repository: str  # a git URL, or a path to a local repository
    build_command: str  # run with ``sh -c`` in the checkout
    branch: str | None = None  # the branch built when a Build node names none
    env: Mapping[str, str] = field(default_factory=dict)
    artifact_path: str | None = None  # a folder of the checkout; None keeps the whole checkout
    timeout_seconds: float = 1800.0

    @classmethod
    def parse(cls, resource: Resource) -> BuildServiceSpec:
        read = _Reader(resource, BUILD_SERVICE_SCHEMA)
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

    @classmethod
    def parse(cls, resource: Resource) -> ServiceSpec:
        read = _Reader(resource, SERVICE_SCHEMA)
        key = "runCommand" if read.get("runCommand") is not None else "command"
        command = read.command(key)
        port = read.port("port")
        return cls(
            run_command=raw if isinstance(raw := read.get(key), str) else shlex.join(command),
            env=read.env(),
            port=port,
            health_check=HealthCheck.parse(resource.id, read.get("healthCheck"), port),
            stop_timeout_seconds=read.number("stopTimeoutSeconds", 10.0),
        )


@dataclass(frozen=True)
class JobSpec:
    """A command run to completion in the artifact folder of the build deployed to the job."""

    command: str  # a shell string, or a list of arguments (quoted for ``sh -c``)
    env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, resource: Resource) -> JobSpec:
        read = _Reader(resource, JOB_SCHEMA)
        command = read.command("command")
        raw = read.get("command")
        return cls(command=raw if isinstance(raw, str) else shlex.join(command), env=read.env())


@dataclass(frozen=True)
class PostgresAddonSpec:
    """A PostgreSQL addon: a managed cluster on this host, or an external server (``externalUrl``)."""

    database: str  # managed: the database releaseflow creates; external: the one in the URL
    user: str
    version: str | None = None
    external_url: str | None = field(default=None, repr=False)  # holds a password
    port: int | None = None  # managed: the port asked for; None lets the cluster pick a free one

    @property
    def managed(self) -> bool:
        return self.external_url is None

    @classmethod
    def parse(cls, addon: Resource) -> PostgresAddonSpec:
        if addon.kind != "addon":
            raise SpecError(addon, DRIVER, "", f"belongs to a {addon.kind}, not an addon", kind="addon")
        read = _Reader(addon, ADDON_SCHEMA)
        version = read.get("version")
        version_text = str(version) if version is not None else None
        url = read.get("externalUrl")
        if url is not None:
            try:
                target = ConnectionTarget.from_url(url)
            except ValueError as error:
                raise read.error("externalUrl", str(error)) from None
            return cls(target.dbname, target.user, version_text, url)
        database = read.get("database", addon.id.replace("-", "_"))
        if database in _RESERVED_DATABASES:
            raise read.error(
                "database",
                f"cannot be {database!r} (from the addon id), which PostgreSQL reserves; set spec.database",
            )
        return cls(database, read.get("user", database), version_text, port=read.port("port"))
