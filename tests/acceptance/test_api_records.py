"""Projects and the records of what runs made (builds, deploys, job runs) over HTTP, against a real
``releaseflow serve`` on SQLite and PostgreSQL whose local driver builds a git repository, deploys the
build as a service and runs a job from it: the project whole, the records with every filter, their
logs as plain text, and the refusals (unknown ids, wrong types, another project)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from tests.acceptance.api_support import Api
from tests.acceptance.config import PROJECT
from tests.acceptance.support import wait_until
from tests.acceptance.test_api_own import refused
from tests.integration.local_project import AppRepository, build_main

RECORDS = f"/api/projects/{PROJECT}/records"
# A service without a port: healthy while its process runs.
WEB = "python3 -c \"import time; print('web started', flush=True); time.sleep(600)\""

TOOLS_FLOW: dict[str, Any] = {
    "apiVersion": "v1.2",
    "spec": {
        "kind": "Workflow",
        "spec": {
            "type": "sequential",
            "steps": [
                build_main(),
                {
                    "kind": "Release",
                    "ref": "deploy",
                    "spec": {
                        "type": "build",
                        "origin": {"id": "builder", "branch": "main", "build": "${refs.build.id}"},
                        "target": {"id": "web", "type": "service"},
                    },
                    "condition": "running",
                    "timeoutDuration": 60,
                },
                {
                    "kind": "JobRun",
                    "ref": "migrate",
                    "spec": {
                        "jobId": "migrate",
                        "deployment": {
                            "internal": {"id": "builder", "branch": "main", "buildId": "${refs.build.id}"}
                        },
                    },
                    "condition": "success",
                },
            ],
        },
    },
}


def tools_configuration(source: Path) -> dict[str, Any]:
    """Project acme gains a build service, a service, a job and a pipeline ``tools`` using them."""
    return {
        "projects": [
            {
                "id": PROJECT,
                "resources": {
                    "buildServices": [
                        {
                            "id": "builder",
                            "spec": {"repository": str(source), "buildCommand": "echo compiled"},
                        }
                    ],
                    "services": [
                        {"id": "api", "spec": {"runCommand": "sleep infinity"}},
                        {"id": "web", "spec": {"runCommand": WEB}},
                    ],
                    "jobs": [{"id": "migrate", "spec": {"command": "echo migrated version $(cat VERSION)"}}],
                },
                "pipelines": [
                    {
                        "id": "tools",
                        "stages": [
                            {
                                "name": "Development",
                                "resources": ["web", "migrate"],
                                "releaseFlow": TOOLS_FLOW,
                            }
                        ],
                    }
                ],
            }
        ]
    }


@pytest.fixture
def released(api: Api) -> str:
    """The id of a finished run of tools/Development that built, deployed and ran the job."""
    source = api.releaseflow.cwd / "app"
    AppRepository(source).commit("1")
    applied = api.call(
        "POST", f"/api/projects/{PROJECT}/configuration/apply", "admin", json=tools_configuration(source)
    )
    assert applied.status_code == 200, applied.text
    flow = f"/v1/projects/{PROJECT}/pipelines/tools/release-flows/development"
    started = api.call("POST", f"{flow}/runs", "deployer", json={"name": "tools"})
    assert started.status_code == 200, started.text
    run_id: str = started.json()["data"]["id"]
    run = wait_until(
        lambda: (found := api.call("GET", f"{flow}/runs/{run_id}").json()["data"])["concluded"] and found,
        timeout=60,
        what="the tools run to end",
    )
    assert run["status"] == "success", run
    return run_id


def test_projects__the_token_s_projects_and_one_whole(api: Api, released: str) -> None:
    assert [item["id"] for item in api.call("GET", "/api/projects", "viewer").json()["data"]["projects"]] == [
        PROJECT
    ]
    everything = api.call("GET", "/api/projects", "root").json()["data"]["projects"]
    assert [item["id"] for item in everything] == [PROJECT] and everything[0]["createdAt"].endswith("Z")

    project = api.call("GET", f"/api/projects/{PROJECT}", "viewer").json()["data"]
    resources = {item["id"]: item for item in project["resources"]}
    assert set(resources) == {"api", "builder", "web", "migrate"}
    web = resources["web"]
    assert (web["kind"], web["driver"], web["pipeline"], web["stage"]) == (
        "service",
        "local",
        "tools",
        "Development",
    )
    assert web["status"] == "success" and web["latest"]["kind"] == "deploy"
    assert web["running"]["runId"] == released and web["running"]["artifact"]["buildId"]
    assert resources["builder"]["latest"]["kind"] == "build" and resources["builder"]["stage"] is None
    assert resources["migrate"]["latest"]["kind"] == "job-run" and resources["migrate"]["running"] is None
    # Never acted on: no status, nothing running, but its stage is known.
    assert (resources["api"]["status"], resources["api"]["running"], resources["api"]["stage"]) == (
        "none",
        None,
        "Development",
    )
    pipelines = {item["id"]: item for item in project["pipelines"]}
    assert set(pipelines) == {"main", "relay", "tools"}
    assert pipelines["tools"]["stages"] == [
        {"name": "Development", "hasReleaseFlow": True, "resources": ["migrate", "web"]}
    ]
    assert pipelines["main"]["stages"][0]["resources"] == ["api"]

    # /docs shows what the new routes answer, field by field.
    schema = api.call("GET", "/openapi.json", None).json()
    shown = schema["components"]["schemas"]
    assert {"id", "kind", "status", "resource", "platformId", "runId"} <= set(
        shown["RecordShape"]["properties"]
    )
    assert {"status", "running", "latest", "stage"} <= set(shown["ResourceShape"]["properties"])
    log = schema["paths"]["/api/projects/{projectId}/records/{recordId}/log"]["get"]["responses"]["200"]
    assert "text/plain" in log["content"]

    refused(api.call("GET", "/api/projects/nowhere", "root"), 404, "no project 'nowhere'")
    refused(api.call("GET", "/api/projects/nowhere", "viewer"), 403, "is for project 'acme'")


def test_records__listed_filtered_read_and_logged(api: Api, released: str) -> None:
    everything = api.call("GET", RECORDS, "viewer").json()
    records = everything["data"]["records"]
    assert [record["kind"] for record in records] == ["job-run", "deploy", "build"]  # newest first
    assert everything["pagination"] == {"hasNextPage": False, "count": 3}
    assert {record["runId"] for record in records} == {released}
    job, deploy, build = records
    assert (build["resource"], build["node"]["ref"]) == ({"id": "builder", "kind": "build_service"}, "build")
    assert deploy["resource"] == {"id": "web", "kind": "service"} and deploy["status"] == "success"
    assert job["platformId"] and job["data"]["exitCode"] == 0 and job["endedAt"].endswith("Z")

    def ids(**params: Any) -> list[str]:
        answer = api.call("GET", RECORDS, "viewer", params=params)
        assert answer.status_code == 200, answer.text
        return [record["id"] for record in answer.json()["data"]["records"]]

    assert ids(kind="build") == [build["id"]]
    assert ids(kind=["build", "JOB-RUN"]) == [job["id"], build["id"]]
    assert ids(resource="web") == [deploy["id"]]
    assert ids(platformId=build["platformId"]) == [build["id"]]
    assert ids(platformId=job["platformId"], kind="job-run") == [job["id"]]
    assert ids(platformId="bld-nothing") == [] and ids(platformId=build["platformId"], kind="deploy") == []
    assert ids(run=released[:8]) == [job["id"], deploy["id"], build["id"]]
    assert ids(run=api.run_id) == []  # main's run sends messages only
    assert ids(pipeline="tools", stage="DEVELOPMENT") == ids(pipeline="tools") == ids()[:3]
    assert ids(pipeline="main") == [] and ids(resource="api") == []
    first = api.call("GET", RECORDS, "viewer", params={"per_page": 2}).json()
    assert first["pagination"]["hasNextPage"] and len(first["data"]["records"]) == 2
    rest = api.call("GET", RECORDS, "viewer", params={"per_page": 2, "cursor": first["pagination"]["cursor"]})
    assert [record["id"] for record in rest.json()["data"]["records"]] == [build["id"]]

    one = api.call("GET", f"{RECORDS}/{build['id']}", "viewer").json()["data"]
    assert one == build

    def log(record: dict[str, Any], **params: Any) -> str:
        answer = api.call("GET", f"{RECORDS}/{record['id']}/log", "viewer", params=params)
        assert answer.status_code == 200, answer.text
        assert answer.headers["content-type"].startswith("text/plain")
        return answer.text

    assert "compiled" in log(build)
    assert "migrated version 1" in log(job)
    assert "web started" in log(deploy)  # a deploy's log is its service's output
    assert log(job, lines=1).count("\n") == 1


def test_records__log_lines_are_numbered_from_the_start_and_read_past_a_position(
    api: Api, released: str
) -> None:
    build = api.call("GET", RECORDS, "viewer", params={"kind": "build"}).json()["data"]["records"][0]
    path = f"{RECORDS}/{build['id']}/log/lines"

    def read(**params: Any) -> dict[str, Any]:
        answer = api.call("GET", path, "viewer", params=params)
        assert answer.status_code == 200, answer.text
        found: dict[str, Any] = answer.json()["data"]
        return found

    whole = read(after=0)
    total = whole["total"]
    plain = api.call("GET", f"{RECORDS}/{build['id']}/log", "viewer", params={"lines": 10_000}).text
    assert [line["text"] for line in whole["lines"]] == plain.splitlines() and "compiled" in plain
    assert [line["number"] for line in whole["lines"]] == list(range(1, total + 1)) and total >= 2
    assert whole["first"] == 1
    # Without after: the tail.
    assert read(limit=1) == {"lines": whole["lines"][-1:], "first": total, "total": total}
    assert read(after=1, limit=1) == {"lines": whole["lines"][1:2], "first": 2, "total": total}
    for beyond in (total, total + 1, 2**63 - 1):  # none yet: "first" says which comes next
        assert read(after=beyond) == {"lines": [], "first": beyond + 1, "total": total}
    refused(api.call("GET", path, "viewer", params={"after": -1}), 400, "after")
    refused(api.call("GET", path, "viewer", params={"limit": 0}), 400, "limit")
    refused(api.call("GET", path, "viewer", params={"limit": 10_001}), 400, "limit")
    schema = api.call("GET", "/openapi.json", None).json()
    assert "LogLinesShape" in schema["components"]["schemas"]


def test_records__refusals_say_what_is_wrong(api: Api, released: str) -> None:
    build = api.call("GET", RECORDS, "viewer", params={"kind": "build"}).json()["data"]["records"][0]
    refused(
        api.call("GET", RECORDS, "viewer", params={"kind": "bakery"}),
        400,
        "kind 'bakery' is not a record kind",
    )
    refused(
        api.call("GET", RECORDS, "viewer", params={"stage": "development"}), 400, "a stage needs its pipeline"
    )
    refused(api.call("GET", RECORDS, "viewer", params={"pipeline": "nope"}), 404, "no pipeline 'nope'")
    refused(
        api.call("GET", RECORDS, "viewer", params={"pipeline": "tools", "stage": "qa"}), 404, "no stage 'qa'"
    )
    refused(api.call("GET", RECORDS, "viewer", params={"resource": "ghost"}), 404, "no resource 'ghost'")
    refused(api.call("GET", RECORDS, "viewer", params={"run": "ffffffff"}), 404, "ffffffff")
    refused(api.call("GET", RECORDS, "viewer", params={"per_page": "many"}), 400, "per_page")
    refused(
        api.call("GET", RECORDS, "viewer", params={"cursor": "garbage"}), 400, "not a cursor this server gave"
    )
    refused(
        api.call("GET", f"{RECORDS}/no-such-record", "viewer"), 404, "no build, job run, deploy or backup"
    )
    refused(api.call("GET", f"{RECORDS}/{build['id']}/log", "viewer", params={"lines": 0}), 400, "lines")
    refused(api.call("GET", f"{RECORDS}/{build['id']}/log", "viewer", params={"lines": "x"}), 400, "lines")
    # A record of another project is not found there, exactly as an unknown one (nothing leaks).
    elsewhere = f"/api/projects/elsewhere/records/{build['id']}"
    refused(
        api.call("GET", elsewhere, "root"), 404, f"no build, job run, deploy or backup record '{build['id']}'"
    )
    refused(api.call("GET", elsewhere + "/log", "root"), 404, "in project 'elsewhere'")
    refused(api.call("GET", "/api/projects/elsewhere/records", "root"), 404, "no project 'elsewhere'")
    refused(api.call("GET", elsewhere, "viewer"), 403, "is for project 'acme'")
