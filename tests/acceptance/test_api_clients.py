"""Northflank's official clients against a real ``releaseflow serve``: the Python SDK (PyPI
``northflank``) on SQLite and PostgreSQL, the CLI (npm ``@northflank/cli``) after
``northflank login --host``, and the JS client (npm ``@northflank/js-client``). Every endpoint of
reference section 6, the team-scoped twins, and the clients' fetch-all helpers over several pages."""

from __future__ import annotations

import json
from pathlib import Path

from northflank import ApiClient
from tests.acceptance.api_support import Api, served_api
from tests.acceptance.config import PROJECT
from tests.acceptance.northflank_cli import NorthflankCli, run_js_client
from tests.acceptance.support import Releaseflow, wait_until

WHERE = {"project_id": PROJECT, "pipeline_id": "main"}


def test_python_sdk__every_endpoint(api: Api) -> None:
    client = ApiClient(api_token=api.tokens["admin"], base_url=api.url)
    deployer = ApiClient(api_token=api.tokens["deployer"], base_url=api.url)

    pipelines = client.list.pipelines(project_id=PROJECT)
    pipeline = client.get.pipeline(**WHERE)
    flow = client.get.release_flow(**WHERE, stage="development")
    updated = client.update.release_flow(**WHERE, stage="DEVELOPMENT", data=dict(flow.data))
    started = [
        deployer.run.release_flow(
            **WHERE, stage="development", data={"name": f"sdk-{n}", "arguments": {"who": "sdk"}}
        )
        for n in range(3)
    ]
    every = client.list.release_flow_runs.all(**WHERE, stage="development", per_page=2)
    first_page = client.list.release_flow_runs(**WHERE, stage="development", per_page=2)
    run_id = started[0].data["id"]
    detail = client.get.release_flow_run(**WHERE, stage="development", run_id=run_id, team_id="team1")
    gated = deployer.run.release_flow(**WHERE, stage="production", data={})
    aborted = deployer.abort.release_flow_run(**WHERE, stage="production", run_id=gated.data["id"])
    successes = client.list.release_flow_runs(**WHERE, stage="development", status="success", concluded=True)

    assert [item["id"] for item in pipelines.data["pipelines"]] == ["main", "relay"]
    assert {stage["name"] for stage in pipeline.data["stages"]} == {"Development", "Staging", "Production"}
    assert {"id": "api", "type": "service", "stage": "Development"} in pipeline.data["nfObjects"]
    assert flow.data["apiVersion"] == "v1.2" and flow.data["stage"] == "Development"
    assert updated.data["version"] == flow.data["version"] + 1
    assert len(every.data["runs"]) == 4  # the first run and three more, over two pages
    assert first_page.pagination is not None and first_page.pagination.has_next_page
    assert detail.data["id"] == run_id and detail.data["name"] == "sdk-0"
    assert detail.data["spec"]["kind"] == "Workflow"
    assert aborted.data["status"] in ("aborting", "aborted")
    wait_until(
        lambda: (
            client.get.release_flow_run(**WHERE, stage="production", run_id=gated.data["id"]).data["status"]
            == "aborted"
        ),
        what="the production run to be aborted",
    )
    ended = wait_until(
        lambda: (
            (answer := client.get.release_flow_run(**WHERE, stage="development", run_id=run_id)).data[
                "concluded"
            ]
            and answer
        ),
        what="the SDK's run to end",
    )
    hello = ended.data["spec"]["spec"]["steps"][0]
    assert hello["response"]["status"] == "success"
    assert isinstance(hello["response"]["startTime"], int) and hello["response"]["data"]["statusCode"] == 200
    assert ended.data["refs"]["hello"]["statusCode"] == 200
    assert all(item["status"] == "success" for item in successes.data["runs"])


def test_python_sdk__errors_arrive_in_its_error_type(api: Api) -> None:
    client = ApiClient(api_token=api.tokens["viewer"], base_url=api.url, throw_on_http_error=False)

    missing = client.get.release_flow_run(**WHERE, stage="development", run_id="no-such-run")
    forbidden = client.run.release_flow(**WHERE, stage="development", data={})

    assert (
        missing.status == 404
        and missing.error is not None
        and "no run 'no-such-run'" in missing.error.message
    )
    assert forbidden.status == 403 and forbidden.error is not None and "deployer" in forbidden.error.message


def test_northflank_cli__every_endpoint_after_login_with_host(
    releaseflow: Releaseflow, tmp_path: Path
) -> None:
    api = served_api(releaseflow)
    cli = NorthflankCli(tmp_path)
    where = ["--projectId", PROJECT, "--pipelineId", "main"]
    development = [*where, "--stage", "development"]

    login = cli.run("login", "--host", api.url, "-t", api.tokens["admin"], "-n", "releaseflow")
    pipelines = cli.json("list", "pipelines", "--projectId", PROJECT)
    pipeline = cli.json("get", "pipeline", *where)
    flow = cli.json("get", "release-flow", *development)
    updated = cli.json("update", "release-flow", *development, "-i", json.dumps(flow))
    started = [
        cli.json("run", "release-flow", *development, "-i", json.dumps({"name": f"cli-{n}"}))
        for n in range(3)
    ]
    every = cli.json("list", "release-flow-runs", *development, "--per_page", "2", "--loadAll")
    detail = cli.json("get", "release-flow-run", *development, "--runId", started[0]["id"])
    gated = cli.json("run", "release-flow", *where, "--stage", "production", "-i", "{}")
    aborted = cli.json("abort", "release-flow-run", *where, "--stage", "production", "--runId", gated["id"])

    assert login.returncode == 0 and "logged in" in login.stdout, login.stdout + login.stderr
    assert [item["id"] for item in pipelines["pipelines"]] == ["main", "relay"]
    assert pipeline["name"] == "main"
    assert updated["version"] == flow["version"] + 1
    assert len(every["runs"]) == 4
    assert detail["name"] == "cli-0" and detail["spec"]["kind"] == "Workflow"
    assert aborted["status"] in ("aborting", "aborted")


def test_js_client__every_endpoint(releaseflow: Releaseflow) -> None:
    api = served_api(releaseflow)

    answered = run_js_client(api.url, api.tokens, PROJECT)

    failed = {call: answer["error"] for call, answer in answered.items() if isinstance(answer, dict)}
    assert {call: error for call, error in failed.items() if error} == {
        "missing": {
            "status": 404,
            "message": "no run 'no-such-run' in stage Development of pipeline 'acme/main'",
        },
        "forbidden": {
            "status": 403,
            "message": "token 'viewer for acme' is a viewer; this needs the deployer role or more",
        },
    }
    assert [item["id"] for item in answered["pipelines"]["data"]["pipelines"]] == ["main", "relay"]
    assert {stage["name"] for stage in answered["pipeline"]["data"]["stages"]} == {
        "Development",
        "Staging",
        "Production",
    }
    assert answered["updated"]["data"]["version"] == answered["flow"]["data"]["version"] + 1
    assert [run["data"]["name"] for run in answered["started"]] == ["js-1", "js-2", "js-3"]
    assert all(run["error"] is None for run in answered["started"])
    assert (
        answered["firstPage"]["pagination"]["hasNextPage"] and len(answered["firstPage"]["data"]["runs"]) == 2
    )
    assert len(answered["every"]["data"]["runs"]) == 4  # the first run and three more, over two pages
    assert answered["run"]["data"]["name"] == "js-1" and answered["run"]["data"]["spec"]["kind"] == "Workflow"
    assert answered["aborted"]["data"]["status"] in ("aborting", "aborted")
