"""Resource specs checked against the schema their driver declares (``domain.spec_schema``)."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import pytest

from releaseflow.domain.config import parse_configuration
from releaseflow.domain.errors import Issue, ValidationError
from releaseflow.domain.spec_schema import SpecSchema, check_spec, describe_schema, spec_json_schema
from releaseflow.platform import spec_check
from releaseflow.platform.available import spec_schemas
from releaseflow.platform.docker import DockerDriver
from releaseflow.platform.docker import specs as docker_specs
from releaseflow.platform.driver import Artifact, DriverRequest, Operation, Resource
from releaseflow.platform.local import specs as local_specs
from releaseflow.platform.local.specs import (
    BuildServiceSpec,
    JobSpec,
    PostgresAddonSpec,
    ServiceSpec,
)
from releaseflow.platform.spec_check import SpecError

SOURCE = Path(__file__).resolve().parents[2] / "src" / "releaseflow" / "platform"


def project(**resources: list[dict[str, Any]]) -> dict[str, Any]:
    return {"projects": [{"id": "shop", "resources": resources}]}


def issues_of(document: Any) -> list[Issue]:
    with pytest.raises(ValidationError) as caught:
        parse_configuration(document, read_file=lambda _: "", spec_schemas=spec_schemas())
    return list(caught.value.issues)


def messages(document: Any) -> dict[str, str]:
    return {issue.path: issue.message for issue in issues_of(document)}


# -- what the issue saw accepted ------------------------------------------------------------------


def test_parse_configuration__misspelt_spec_key_is_refused_with_a_hint() -> None:
    found = messages(project(services=[{"id": "api", "spec": {"runComand": "python -m api"}}]))

    assert found["projects[0].resources.services[0].spec.runComand"].startswith(
        "is not a known key; did you mean 'runCommand'?"
    )
    assert "projects[0].resources.services[0].spec.runCommand" in found  # and it is still missing


def test_parse_configuration__wrong_types_in_spec_are_refused() -> None:
    found = messages(
        project(
            services=[{"id": "api", "spec": {"runCommand": "serve", "port": "eighty-eighty-one"}}],
            buildServices=[
                {
                    "id": "builder",
                    "spec": {"repository": ".", "buildCommand": "make", "timeoutSeconds": "30s"},
                }
            ],
        )
    )

    assert found == {
        "projects[0].resources.services[0].spec.port": "must be a whole number, not 'eighty-eighty-one'",
        "projects[0].resources.buildServices[0].spec.timeoutSeconds": "must be a number, not '30s'",
    }


def test_parse_configuration__every_spec_problem_of_the_file_is_listed_with_its_path() -> None:
    document = project(
        services=[
            {"id": "api", "spec": {"command": ["serve"], "port": 70000, "healthCheck": {"type": "udp"}}},
            {
                "id": "web",
                "driver": "docker",
                "spec": {"healthCheck": {"type": "http"}, "stopGraceSeconds": -1},
            },
        ],
        jobs=[{"id": "migrate", "spec": {}}],
        addons=[{"id": "db", "spec": {"type": "mysql", "port": 80, "user": "postgres"}}],
    )

    assert sorted(issue.path for issue in issues_of(document)) == [
        "projects[0].resources.addons[0].spec.port",
        "projects[0].resources.addons[0].spec.type",
        "projects[0].resources.addons[0].spec.user",
        "projects[0].resources.jobs[0].spec.command",
        "projects[0].resources.services[0].spec.healthCheck.type",
        "projects[0].resources.services[0].spec.port",
        "projects[0].resources.services[1].spec.port",
        "projects[0].resources.services[1].spec.stopGraceSeconds",
    ]


def test_parse_configuration__unknown_driver_and_unsupported_kind_are_refused() -> None:
    found = messages(
        project(services=[{"id": "api", "driver": "k8s"}], addons=[{"id": "db", "driver": "docker"}])
    )

    assert found == {
        "projects[0].resources.services[0].driver": "unknown driver 'k8s' (known drivers: docker, local)",
        "projects[0].resources.addons[0].driver": (
            "the docker driver does not run addons (it runs: service, job, build service)"
        ),
    }


def test_parse_configuration__bad_spec_does_not_hide_the_resource_from_stages() -> None:
    document = project(services=[{"id": "api", "spec": {"port": 8080}}])
    document["projects"][0]["pipelines"] = [
        {"id": "main", "stages": [{"name": "Production", "resources": ["api"]}]}
    ]

    assert [issue.path for issue in issues_of(document)] == [
        "projects[0].resources.services[0].spec.runCommand"
    ]


def test_parse_configuration__without_schemas_spec_stays_open() -> None:
    document = project(services=[{"id": "api", "driver": "fake", "spec": {"anything": [1, 2]}}])

    (shop,) = parse_configuration(document, read_file=lambda _: "").projects
    assert shop.resources[0].spec == {"anything": [1, 2]}


# -- the checker's rules --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"command": "a", "runCommand": "b"}, [("spec.command", "and runCommand are the same setting")]),
        ({}, [("spec.runCommand", "is required: set one of runCommand, command")]),
        ({"command": []}, [("spec.command", "must be a command")]),
        (
            {"command": "a", "healthCheck": {"type": "tcp"}},
            [("spec.port", "is required with healthCheck.type: tcp")],
        ),
        (
            {"command": "a", "healthCheck": {"type": "command"}},
            [("spec.healthCheck.command", "is required with type")],
        ),
        (
            {"command": "a", "healthCheck": {"path": "health"}},
            [("spec.healthCheck.path", "must start with '/', not 'health'")],
        ),
        (
            {"command": "a", "healthCheck": {"timeoutSeconds": 0}},
            [("spec.healthCheck.timeoutSeconds", "must be greater than 0")],
        ),
        ({"command": "a", "env": {"A": {"b": 1}}}, [("spec.env.A", "must be a string, number or boolean")]),
        ({"command": "a", "port": True}, [("spec.port", "must be a whole number, not True")]),
        ({"command": "a", "Port": 80}, [("spec.Port", "is not a known key; did you mean 'port'?")]),
    ],
)
def test_check_spec__local_service_rules(spec: dict[str, Any], expected: list[tuple[str, str]]) -> None:
    found = check_spec(local_specs.SERVICE_SCHEMA, spec, "spec")

    assert [
        (issue.path, issue.message[: len(text)]) for issue, (_, text) in zip(found, expected, strict=True)
    ] == expected


def test_check_spec__addon_external_url_excludes_managed_settings() -> None:
    spec = {"type": "postgresql", "externalUrl": "postgresql://a:b@h:5432/d", "port": 6000, "database": "x"}

    found = check_spec(local_specs.ADDON_SCHEMA, spec, "spec")

    assert [issue.path for issue in found] == ["spec.database", "spec.port"]
    assert all("cannot be set together with externalUrl" in issue.message for issue in found)


def test_check_spec__addon_port_range() -> None:
    def port_issues(port: Any) -> list[str]:
        found = check_spec(local_specs.ADDON_SCHEMA, {"type": "postgresql", "port": port}, "spec")
        return [issue.message for issue in found]

    assert port_issues(5433) == []
    assert port_issues(1023) == ["must be between 1024 and 65535, not 1023"]
    assert port_issues(65536) == ["must be between 1024 and 65535, not 65536"]
    assert port_issues("5433") == ["must be a whole number, not '5433'"]


# -- deploy-time parsers and declared schemas agree -----------------------------------------------


def test_local_parsers__refuse_what_the_schema_refuses_listing_every_problem() -> None:
    resource = Resource(id="api", kind="service", driver="local", spec={"runComand": "x", "port": "8080"})

    with pytest.raises(SpecError) as caught:
        ServiceSpec.parse(resource)

    text = str(caught.value)
    assert "spec.runComand is not a known key; did you mean 'runCommand'?" in text
    assert "spec.port must be a whole number" in text
    assert caught.value.retryable is False


# A loopback port nothing listens on: a driver that got as far as asking the engine would be refused
# there, and call that retryable.
NO_ENGINE = "http://127.0.0.1:9"
INVALID_DOCKER_SPECS: dict[str, tuple[Operation, dict[str, Any], list[str]]] = {
    "service": (
        Operation.DEPLOY_IMAGE,
        {"port": "eighty", "healthCheck": {"type": "http", "timeoutSecond": 5}},
        ["spec.port must be a whole number", "spec.healthCheck.timeoutSecond is not a known key"],
    ),
    "job": (Operation.RUN_JOB, {"comand": ["true"]}, ["spec.comand is not a known key"]),
    "build_service": (
        Operation.START_BUILD,
        {"dockerfile": 3},
        ["spec.repository is required", "spec.dockerfile must be a string"],
    ),
}


@pytest.mark.parametrize("kind", sorted(INVALID_DOCKER_SPECS))
async def test_docker_driver__refuses_an_invalid_stored_spec_at_once_listing_every_problem(
    kind: str, tmp_path: Path
) -> None:
    operation, spec, problems = INVALID_DOCKER_SPECS[kind]
    resource = Resource(id="api", kind=kind, driver="docker", spec=spec)
    request = DriverRequest(
        operation,
        resource,
        {"deployment": {"external": {"imagePath": "busybox:1"}}},
        "key-1",
        artifact=Artifact(kind="image", image="busybox:1"),
        project_id="shop",
    )
    driver = DockerDriver(tmp_path, NO_ENGINE)
    try:
        with pytest.raises(SpecError) as caught:
            await driver.perform(request)
    finally:
        await driver.stop()

    assert caught.value.retryable is False
    assert str(caught.value).startswith(f"{spec_check.KIND_WORDS[kind]} 'api' (docker driver): ")
    for problem in problems:
        assert problem in str(caught.value)


FULL_LOCAL_SPECS: dict[str, tuple[Any, dict[str, Any]]] = {
    "service": (
        ServiceSpec,
        {
            "runCommand": "serve",
            "env": {"A": 1},
            "port": 8080,
            "healthCheck": {
                "type": "http",
                "path": "/h",
                "command": "true",
                "timeoutSeconds": 5,
                "intervalSeconds": 1,
            },
            "stopTimeoutSeconds": 3,
        },
    ),
    "job": (JobSpec, {"command": ["migrate"], "env": {"A": "b"}}),
    "build_service": (
        BuildServiceSpec,
        {
            "repository": ".",
            "buildCommand": "make",
            "branch": "main",
            "env": {},
            "artifactPath": "dist",
            "timeoutSeconds": 9,
        },
    ),
    "addon": (
        PostgresAddonSpec,
        {"type": "postgresql", "version": "16", "database": "d", "user": "u", "port": 6543},
    ),
}


def test_local_schemas__declare_exactly_the_keys_the_parsers_read() -> None:
    assert set(FULL_LOCAL_SPECS) == set(local_specs.SCHEMAS)
    for kind, (parser, spec) in FULL_LOCAL_SPECS.items():
        schema = local_specs.SCHEMAS[kind]
        # Every declared key (but the spelling alternative) appears in the full spec, which both accept.
        assert set(schema.fields) - {"command" if kind == "service" else "", "externalUrl"} <= set(spec), kind
        assert check_spec(schema, spec, "spec") == []
        parser.parse(Resource(id="x", kind=kind, driver="local", spec=spec))


def test_postgres_addon_spec__port_is_parsed() -> None:
    spec = PostgresAddonSpec.parse(
        Resource(id="db", kind="addon", driver="local", spec={"type": "postgresql", "port": 6543})
    )

    assert spec.port == 6543


def _keys_read(module: Path) -> set[str]:
    """String keys a module reads out of a spec: ``spec.get("k")``, ``spec["k"]``, ``raw.get("k")``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
        target: ast.expr | None = None
        key: ast.expr | None = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            target, key = node.func.value, node.args[0] if node.args else None
        elif isinstance(node, ast.Subscript):
            target, key = node.value, node.slice
        if target is None or not isinstance(key, ast.Constant) or not isinstance(key.value, str):
            continue
        name = ast.unparse(target)
        if name.endswith("spec") or name in ("raw", "request.resource.spec"):
            found.add(key.value)
    return found


