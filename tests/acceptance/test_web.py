"""The web interface in a real browser (chromium, headless) against a real ``releaseflow serve`` with
the local driver: sign in with a token, start a run from the dialog with an override and watch its
nodes turn to success live, read a node's response, rename the run, roll back from a run and hear the
stage's service answer with that run's version again."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from tests.acceptance import web_forms
from tests.acceptance.browser import chromium, screenshot, sign_in
from tests.acceptance.support import Releaseflow, find_node, free_port, started_run_id, wait_until
from tests.acceptance.test_cli_rollback import write_project
from tests.integration.local_project import AppRepository, answer

pytestmark = pytest.mark.slow

# Builds take a second and a half, so that the browser sees the run's nodes pending and running before
# they succeed (every build of a new commit runs this; a commit built before is reused at once).
BUILD_COMMAND = "sleep 1.5"
# Records every status the "web" node showed in this document, from its first paint on.
WATCH_STATUSES = """
window.__statuses = [];
const seen = () => {
  const badge = document.querySelector("button[data-node=web] .status");
  const text = badge && badge.textContent.trim();
  if (text && window.__statuses[window.__statuses.length - 1] !== text) window.__statuses.push(text);
};
document.addEventListener("DOMContentLoaded", () => {
  seen();
  new MutationObserver(seen).observe(document.body, {subtree: true, childList: true});
});
"""


def release(releaseflow: Releaseflow, name: str) -> str:
    started = releaseflow.cli("run", "main", "Development", "--name", name, "--follow", timeout=120)
    assert started.returncode == 0, started.stdout + started.stderr
    return started_run_id(started.stdout)


def test_web__sign_in_run_with_override_live_node_rename_and_rollback(releaseflow: Releaseflow) -> None:
    repository = AppRepository(releaseflow.cwd / "app")
    port = free_port()
    releaseflow.cli("db", "migrate", check=True)
    releaseflow.cli(
        "apply", "-f", str(write_project(releaseflow.cwd, repository.path, port, BUILD_COMMAND)), check=True
    )
    releaseflow.serve()
    repository.commit("v1")
    first = release(releaseflow, "release v1")
    v1_build = find_node(releaseflow.run_detail(first)["spec"], "build")
    assert v1_build is not None
    repository.commit("v2")
    second = release(releaseflow, "release v2")
    assert answer(port) == "v2"
    repository.commit("v3")  # the dialog's run builds it (slowly), and deploys v1's build instead
    assert releaseflow.admin_token
    web = f"{releaseflow.url}/web"

    # Signed out, a page leads to the sign-in form; a bad token is refused there.
    refused = httpx.get(f"{web}/p/shop/main", timeout=5)
    assert refused.status_code == 303 and refused.headers["location"].startswith("/web/signin")

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.add_init_script(WATCH_STATUSES)
        page.goto(f"{releaseflow.url}/")
        page.fill("#token", "not-a-token")
        page.click("form:has(#token) button[type=submit]")
        assert page.locator("[role=alert]").is_visible()
        sign_in(page, releaseflow.url, releaseflow.admin_token)

        page.click("a:has-text('main')")
        page.wait_for_selector("h2:has-text('Development')")
        assert page.locator(".run-link").inner_text().strip().endswith("release v2")
        screenshot(page, "pipeline-overview")
        page.set_viewport_size({"width": 390, "height": 844})  # a phone
        screenshot(page, "pipeline-overview-phone")
        page.set_viewport_size({"width": 1280, "height": 900})

        # The run dialog: a name and an override that deploys v1's build instead of the new one.
        page.click("a:has-text('Run')")
        page.fill("#run-name", "from the browser")
        page.click("summary:has-text('Override')")
        page.fill(
            "#release-web",
            json.dumps({"type": "build", "origin": {"id": "builder", "build": v1_artifact(v1_build)}}),
        )
        page.click("button:has-text('Preview the plan')")
        page.wait_for_selector("#plan-preview h2:has-text('Plan')")
        assert v1_artifact(v1_build) in page.locator("#plan-preview").inner_text()
        page.click("button:has-text('Start run')")
        page.wait_for_selector("h1:has-text('from the browser')")
        run_url = page.url
        page.wait_for_selector(
            "button[data-node=build] :is(.status-running, .status-waiting)", timeout=30_000
        )
        screenshot(page, "live-run")
        # Live: the nodes reach success without a reload (the page's own document stays the same).
        page.evaluate("window.__notReloaded = true")
        page.wait_for_selector("button[data-node=web] .status-success", timeout=60_000)
        assert page.evaluate("window.__notReloaded") is True
        assert page.url == run_url
        screenshot(page, "run-succeeded")
        statuses = page.evaluate("window.__statuses")
        assert statuses[0].endswith("pending") and statuses[-1].endswith("success"), statuses
        assert answer(port) == "v1"

        page.click("button[data-node=web]")
        page.wait_for_selector("#node-response")
        response = page.locator("#node-response").inner_text()
        assert "buildId" in response
        page.context.grant_permissions(["clipboard-read", "clipboard-write"])
        page.click("button[data-copy=node-response]")
        page.wait_for_selector("button[data-copy=node-response]:has-text('Copied')")
        assert page.evaluate("navigator.clipboard.readText()") == response
        screenshot(page, "node-detail")

        page.click("summary:has-text('Rename')")
        page.fill("#rename-name", "renamed in the browser")
        page.fill("#rename-description", "it said hello")
        page.click("form[action$='/rename'] button")
        page.wait_for_selector("h1:has-text('renamed in the browser')")
        assert page.locator("#run-description").inner_text() == "it said hello"

        # Roll back to the v2 release: the dialog says what changes, then the service answers v2.
        page.goto(f"{web}/runs/{second}/rollback")
        dialog = page.locator("#rollback-dialog")
        assert "web" in dialog.inner_text() and "not undone" in dialog.inner_text()
        screenshot(page, "rollback-dialog")
        page.click("#rollback-dialog button[type=submit]")
        page.wait_for_selector("#run-live .run-status .status-success", timeout=60_000)
        wait_until(lambda: answer(port) == "v2" or None, what="the service to answer v2 again")
        screenshot(page, "rolled-back")
        page.goto(f"{web}/runs/{second}/rollbacks")
        assert page.locator("li a").count() == 1

        # The stage's runs: all four, newest first; filtered to rollbacks, the one.
        page.goto(f"{web}/p/shop/main/Development/runs")
        names = page.locator("table.runs tbody tr td:nth-child(2)").all_inner_texts()
        assert names[1:] == ["renamed in the browser", "release v2", "release v1"], names
        page.select_option("#filter-kind", "rollback")
        page.click("form.filters button")
        page.wait_for_url("**kind=rollback**")
        assert page.locator("table.runs tbody tr").count() == 1
        screenshot(page, "runs-list")
        browser.close()


def v1_artifact(node: dict[str, object]) -> str:
    data = node.get("data")
    assert isinstance(data, dict), node
    return str(data["id"])


def test_web__every_action_checks_the_role_and_the_csrf_token(releaseflow: Releaseflow) -> None:
    repository = AppRepository(releaseflow.cwd / "app")
    port = free_port()
    releaseflow.cli("db", "migrate", check=True)
    releaseflow.cli("apply", "-f", str(write_project(releaseflow.cwd, repository.path, port)), check=True)
    releaseflow.serve()
    repository.commit("v1")
    run_id = release(releaseflow, "release v1")
    secrets = {
        role: releaseflow.cli("token", "create", "--project", "shop", "--role", role, check=True)
        .stdout.strip()
        .splitlines()[-1]
        for role in ("viewer", "deployer")
    }
    web = f"{releaseflow.url}/web"

    @contextmanager
    def client(role: str) -> Iterator[httpx.Client]:
        with httpx.Client(base_url=web, timeout=10) as signed:
            answer = web_forms.sign_in(signed, {"token": secrets[role], "next": "/web/"})
            assert answer.status_code == 303, answer.text
            cookie = answer.headers["set-cookie"].lower()
            assert "httponly" in cookie and "samesite=strict" in cookie
            yield signed

    with client("viewer") as viewer:
        assert viewer.get(f"/runs/{run_id}").status_code == 200
        # The ended run's stream: from the start, its last state once, then the stream ends; from
        # its last event on, 204 (the browser stops reconnecting).
        streamed = viewer.get(f"/runs/{run_id}/live", headers={"Last-Event-ID": "0"})
        assert streamed.status_code == 200
        assert streamed.text.count("event: run\n") == 1 and "status-success" in streamed.text
        last = [line for line in streamed.text.splitlines() if line.startswith("id: ")][-1][4:]
        assert viewer.get(f"/runs/{run_id}/live", headers={"Last-Event-ID": last}).status_code == 204
        assert viewer.get("/p/shop/main/Development/start").status_code == 403
        csrf = web_forms.session_csrf(viewer.get(f"/runs/{run_id}").text)
        refused = viewer.post(f"/runs/{run_id}/rename", data={"csrf": csrf, "name": "nope"})
        assert refused.status_code == 403 and "deployer" in refused.text
    with client("deployer") as deployer:
        missing = deployer.post(f"/runs/{run_id}/rename", data={"name": "no token"})
        assert missing.status_code == 403 and "CSRF" in missing.text
        csrf = web_forms.session_csrf(deployer.get(f"/runs/{run_id}").text)
        renamed = deployer.post(f"/runs/{run_id}/rename", data={"csrf": csrf, "name": "renamed"})
        assert renamed.status_code == 303
    assert releaseflow.run_detail(run_id)["name"] == "renamed"
