"""``validate`` and ``apply`` refuse a file with a bad resource spec: exit non-zero, every problem listed
with its path, nothing changed."""

from __future__ import annotations

import json

from tests.acceptance.support import Releaseflow

GOOD = """
projects:
  - id: shop
    resources:
      services:
        - id: api
          spec: {runCommand: "python -m http.server", port: 8081}
"""
# The three mistakes the issue saw accepted, and a wrong type in a nested mapping.
BAD = """
projects:
  - id: shop
    resources:
      services:
        - id: api
          spec: {runComand: "python -m http.server", port: eighty-eighty-one}
        - id: web
          spec: {runCommand: serve, healthCheck: {type: http, timeoutSeconds: "30s"}}
      buildServices:
        - id: builder
          spec: {repository: ".", buildCommand: make, timeoutSeconds: "30s"}
"""
PATHS = (
    "projects[0].resources.services[0].spec.runComand: is not a known key; did you mean 'runCommand'?",
    "projects[0].resources.services[0].spec.port: must be a whole number",
    "projects[0].resources.services[1].spec.healthCheck.timeoutSeconds: must be a number",
    "projects[0].resources.services[1].spec.port: is required with healthCheck.type: http",
    "projects[0].resources.buildServices[0].spec.timeoutSeconds: must be a number",
)


def test_validate_and_apply__bad_spec_lists_every_path_and_changes_nothing(releaseflow: Releaseflow) -> None:
    good, bad = releaseflow.cwd / "good.yaml", releaseflow.cwd / "bad.yaml"
    good.write_text(GOOD, encoding="utf-8")
    bad.write_text(BAD, encoding="utf-8")
    releaseflow.cli("db", "migrate", check=True)
    releaseflow.cli("apply", "-f", str(good), check=True)

    validated = releaseflow.cli("validate", "-f", str(bad))
    applied = releaseflow.cli("apply", "-f", str(bad))
    after = releaseflow.cli("apply", "-f", str(good), "--dry-run", check=True)

    for result in (validated, applied):
        output = result.stdout + result.stderr
        assert result.returncode != 0, output
        assert all(path in output for path in PATHS), output
    assert after.stdout.startswith("nothing to change"), after.stdout


def test_schema__lists_and_prints_the_resource_spec_schemas(releaseflow: Releaseflow) -> None:
    listed = releaseflow.cli("schema", "--list", check=True)
    printed = json.loads(releaseflow.cli("schema", "--resource", "local/addon", check=True).stdout)
    unknown = releaseflow.cli("schema", "--resource", "local/cache")

    names = [line.split()[0] for line in listed.stdout.splitlines()]
    assert names == [
        "docker/build_service",
        "docker/job",
        "docker/service",
        "local/addon",
        "local/build_service",
        "local/job",
        "local/service",
    ]
    assert printed["properties"]["port"]["minimum"] == 1024 and printed["additionalProperties"] is False
    assert unknown.returncode != 0 and "no resource schema 'local/cache'" in unknown.stderr + unknown.stdout