def _declared(schemas: dict[str, SpecSchema] | Any) -> set[str]:
    keys: set[str] = set()
    for schema in schemas.values():
        for key, declared in schema.fields.items():
            keys.add(key)
            keys.update(declared.fields)
    return keys


def test_docker_schemas__declare_every_key_the_driver_reads() -> None:
    modules = ("services.py", "jobs.py", "builds.py", "health.py")
    read = set().union(*(_keys_read(SOURCE / "docker" / module) for module in modules))

    assert {"port", "hostPort", "healthCheck", "repository", "dockerfile"} <= read  # the scan sees reads
    assert read - _declared(docker_specs.SCHEMAS) == set()


# -- printing -------------------------------------------------------------------------------------


def test_spec_json_schema__describes_keys_required_rules_and_ranges() -> None:
    printed = spec_json_schema(local_specs.SERVICE_SCHEMA)

    assert printed["additionalProperties"] is False
    assert set(printed["properties"]) == set(local_specs.SERVICE_SCHEMA.fields)
    port = printed["properties"]["port"]
    assert (port["type"], port["minimum"], port["maximum"]) == ("integer", 1, 65535)
    assert {"oneOf": [{"required": ["runCommand"]}, {"required": ["command"]}]} in printed["allOf"]
    assert "port (integer, 1..65535)" in describe_schema(local_specs.SERVICE_SCHEMA)


def test_configuration_docs__list_exactly_the_declared_keys_of_every_schema() -> None:
    docs = (SOURCE.parents[2] / "docs" / "configuration.md").read_text(encoding="utf-8")

    for kinds in spec_schemas().values():
        for schema in kinds.values():
            heading = f"### `{schema.name}`"
            assert heading in docs, heading
            section = docs.split(heading, 1)[1].split("\n#", 1)[0]
            keys = re.findall(r"^\| `(\w+)` \|", section, flags=re.MULTILINE)
            assert keys == list(schema.fields), schema.name
