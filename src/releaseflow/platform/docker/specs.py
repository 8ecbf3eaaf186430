"""The ``spec`` of each resource kind on the docker driver, declared as data.

``validate`` and ``apply`` check every docker resource against these schemas before anything changes.
The driver reads its specs where it uses them (``services``, ``jobs``, ``builds``, ``health``); a test
reads those modules and fails when they read a key declared nowhere here, so the two cannot drift.
The docker driver runs no addons (give an addon the local driver).
"""

from __future__ import annotations

from collections.abc import Mapping

from releaseflow.domain.spec_schema import Requires, SpecField, SpecSchema

_ENV = SpecField("env", "environment variables of the container: names to strings, numbers or booleans")

HEALTH_CHECK = SpecField(
    "object",
    "how a new container proves it serves; default: tcp to spec.port, or (without a port) the container"
    " staying up",
    fields={
        "type": SpecField("string", "the kind of probe", enum=("http", "tcp", "command", "running")),
        "path": SpecField(
            "string", "http: the path to GET", default="/", pattern="/.*", pattern_rule="must start with '/'"
        ),
        "command": SpecField("command", "command: run in the container, healthy when it exits 0"),
        "timeoutSeconds": SpecField(
            "number", "how long a new container has to become healthy", default=60, exclusive_minimum=0
        ),
        "intervalSeconds": SpecField("number", "the pause between probes", default=1, exclusive_minimum=0),
    },
    rules=(Requires(("type",), "command", ("command",), "a command probe runs it"),),
)

SERVICE_SCHEMA = SpecSchema(
    "docker",
    "service",
    "a container of the image deployed to the service, replaced side by side on each deploy",
    {
        "command": SpecField("command", "the container's command (default: the image's)"),
        "entrypoint": SpecField("command", "the container's entrypoint (default: the image's)"),
        "env": _ENV,
        "port": SpecField("integer", "the port the container listens on", minimum=1, maximum=65535),
        "hostPort": SpecField(
            "integer", "the port of the host it is published on (default: any)", minimum=1, maximum=65535
        ),
        "hostIp": SpecField("string", "the host address it is published on (default: all)"),
        "healthCheck": HEALTH_CHECK,
        "stopGraceSeconds": SpecField(
            "integer", "how long a stopping container may take before it is killed", default=10, minimum=0
        ),
    },
    rules=(
        Requires(("healthCheck", "type"), "port", ("http", "tcp"), "the probe connects to it"),
        Requires(("hostPort",), "port", None, "it publishes the container's port"),
        Requires(("hostIp",), "port", None, "it publishes the container's port"),
    ),
)

JOB_SCHEMA = SpecSchema(
    "docker",
    "job",
    "a container of the image deployed to the job, run to completion",
    {
        "command": SpecField("command", "the container's command (default: the image's)"),
        "env": _ENV,
    },
)

BUILD_SERVICE_SCHEMA = SpecSchema(
    "docker",
    "build_service",
    "builds an image from a Dockerfile of a git commit and pushes it to the registry",
    {
        "repository": SpecField("string", "a git URL, or the path of a local repository", required=True),
        "dockerfile": SpecField("string", "the Dockerfile's path in the checkout", default="Dockerfile"),
        "context": SpecField("string", "the build context's folder in the checkout", default="."),
        "branch": SpecField("string", "the branch built when a Build node names none"),
    },
)

# What the docker driver runs, by resource kind.
SCHEMAS: Mapping[str, SpecSchema] = {
    schema.kind: schema for schema in (SERVICE_SCHEMA, JOB_SCHEMA, BUILD_SERVICE_SCHEMA)
}
