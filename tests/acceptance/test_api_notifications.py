"""Notification subscriptions and their delivery log over HTTP, against a real ``releaseflow serve``
on SQLite and PostgreSQL and a real receiver on loopback: added, listed and removed per project or
pipeline by admins, read by viewers, the signing secret never answered back, and the refusals."""

from __future__ import annotations

from typing import Any

from tests.acceptance.api_support import Api
from tests.acceptance.config import PROJECT
from tests.acceptance.support import wait_until
from tests.acceptance.test_api_own import refused
from tests.integration.http_receiver import Receiver

NOTIFICATIONS = f"/api/projects/{PROJECT}/notifications"
SUBSCRIPTIONS = f"{NOTIFICATIONS}/subscriptions"
SECRET = "api-notifications-secret"


def subscribe(api: Api, **body: Any) -> dict[str, Any]:
    answer = api.call("POST", SUBSCRIPTIONS, "admin", json={"secret": SECRET, **body})
    assert answer.status_code == 200, answer.text
    assert SECRET not in answer.text
    made: dict[str, Any] = answer.json()["data"]
    return made


def test_subscriptions__added_listed_delivered_and_removed(api: Api) -> None:
    receiver = Receiver(secret=SECRET)
    try:
        piped = subscribe(api, url=receiver.url, pipeline="main", events=["started", "succeeded"])
        everywhere = subscribe(api, url="https://hooks.slack.example/services/T0/B0/xyz", kind="slack")
        assert piped["pipeline"] == "main" and piped["events"] == ["started", "succeeded"]
        assert piped["url"] == receiver.url and piped["source"] == "manual" and "secret" not in piped
        assert everywhere["kind"] == "slack" and "status" not in everywhere["events"]

        as_viewer = api.call("GET", SUBSCRIPTIONS, "viewer")
        listed = {item["id"]: item for item in as_viewer.json()["data"]["subscriptions"]}
        assert set(listed) == {piped["id"], everywhere["id"]} and SECRET not in as_viewer.text
        # A Slack webhook's URL is a credential: readers below admin see its origin only.
        assert listed[everywhere["id"]]["url"] == "https://hooks.slack.example/…"
        as_admin = api.call("GET", SUBSCRIPTIONS, "admin").json()["data"]["subscriptions"]
        assert {item["url"] for item in as_admin} == {receiver.url, everywhere["url"]}
        main_only = api.call("GET", SUBSCRIPTIONS, "viewer", params={"pipeline": "main"}).json()["data"]
        assert [item["id"] for item in main_only["subscriptions"]] == [piped["id"]]

        flow = f"/v1/projects/{PROJECT}/pipelines/main/release-flows/development"
        run_id = api.call("POST", f"{flow}/runs", "deployer", json={"name": "told"}).json()["data"]["id"]
        receiver.wait_for(2)
        assert all(delivery.signed for delivery in receiver.deliveries)

        def delivered(**params: Any) -> list[dict[str, Any]] | None:
            answer = api.call("GET", f"{NOTIFICATIONS}/deliveries", "viewer", params=params)
            assert answer.status_code == 200, answer.text
            found: list[dict[str, Any]] = answer.json()["data"]["deliveries"]
            ours = [item for item in found if item["subscriptionId"] == piped["id"]]
            return found if len(ours) == 2 and all(item["state"] == "delivered" for item in ours) else None

        log = wait_until(lambda: delivered(subscription=piped["id"]), what="both deliveries in the log")
        assert {item["event"] for item in log} == {"started", "succeeded"}
        assert {item["runId"] for item in log} == {run_id}
        first = log[0]["attempts"][0]
        assert (first["attempt"], first["statusCode"], first["error"]) == (1, 200, None)
        assert delivered(limit=50) is not None  # the project's whole log holds them too

        removed = api.call("DELETE", f"{SUBSCRIPTIONS}/{piped['id']}", "admin")
        assert removed.status_code == 200 and removed.json()["data"]["id"] == piped["id"]
        left = api.call("GET", SUBSCRIPTIONS, "viewer").json()["data"]["subscriptions"]
        assert [item["id"] for item in left] == [everywhere["id"]]
        # A removed subscription's log stays readable by its id.
        assert delivered(subscription=piped["id"]) is not None
        refused(api.call("DELETE", f"{SUBSCRIPTIONS}/{piped['id']}", "admin"), 404, piped["id"])
    finally:
        receiver.close()


def test_subscriptions__refusals_say_what_is_wrong(api: Api) -> None:
    good = {"url": "http://127.0.0.1:9/hook", "secret": SECRET}
    refused(api.call("POST", SUBSCRIPTIONS, "admin", json={**good, "secret": "short"}), 400, "secret")
    refused(api.call("POST", SUBSCRIPTIONS, "admin", json={"url": good["url"]}), 400, "secret")
    refused(api.call("POST", SUBSCRIPTIONS, "admin", json={**good, "events": ["bogus"]}), 400, "bogus")
    refused(api.call("POST", SUBSCRIPTIONS, "admin", json={**good, "events": "started"}), 400, "events")
    refused(api.call("POST", SUBSCRIPTIONS, "admin", json={**good, "url": "ftp://x/y"}), 400, "url")
    refused(api.call("POST", SUBSCRIPTIONS, "admin", json={**good, "kind": "pigeon"}), 400, "kind")
    refused(
        api.call("POST", SUBSCRIPTIONS, "admin", json={**good, "pipeline": "nope"}), 400, "no pipeline 'nope'"
    )
    refused(api.call("POST", SUBSCRIPTIONS, "admin", json={**good, "colour": "red"}), 400, "colour")
    refused(api.call("GET", SUBSCRIPTIONS, "viewer", params={"pipeline": "nope"}), 404, "no pipeline 'nope'")
    refused(api.call("DELETE", f"{SUBSCRIPTIONS}/sub-nothing", "admin"), 404, "no notification subscription")
    unknown = api.call("GET", f"{NOTIFICATIONS}/deliveries", "viewer", params={"subscription": "sub-nothing"})
    refused(unknown, 404, "no notification subscription 'sub-nothing' in project 'acme'")
    refused(api.call("GET", f"{NOTIFICATIONS}/deliveries", "viewer", params={"limit": 0}), 400, "limit")

    # A subscription of one project is not found from another (nothing leaks).
    made = subscribe(api, url=good["url"])
    other = api.releaseflow.cwd / "other.yaml"
    other.write_text("projects:\n  - id: other\n", encoding="utf-8")
    api.releaseflow.cli("apply", "-f", str(other), check=True)
    elsewhere = "/api/projects/other/notifications"
    missing = f"no notification subscription '{made['id']}' in project 'other'"
    refused(api.call("DELETE", f"{elsewhere}/subscriptions/{made['id']}", "root"), 404, missing)
    refused(
        api.call("GET", f"{elsewhere}/deliveries", "root", params={"subscription": made["id"]}), 404, missing
    )
    assert api.call("GET", f"{elsewhere}/subscriptions", "root").json()["data"]["subscriptions"] == []
    refused(api.call("GET", "/api/projects/nowhere/notifications/subscriptions", "root"), 404, "no project")
    refused(api.call("POST", SUBSCRIPTIONS, "deployer", json=good), 403, "needs the admin role")
