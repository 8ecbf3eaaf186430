"""releaseflow's own routes (``/api``) against a real ``releaseflow serve`` on SQLite and PostgreSQL:
each area's happy path and a refusal in the error envelope, and the event stream of a run (its
transitions in order while it runs, and a resumption with ``Last-Event-ID``)."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx
import yaml
from tests.acceptance.api_support import Api
from tests.acceptance.config import PROJECT
from tests.acceptance.support import wait_until

from releaseflow.domain.secret_values import MASK

STAGE = f"/api/projects/{PROJECT}/pipelines/main/stages"
RUNS = f"/api/projects/{PROJECT}/runs"


def refused(answer: httpx.Response, status: int, words: str) -> None:
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"]["message"], answer.text


def test_runs__list_get_rename_and_refusals(api: Api) -> None:
    listed = api.call("GET", f"{STAGE}/development/runs", "viewer", params={"status": "success"})
    assert [run["id"] for run in listed.json()["data"]["runs"]] == [api.run_id]
    assert (
        api.call("GET", f"{STAGE}/development/runs", "viewer", params={"status": "failed"}).json()["data"][
            "runs"
        ]
        == []
    )
    run = api.call("GET", f"{RUNS}/{api.run_id}", "viewer").json()["data"]
    assert run["status"] == "success" and run["arguments"] == {"who": "api"} and run["events"]

    renamed = api.call("PATCH", f"{RUNS}/{api.run_id}", "deployer", json={"name": "renamed"})
    assert renamed.status_code == 200 and renamed.json()["data"]["name"] == "renamed"

    refused(api.call("GET", f"{STAGE}/development/runs", "viewer", params={"status": "great"}), 400, "great")
    refused(api.call("GET", f"{RUNS}/nothing-like-it", "viewer"), 404, "no run 'nothing-like-it'")
    refused(api.call("PATCH", f"{RUNS}/{api.run_id}", "deployer", json={}), 400, "say what to change")
    refused(api.call("PATCH", f"{RUNS}/{api.run_id}", "deployer", json={"nom": "x"}), 400, "nom")
    other_project = api.call("GET", f"/api/projects/elsewhere/runs/{api.run_id}", "root")
    refused(other_project, 404, "in project 'elsewhere'")
    refused(api.call("POST", f"{RUNS}/{api.run_id}/resume", "deployer"), 409, "")
    refused(api.call("POST", f"{RUNS}/{api.run_id}/approvals/gate/maybe", "deployer"), 400, "decision")
    refused(api.call("POST", f"{RUNS}/{api.run_id}/approvals/gate/reject", "deployer"), 404, "gate")


def test_state_history_pins_and_versions(api: Api) -> None:
    dev = f"{STAGE}/development"
    assert api.call("GET", f"{dev}/state", "viewer").status_code == 200
    assert api.call("GET", f"/api/projects/{PROJECT}/pipelines/main/state", "viewer").status_code == 200
    assert api.call("GET", f"{dev}/timeline", "viewer").status_code == 200
    side = api.call("GET", f"/api/projects/{PROJECT}/pipelines/main/side-by-side", "viewer").json()["data"]
    assert [stage.lower() for stage in side["stages"]] == ["development", "staging", "production"]
    refused(api.call("GET", f"/api/projects/{PROJECT}/pipelines/nope/side-by-side", "viewer"), 404, "nope")
    listed = api.call("GET", f"/api/projects/{PROJECT}/pipelines", "viewer").json()["data"]["pipelines"]
    assert [item["id"] for item in listed] == ["main", "relay"]
    main = api.call("GET", f"/api/projects/{PROJECT}/pipelines/main", "viewer").json()["data"]
    first = main["stages"][0]
    assert first["resources"] == [{"id": "api", "kind": "service"}] and first["run"]["id"] == api.run_id
    refused(api.call("GET", f"/api/projects/{PROJECT}/pipelines/nope", "viewer"), 404, "nope")
    figures = api.call("GET", f"{dev}/metrics", "viewer").json()["data"]
    assert figures, figures
    diff = api.call("GET", f"{RUNS}/{api.run_id}/diff/{api.run_id}", "viewer")
    assert diff.status_code == 200, diff.text
    plan = api.call("GET", f"{RUNS}/{api.run_id}/plan", "viewer")
    assert plan.status_code == 200, plan.text

    assert api.call("GET", f"{dev}/pin", "viewer").json()["data"]["pin"] is None
    pinned = api.call("PUT", f"{dev}/pin", "deployer", json={"reason": "freeze"}).json()["data"]["pin"]
    assert pinned["reason"] == "freeze" and pinned["by"].startswith("token:")
    assert api.call("GET", f"{dev}/pin", "viewer").json()["data"]["pin"]["reason"] == "freeze"
    assert api.call("DELETE", f"{dev}/pin", "deployer").json()["data"]["cleared"]["reason"] == "freeze"
    refused(api.call("PUT", f"{dev}/pin", "deployer", json={"reason": ""}), 400, "reason")

    versions = api.call("GET", f"{dev}/versions", "viewer").json()["data"]["versions"]
    assert versions[-1]["current"] and versions[-1]["version"] >= 1
    one = api.call("GET", f"{dev}/versions/{versions[-1]['version']}", "viewer").json()["data"]
    assert one["document"]["spec"]
    refused(api.call("GET", f"{dev}/versions/999", "viewer"), 404, "no version 999")
    latest = versions[-1]["version"]
    restored = api.call("POST", f"{dev}/versions/{latest}/restore", "admin").json()["data"]
    assert restored["version"] == latest + 1 and restored["current"]
    assert restored["origin"].endswith(f"restored version {latest}")
    same = api.call("GET", f"{dev}/versions/{latest}/diff/{latest + 1}", "viewer").json()["data"]
    assert same["diff"] == [] and (same["from"], same["to"]) == (latest, latest + 1)
    refused(api.call("POST", f"{dev}/versions/0/restore", "admin"), 400, "greater than or equal to 1")
    refused(api.call("GET", f"{STAGE}/nowhere/versions", "viewer"), 404, "nowhere")


def test_rollback_restore_and_admin_routes(api: Api) -> None:
    # Development's flow deploys nothing (Message nodes): there is nothing to roll back to, said so.
    preview = api.call("GET", f"{RUNS}/{api.run_id}/rollback", "viewer")
    refused(preview, 409, "no release state was recorded")
    refused(api.call("POST", f"{RUNS}/{api.run_id}/rollback", "deployer", json={}), 409, "no release state")
    refused(
        api.call("POST", f"{RUNS}/{api.run_id}/rollback", "deployer", json={"restore": 1}), 400, "restore"
    )
    assert api.call("GET", f"{RUNS}/{api.run_id}/rollbacks", "viewer").json()["data"]["rollbacks"] == []

    restore = {"addon": "db", "backup": "b1"}
    refused(api.call("POST", f"{STAGE}/development/restore-backup", "deployer", json=restore), 400, "confirm")
    confirmed = api.call(
        "POST", f"{STAGE}/development/restore-backup", "deployer", json={**restore, "confirm": True}
    )
    refused(confirmed, 404, "no backup 'b1'")

    rotated = api.call("POST", f"{STAGE}/development/webhook/rotate", "admin").json()["data"]["url"]
    assert "/hooks/release-flows/" in rotated
    assert httpx.get(rotated, timeout=10).status_code < 400
    answered = api.call("GET", f"{STAGE}/development/trigger-log", "admin").json()["data"]
    log = answered["log"]
    assert log and log[0]["source"] == "webhook" and answered["webhookUrl"] == rotated

    tokens = f"/api/projects/{PROJECT}/tokens"
    made = api.call("POST", tokens, "admin", json={"name": "robot", "role": "viewer"}).json()["data"]
    assert made["secret"] and made["state"] == "active"
    as_robot = httpx.get(
        api.url + "/v1/login", headers={"Authorization": f"Bearer {made['secret']}"}, timeout=10
    )
    assert as_robot.status_code == 200
    listed = api.call("GET", tokens, "admin").json()["data"]["tokens"]
    assert "robot" in {item["name"] for item in listed} and all("secret" not in item for item in listed)
    assert api.call("DELETE", f"{tokens}/{made['id']}", "admin").json()["data"]["state"] == "revoked"
    refused(api.call("POST", tokens, "admin", json={"name": "x", "role": "owner"}), 400, "role")
    refused(api.call("DELETE", f"{tokens}/{made['id']}x", "admin"), 404, "no token")


def read_stream(answer: httpx.Response, on_event: Any = None) -> list[dict[str, Any]]:
    """The transitions of an event stream, checking that each ``id:`` line matches its data."""
    events: list[dict[str, Any]] = []
    current_id = None
    for line in answer.iter_lines():
        if line.startswith("id: "):
            current_id = int(line[4:])
        elif line.startswith("data: "):
            event = json.loads(line[6:])
            assert event["id"] == current_id
            events.append(event)
            if on_event is not None:
                on_event(event)
    return events


def test_event_stream__a_run_s_transitions_in_order_and_resumed(api: Api) -> None:
    flow = f"/v1/projects/{PROJECT}/pipelines/main/release-flows/production"
    started = api.call("POST", f"{flow}/runs", "deployer", json={"name": "streamed"})
    run_id = started.json()["data"]["id"]
    url = f"{api.url}{RUNS}/{run_id}/events"
    auth = {"Authorization": f"Bearer {api.tokens['viewer']}"}
    approved = []

    def approve_when_waiting(event: dict[str, Any]) -> None:
        if event["to"] == "waiting" and event["node"] and not approved:
            answer = api.call(
                "POST", f"{RUNS}/{run_id}/approvals/gate/approve", "admin", json={"comment": "ok"}
            )
            assert answer.status_code == 200, answer.text
            approved.append(event["id"])

    with httpx.stream("GET", url, headers=auth, params={"lifetime": "60"}, timeout=70) as answer:
        assert answer.headers["content-type"].startswith("text/event-stream")
        live = read_stream(answer, approve_when_waiting)

    assert approved, "the approval node never waited"
    ids = [event["id"] for event in live]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    run_statuses = [event["to"] for event in live if event["node"] is None]
    assert run_statuses[-1] == "success", live
    assert any(event["node"] for event in live)

    middle = ids[len(ids) // 2]
    with httpx.stream("GET", url, headers={**auth, "Last-Event-ID": str(middle)}, timeout=30) as answer:
        resumed = read_stream(answer)
    assert [event["id"] for event in resumed] == [i for i in ids if i > middle]

    stage = f"{api.url}{STAGE}/production/events"
    with httpx.stream("GET", stage, headers=auth, params={"lifetime": "1"}, timeout=30) as answer:
        everything = read_stream(answer)
    assert [event["id"] for event in everything] == ids
    bad = api.call("GET", f"{RUNS}/{run_id}/events", "viewer", headers={"Last-Event-ID": "yesterday"})
    refused(bad, 400, "Last-Event-ID 'yesterday'")


def test_secret_arguments__start_resume_and_plan_take_them_and_answer_them_masked(api: Api) -> None:
    started = api.call(
        "POST", f"{STAGE}/staging/runs", "deployer", json={"secretArguments": {"first": "first-hush"}}
    )
    assert started.status_code == 200, started.text
    failed = started.json()["data"]["id"]
    concluded = f"/v1/projects/{PROJECT}/pipelines/main/release-flows/staging/runs/{failed}"
    wait_until(lambda: api.call("GET", concluded).json()["data"]["concluded"], what="the run to fail")

    body = {"arguments": {"plain": "shown"}, "secretArguments": {"second": "second-hush"}}
    resumed = api.call("POST", f"{RUNS}/{failed}/resume", "deployer", json=body)
    planned = api.call("POST", f"{STAGE}/staging/plan", "viewer", json=body)
    assert (resumed.status_code, planned.status_code) == (200, 200), resumed.text + planned.text
    resumed_id = resumed.json()["data"]["id"]
    wait_until(lambda: api.call("GET", f"{RUNS}/{resumed_id}").json()["data"]["concluded"], what="its end")
    events = api.call("GET", f"{RUNS}/{resumed_id}/events", "viewer", params={"lifetime": 1})
    answers = [resumed, planned, api.call("GET", f"{RUNS}/{resumed_id}", "viewer"), events]
    for answer in answers:
        assert "first-hush" not in answer.text and "second-hush" not in answer.text, answer.text
    masked = {"first": MASK, "second": MASK, "plain": "shown"}
    assert api.call("GET", f"{RUNS}/{resumed_id}", "viewer").json()["data"]["arguments"] == masked
    assert planned.json()["data"]["arguments"] == {"second": MASK, "plain": "shown"}
    refused(api.call("POST", f"{STAGE}/staging/plan", "viewer", json={"secretArguments": "x"}), 400, "secret")


def test_docs__served_by_releaseflow_with_no_external_url(api: Api) -> None:
    page = httpx.get(api.url + "/docs", timeout=10)
    assert page.status_code == 200
    assert "http://" not in page.text and "https://" not in page.text, page.text
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert {"/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"} <= set(assets)
    for asset in assets:
        assert asset.startswith("/"), asset
        fetched = httpx.get(api.url + asset, timeout=10)
        assert fetched.status_code == 200 and fetched.content, asset
    licence = httpx.get(api.url + "/docs/assets/LICENSE", timeout=10)
    assert "Apache License" in licence.text
    assert httpx.get(api.url + "/docs/assets/swagger-editor.js", timeout=10).status_code == 404
    schema = httpx.get(api.url + "/openapi.json", timeout=10).json()
    own = {path: item for path, item in schema["paths"].items() if path.startswith("/api/")}
    assert own and all(operation.get("summary") for item in own.values() for operation in item.values())
    # The root leads to the web interface; the documentation stays at /docs.
    assert httpx.get(api.url + "/", follow_redirects=False, timeout=10).headers["location"] == "/web/"


def test_configuration__validated_and_applied_for_its_project_only(api: Api) -> None:
    config = yaml.safe_load((api.releaseflow.cwd / "releaseflow.yaml").read_text(encoding="utf-8"))
    where = f"/api/projects/{PROJECT}/configuration"
    valid = api.call("POST", f"{where}/validate", "admin", json=config).json()["data"]
    assert valid == {"valid": True, "projects": [PROJECT]}
    assert api.call("POST", f"{where}/apply", "admin", json=config).json()["data"]["changed"] is False

    services = config["projects"][0]["resources"]["services"]
    services.append({"id": "worker", "spec": {"runCommand": "sleep infinity"}})
    planned = api.call("POST", f"{where}/apply", "admin", json=config, params={"dryRun": "true"}).json()[
        "data"
    ]
    assert planned["changed"] and planned["dryRun"]
    assert [change["action"] for change in planned["changes"]] == ["create"], planned
    applied = api.call("POST", f"{where}/apply", "admin", json=config).json()["data"]
    assert applied["changes"] == planned["changes"]
    assert api.call("POST", f"{where}/apply", "admin", json=config).json()["data"]["changed"] is False

    refused(
        api.call("POST", f"/api/projects/{PROJECT}/configuration/validate", "admin", json={}), 400, "projects"
    )
    other = {"projects": [{**config["projects"][0], "id": "elsewhere"}]}
    refused(api.call("POST", f"{where}/apply", "admin", json=other), 403, "elsewhere")
    stage = config["projects"][0]["pipelines"][0]["stages"][0]
    stage.pop("releaseFlow")
    stage["releaseFlowFile"] = "flows/dev.yaml"
    refused(api.call("POST", f"{where}/validate", "admin", json=config), 400, "inline the flow")


def test_approval__the_token_that_started_a_run_cannot_approve_it(api: Api) -> None:
    flow = f"/v1/projects/{PROJECT}/pipelines/main/release-flows/production"
    started = api.call("POST", f"{flow}/runs", "deployer", json={"name": "self-approval"})
    run_id = started.json()["data"]["id"]
    gate = f"{RUNS}/{run_id}/approvals/gate/approve"

    def gate_waits() -> bool:
        steps = [api.call("GET", f"{RUNS}/{run_id}", "viewer").json()["data"]["spec"]]
        while steps:
            step = steps.pop()
            if step["ref"] == "gate":
                return bool(step["status"] == "waiting")
            steps.extend(step.get("steps", []))
        return False

    wait_until(gate_waits, timeout=30)
    refused(api.call("POST", gate, "deployer"), 400, "started this run")
    assert api.call("POST", gate, "admin").status_code == 200
