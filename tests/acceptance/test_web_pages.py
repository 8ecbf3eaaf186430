"""The web interface's history, settings, what's-where, approvals and resume pages in a real browser
(chromium, headless) against a real ``releaseflow serve`` with the local driver, and the role and CSRF
checks of their actions over plain HTTP.

The stage's flow builds, waits at an Approval node ("gate"), then deploys the build: a person rejects
the gate from the browser (the run fails), resumes the run from the browser (the build is kept), and
another person approves the resumed run's gate from the browser — its starter may not."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import Page
from tests.acceptance import web_forms
from tests.acceptance.browser import chromium, screenshot, sign_in
from tests.acceptance.support import Releaseflow, free_port, started_run_id
from tests.acceptance.test_cli_rollback import write_project
from tests.acceptance.web_forms import session_csrf
from tests.integration.local_project import AppRepository, answer

pytestmark = pytest.mark.slow

STAGE = "/web/p/shop/main/Development"
GATE = {"kind": "Approval", "ref": "gate", "spec": {"amount": 1}}
# A git trigger of a repository elsewhere: shown on the settings page, never fired here (no push comes).
TRIGGER = {
    "ref": "git",
    "vcsService": "github",
    "repoUrl": "https://github.com/acme/web",
    "branchRestrictions": ["main"],
}


def write_gated_project(releaseflow: Releaseflow, repository: Path, port: int) -> Path:
    """The project of test_cli_rollback, its flow with the gate between the build and the release, and
    a git trigger."""
    path = write_project(releaseflow.cwd, repository, port)
    config = yaml.safe_load(path.read_text())
    flow = config["projects"][0]["pipelines"][0]["stages"][0]["releaseFlow"]
    flow["spec"]["spec"]["steps"].insert(1, GATE)
    flow["triggers"] = [TRIGGER]
    path.write_text(yaml.safe_dump(config))
    return path


def installed(releaseflow: Releaseflow) -> tuple[int, dict[str, str]]:
    """A served installation with the gated project, a commit to build, and tokens by name (alice
    and bob deploy, val views; admin is the first start's admin token)."""
    repository = AppRepository(releaseflow.cwd / "app")
    port = free_port()
    releaseflow.cli("db", "migrate", check=True)
    releaseflow.cli("apply", "-f", str(write_gated_project(releaseflow, repository.path, port)), check=True)
    releaseflow.serve()
    repository.commit("v1")
    roles = {"alice": "deployer", "bob": "deployer", "val": "viewer"}
    tokens = {
        name: releaseflow.cli(
            "token", "create", "--name", name, "--project", "shop", "--role", role, check=True
        )
        .stdout.strip()
        .splitlines()[-1]
        for name, role in roles.items()
    }
    assert releaseflow.admin_token
    return port, {**tokens, "admin": releaseflow.admin_token}


def start_gated_run(releaseflow: Releaseflow, name: str) -> str:
    started = releaseflow.cli("run", "main", "Development", "--name", name, check=True)
    run_id = started_run_id(started.stdout)
    releaseflow.wait_for_node(run_id, "gate", "waiting", timeout=60)
    return run_id


def switch_user(page: Page, releaseflow: Releaseflow, token: str) -> None:
    page.goto(f"{releaseflow.url}/web/")
    page.click("header form[action$='/signout'] button")
    sign_in(page, releaseflow.url, token)


def test_web_pages__reject_resume_approve_logs_whats_where_versions_and_settings(
    releaseflow: Releaseflow,
) -> None:
    port, tokens = installed(releaseflow)
    first = start_gated_run(releaseflow, "release v1")
    web = f"{releaseflow.url}/web"
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(page, releaseflow.url, tokens["alice"])

        # Approvals: the gate waits for alice (the CLI's user started the run); she rejects it.
        page.click("header a:has-text('Approvals')")
        page.wait_for_selector("h1:has-text('Approvals waiting for alice')")
        card = page.locator("section.approval", has_text="release v1")
        assert "gate" in card.inner_text() and "0 of 1" in card.inner_text()
        screenshot(page, "approvals")
        card.locator("input[name=comment]").fill("not on a Friday")
        card.locator("button:has-text('Reject')").click()
        page.wait_for_selector("#no-approvals")
        failed = releaseflow.wait_for_run(first, ("failed",), timeout=30)
        assert "not on a Friday" in str(failed)

        # Resume from the browser: the dialog says the build is kept and the gate and release run again.
        page.goto(f"{web}/runs/{first}")
        page.click("a:has-text('Resume from the failed node')")
        assert page.locator("#resume-kept").inner_text().count("✓") == 1
        assert "build" in page.locator("#resume-kept").inner_text()
        assert [line.strip("↻ ") for line in page.locator("#resume-rerun li").all_inner_texts()] == [
            "gate",
            "web",
        ]
        screenshot(page, "resume-dialog")
        page.fill("#resume-name", "resumed in the browser")
        page.click("#resume-dialog button[type=submit]")
        page.wait_for_selector("h1:has-text('resumed in the browser')")
        resumed = page.url.rsplit("/", 1)[-1]
        assert resumed != first
        page.wait_for_selector("button[data-node=gate] .status-waiting", timeout=30_000)
        # The root workflow is labelled as written (a Workflow), not by its path.
        assert page.locator(".workflow .node-name").first.inner_text() == "Workflow"
        page.click("button[data-node=gate]")
        page.wait_for_selector("#node-detail a:has-text('Decide on the approvals page')")
        # Alice started the resumed run: its gate is not hers to decide.
        page.goto(f"{web}/approvals")
        assert page.locator("#no-approvals").is_visible()

        # Bob approves it from the browser; the run deploys v1.
        switch_user(page, releaseflow, tokens["bob"])
        page.goto(f"{web}/approvals")
        card = page.locator("section.approval", has_text="resumed in the browser")
        card.locator("input[name=comment]").fill("looks good")
        card.locator("button:has-text('Approve')").click()
        page.wait_for_selector("#no-approvals")
        detail = releaseflow.wait_for_run(resumed, ("success",), timeout=60)
        assert detail["status"] == "success" and answer(port) == "v1"

        # Node detail: the build's log (kept from the failed run) and the service's log.
        page.goto(f"{web}/runs/{resumed}")
        page.click("button[data-node=build]")
        page.wait_for_selector("#node-log-holder h3:has-text('releaseflow logs build')")
        page.click("button[data-node=web]")
        page.wait_for_selector("#node-log-holder h3:has-text('releaseflow logs service web')")
        page.wait_for_selector("#node-log")
        screenshot(page, "node-logs")

        # What's where: the state side by side, the timeline and the figures with their chart.
        page.goto(f"{web}/p/shop/main")
        page.click('a:has-text("What\'s where")')
        page.wait_for_selector("#side-by-side")
        assert "web" in page.locator("#side-by-side").inner_text()
        assert "resumed in the browser" in page.locator("table.timeline").inner_text()
        chart = page.locator("svg#figures-chart")
        # SVG's own title and description: what a screen reader says, the figures in words.
        title, description = (chart.locator(tag).first.text_content() or "" for tag in ("title", "desc"))
        assert "Releases per stage" in title
        assert "Development: deployed 1, failed 1, rolled back 0" in description
        assert re.search(r"\b1\b", page.locator("#figures tbody tr").first.inner_text())
        screenshot(page, "whats-where")

        # Settings as a deployer: no webhook URL, no options form; the pin is theirs to set.
        page.goto(f"{web}/p/shop/main")
        page.locator("a:has-text('Settings')").first.click()
        page.wait_for_selector("h1:has-text('Settings of Development')")
        trigger = page.locator("#triggers tbody tr").inner_text()
        assert "git" in trigger and "https://github.com/acme/web" in trigger and "main" in trigger
        assert page.locator("#webhook-url").count() == 0 and page.locator("#options-form").count() == 0
        page.fill("#pin-reason", "holding for the demo")
        page.click("#pin-form button")
        page.wait_for_selector("#pin:has-text('pinned by token:bob')")

        # Settings as an admin: make and rotate the webhook URL, pause the flow (a new version).
        switch_user(page, releaseflow, tokens["admin"])
        page.goto(f"{web}/p/shop/main/Development/settings")
        page.click("#rotate-webhook")
        first_url = page.locator("#webhook-url").inner_text()
        assert "/hooks/" in first_url or "webhook" in first_url, first_url
        page.click("#rotate-webhook")
        assert page.locator("#webhook-url").inner_text() not in ("", first_url)
        # The old URL is refused; the new one is heard, and the log says why it started nothing.
        assert httpx.post(first_url, timeout=10).status_code == 404
        assert httpx.post(page.locator("#webhook-url").inner_text(), timeout=10).status_code < 300
        page.reload()
        logged = page.locator("#trigger-log").inner_text()
        assert "skipped" in logged and "pinned by token:bob" in logged, logged
        page.check("#pause")
        page.select_option("#concurrency", "queue")
        page.click("#options-form button")
        page.wait_for_selector("#paused:has-text('paused')")
        assert page.locator("#policy").inner_text() == "queue"
        screenshot(page, "settings")

        # Version history: the pause is version 2; its diff marks the added lines with +.
        page.click("nav.tabs a:has-text('Version history')")
        page.wait_for_selector("#versions")
        assert page.locator("#versions tbody tr").count() == 2
        added = page.locator("pre.diff .diff-added").all_inner_texts()
        assert any(line.startswith("+") and '"paused": true' in line for line in added), added
        screenshot(page, "versions")
        page.click("a:has-text('Restore v1')")
        page.wait_for_selector("h1:has-text('Restore version 1')")
        assert any(
            '"paused": true' in line for line in page.locator("pre.diff .diff-removed").all_inner_texts()
        )
        screenshot(page, "version-restore")
        page.click("#restore-version button[type=submit]")
        page.wait_for_selector("#versions")
        assert page.locator("#versions tbody tr").count() == 3
        assert "restored version 1" in page.locator("#versions tbody tr").first.inner_text()
        browser.close()
    listed = releaseflow.cli("flow", "main", "Development", "--versions", check=True).stdout
    assert re.search(r"\* v3 .*admin: restored version 1", listed), listed


def test_web_pages__viewers_see_no_actions_and_every_new_action_checks_role_and_csrf(
    releaseflow: Releaseflow,
) -> None:
    _, tokens = installed(releaseflow)
    run_id = start_gated_run(releaseflow, "release v1")

    @contextmanager
    def client(name: str) -> Iterator[tuple[httpx.Client, str]]:
        with httpx.Client(base_url=f"{releaseflow.url}/web", timeout=10) as signed:
            assert web_forms.sign_in(signed, {"token": tokens[name]}).status_code == 303
            yield signed, session_csrf(signed.get("/approvals").text)

    def refused(answer: httpx.Response, status: int, says: str) -> None:
        assert answer.status_code == status and says in answer.text, (answer.status_code, answer.text)

    posts: list[tuple[str, dict[str, Any]]] = [
        (f"/runs/{run_id}/approvals/approve/gate", {"comment": "forged"}),
        (f"/runs/{run_id}/approvals/reject/gate", {"comment": "forged"}),
        (f"/runs/{run_id}/resume", {}),
        (f"/runs/{run_id}/restore-backup", {"addon": "db", "backup": "b1", "confirm": "yes"}),
        ("/p/shop/main/Development/settings/pin", {"reason": "forged"}),
        ("/p/shop/main/Development/settings/unpin", {}),
    ]
    admin_posts: list[tuple[str, dict[str, Any]]] = [
        ("/p/shop/main/Development/versions/1/restore", {}),
        ("/p/shop/main/Development/settings/webhook", {}),
        ("/p/shop/main/Development/settings/options", {"concurrencyPolicy": "queue", "paused": "yes"}),
    ]
    with client("val") as (viewer, csrf):
        pages = [
            "/approvals",
            f"/runs/{run_id}",
            "/p/shop/main",
            "/p/shop/main/state",
            "/p/shop/main/Development/versions",
            "/p/shop/main/Development/settings",
        ]
        for path in pages:
            shown = viewer.get(path)
            assert shown.status_code == 200, (path, shown.text)
            # The only form a viewer gets is signing out (and the diff's version pickers, a GET).
            actions = re.findall(r'<form method="post" action="([^"]+)"', shown.text)
            assert actions == ["/web/signout"], (path, actions)
            assert "Approve</button>" not in shown.text and "Restore v1" not in shown.text
        assert "gate" in viewer.get("/approvals").text  # listed, not decidable
        for path, data in posts + admin_posts:
            refused(viewer.post(path, data={**data, "csrf": csrf}), 403, "this needs the")
        assert viewer.get(f"/runs/{run_id}/resume").status_code == 403
    with client("alice") as (deployer, csrf):
        for path, data in admin_posts:
            refused(deployer.post(path, data={**data, "csrf": csrf}), 403, "needs the admin role")
        settings = deployer.get("/p/shop/main/Development/settings").text
        assert "webhook-url" not in settings and "admins see and rotate it" in settings
        assert "trigger-log" not in settings
        assert deployer.get("/p/shop/main/Development/versions/1/restore").status_code == 403
        # A forged form without the session's CSRF token is refused before anything happens.
        for path, data in posts:
            refused(deployer.post(path, data=data), 403, "CSRF")
        # A restore needs its confirmation; an unknown backup is named.
        restore = {"addon": "db", "backup": "b1", "csrf": csrf}
        refused(deployer.post(f"/runs/{run_id}/restore-backup", data=restore), 422, "tick the box")
        refused(
            deployer.post(f"/runs/{run_id}/restore-backup", data={**restore, "confirm": "yes"}), 404, "b1"
        )
        refused(deployer.get("/p/shop/main/Development/versions?before=x"), 422, "not a version number")
    assert releaseflow.run_detail(run_id)["status"] == "running"


def test_web_pages__the_rollback_dialog_restores_a_backup_after_a_confirmation(
    releaseflow: Releaseflow,
) -> None:
    repository = AppRepository(releaseflow.cwd / "app")
    port = free_port()
    path = write_project(releaseflow.cwd, repository.path, port)
    config = yaml.safe_load(path.read_text())
    project = config["projects"][0]
    project["resources"]["addons"] = [{"id": "db", "spec": {"type": "postgresql"}}]
    stage = project["pipelines"][0]["stages"][0]
    stage["resources"].append("db")
    backup = {"kind": "AddonBackup", "ref": "backup", "spec": {"addonId": "db"}, "condition": "success"}
    stage["releaseFlow"]["spec"]["spec"]["steps"].insert(0, backup)
    path.write_text(yaml.safe_dump(config))
    releaseflow.cli("db", "migrate", check=True)
    releaseflow.cli("apply", "-f", str(path), check=True)
    releaseflow.serve()
    repository.commit("v1")
    started = releaseflow.cli(
        "run", "main", "Development", "--name", "with a backup", "--follow", timeout=180
    )
    assert started.returncode == 0, started.stdout + started.stderr
    run_id = started_run_id(started.stdout)
    assert releaseflow.admin_token
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(page, releaseflow.url, releaseflow.admin_token)
        page.goto(f"{releaseflow.url}/web/runs/{run_id}/rollback")
        offer = page.locator("#backups li").first
        assert "db: backup" in offer.inner_text()
        screenshot(page, "rollback-backups")
        # Without the confirmation the browser does not send the form (the server refuses it too).
        offer.locator("button:has-text('Restore this backup')").click()
        assert "/rollback" in page.url
        offer.locator("input[name=confirm]").check()
        offer.locator("button:has-text('Restore this backup')").click()
        page.wait_for_selector("h1:not(:has-text('Roll'))")
        restore = page.url.rsplit("/", 1)[-1]
        assert restore != run_id
        detail = releaseflow.wait_for_run(restore, ("success", "failed"), timeout=120)
        assert detail["status"] == "success", detail
        assert "Restore backup" in detail["description"]
        browser.close()
