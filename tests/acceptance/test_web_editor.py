"""The release flow editor in a real browser (chromium, headless) against a real ``releaseflow serve``:
an admin edits a flow in the visual mode (the text follows each change), saves it and the API serves
the new version; an invalid template typed in the text shows its errors inline, with their paths, and
a save of it stores nothing; a viewer sees the flow read-only and cannot save."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import yaml
from playwright.sync_api import Page
from tests.acceptance import web_forms
from tests.acceptance.browser import chromium, screenshot, sign_in
from tests.acceptance.support import Releaseflow, free_port
from tests.acceptance.test_cli_rollback import write_project
from tests.acceptance.web_forms import session_csrf
from tests.integration.local_project import AppRepository

pytestmark = pytest.mark.slow

VERSIONS = "/api/projects/shop/pipelines/main/stages/Development/versions"
EDITOR = "/web/p/shop/main/Development/flow"


def served(releaseflow: Releaseflow) -> None:
    """A fresh server holding the project of the rollback tests (stage Development builds and deploys)
    and a stage Staging without a release flow."""
    repository = AppRepository(releaseflow.cwd / "app")
    path = write_project(releaseflow.cwd, repository.path, free_port())
    config = yaml.safe_load(path.read_text())
    config["projects"][0]["pipelines"][0]["stages"].append({"name": "Staging", "resources": []})
    path.write_text(yaml.safe_dump(config))
    releaseflow.cli("db", "migrate", check=True)
    releaseflow.cli("apply", "-f", str(path), check=True)
    releaseflow.serve()


def versions(releaseflow: Releaseflow) -> list[dict[str, Any]]:
    answer = httpx.get(f"{releaseflow.url}{VERSIONS}", headers=releaseflow.auth(), timeout=10)
    listed: list[dict[str, Any]] = answer.raise_for_status().json()["data"]["versions"]
    return listed


def text_document(page: Page) -> Any:
    return json.loads(page.input_value("#flow-text"))


@contextmanager
def editor(releaseflow: Releaseflow, token: str | None) -> Iterator[Page]:
    """A browser signed in with ``token`` on Development's editor, reached from the pipeline overview."""
    assert token
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in(page, releaseflow.url, token)
        page.goto(f"{releaseflow.url}/web/p/shop/main")
        page.click("a:has-text('Edit the release flow')")
        page.wait_for_selector("h1:has-text('Release flow of Development')")
        page.wait_for_selector("#visual-editor li.v-node[data-path=spec]")
        yield page


def add(page: Page, kind: str, workflow: str) -> None:
    page.select_option(f"select[data-kind-for='{workflow}']", kind)
    page.click(f"button[data-action=add][data-indexes='{workflow}']")


def test_web_editor__visual_edits_follow_the_text_and_save_a_new_version(releaseflow: Releaseflow) -> None:
    served(releaseflow)
    with editor(releaseflow, releaseflow.admin_token) as page:
        assert "Valid" in page.locator("#flow-issues").inner_text()
        assert [step["ref"] for step in text_document(page)["spec"]["spec"]["steps"]] == ["build", "web"]

        # A parallel workflow after "web", an approval added to the root and moved into it, a message
        # added into it; then the keyboard moves the workflow up, between "build" and "web".
        add(page, "Workflow", "[]")
        page.wait_for_selector("li.v-node[data-path='spec.spec.steps[2]']")
        page.select_option("select[data-action=type][data-indexes='[2]']", "parallel")
        add(page, "Approval", "[]")
        page.wait_for_selector("li.v-node[data-path='spec.spec.steps[3]']")
        page.select_option("select[data-action=move][data-indexes='[3]']", label="workflow-1")
        add(page, "Message", "[2]")
        page.wait_for_selector("li.v-node[data-path='spec.spec.steps[2].spec.steps[1]']")
        page.focus("li.v-node[data-path='spec.spec.steps[2]']")
        page.keyboard.press("Alt+ArrowUp")

        expected = {
            "kind": "Workflow",
            "ref": "workflow-1",
            "spec": {
                "type": "parallel",
                "steps": [
                    {"kind": "Approval", "spec": {"amount": 1}, "ref": "approval-1"},
                    {
                        "kind": "Message",
                        "spec": {
                            "kind": "RAW_WEBHOOK",
                            "spec": {"webhookUrl": "https://example.invalid/hook", "message": "released"},
                        },
                        "ref": "message-1",
                    },
                ],
            },
        }
        steps = text_document(page)["spec"]["spec"]["steps"]
        assert [step["ref"] for step in steps] == ["build", "workflow-1", "web"]
        assert steps[1] == expected
        # The server checked the last change and drew it: the workflow's steps as parallel lanes.
        page.wait_for_selector("#flow-drawing .steps.lanes > [data-node=message-1]")
        page.wait_for_selector("#flow-issues .valid")
        assert page.evaluate("document.activeElement.dataset.path") == "spec.spec.steps[1]"
        screenshot(page, "flow-editor-visual")

        # YAML and back: the same document in the other format.
        page.click("button.format[data-format=yaml]")
        page.wait_for_function("document.getElementById('flow-text').value.startsWith('apiVersion:')")
        assert "type: parallel" in page.input_value("#flow-text")
        page.set_viewport_size({"width": 390, "height": 844})  # a phone
        screenshot(page, "flow-editor-phone")
        page.set_viewport_size({"width": 1280, "height": 900})

        page.click("#flow-save")
        page.wait_for_selector("[role=status]:has-text('Saved as version 2')")
        assert page.locator("h1 .hint").inner_text() == "version 2"

    listed = versions(releaseflow)
    assert [(view["version"], view["current"]) for view in listed] == [(1, False), (2, True)]
    assert listed[1]["origin"].startswith("web, ")
    stored = httpx.get(f"{releaseflow.url}{VERSIONS}/2", headers=releaseflow.auth(), timeout=10)
    document = stored.raise_for_status().json()["data"]["document"]
    assert [step["ref"] for step in document["spec"]["spec"]["steps"]] == ["build", "workflow-1", "web"]
    assert document["spec"]["spec"]["steps"][1] == expected


def drag(page: Page, source: str, target: str, height_share: float, drop: bool = True) -> str | None:
    """Drags the grip of the node at path ``source`` with the mouse to ``height_share`` of the height of
    the head of the node at path ``target`` (0 its top, 1 its bottom); returns what the head shows
    there before the button is released (or, with ``drop`` false, while the drag is still held)."""
    page.hover(f"li.v-node[data-path='{source}'] > .v-head > .v-grip")
    page.mouse.down()
    head = f"li.v-node[data-path='{target}'] > .v-head"
    box = page.locator(head).bounding_box()
    assert box
    x, y = box["x"] + 60, box["y"] + box["height"] * height_share
    page.mouse.move(x, y, steps=8)
    # Driven by Playwright, the page's last dragover can lag the last move (seen here as the head
    # passed on the way): a second move at the same height lands it, then the target shows it.
    page.mouse.move(x + 1, y)
    shown = page.wait_for_selector(f"{head}[data-drop]").get_attribute("data-drop")
    if drop:
        page.mouse.up()
    return shown


def test_web_editor__nodes_dragged_into_a_workflow_and_before_a_node_are_saved(
    releaseflow: Releaseflow,
) -> None:
    served(releaseflow)
    with editor(releaseflow, releaseflow.admin_token) as page:
        add(page, "Workflow", "[]")
        page.wait_for_selector("li.v-node[data-path='spec.spec.steps[2]']")

        # "web" dropped on the middle of the new, empty workflow's head goes into it.
        shown = drag(page, "spec.spec.steps[1]", "spec.spec.steps[2]", 0.5)
        assert shown == "Drop: move web into workflow-1, at its end"
        steps = text_document(page)["spec"]["spec"]["steps"]
        assert [step["ref"] for step in steps] == ["build", "workflow-1"]
        assert [step["ref"] for step in steps[1]["spec"]["steps"]] == ["web"]
        assert page.evaluate("document.activeElement.dataset.path") == "spec.spec.steps[1].spec.steps[0]"

        # "build" dropped on the upper part of web's head goes before it, into the workflow.
        shown = drag(page, "spec.spec.steps[0]", "spec.spec.steps[1].spec.steps[0]", 0.1, drop=False)
        assert shown == "Drop: move build before web"
        assert page.locator(".v-head[data-drop-at=before]").count() == 1
        screenshot(page, "flow-editor-drag")
        page.mouse.up()
        page.wait_for_selector("li.v-node[data-path='spec.spec.steps[0].spec.steps[1]']")

        # A workflow cannot be dropped into its own nodes: the drop is refused, nothing changes.
        before = text_document(page)
        shown = drag(page, "spec.spec.steps[0]", "spec.spec.steps[0].spec.steps[1]", 0.5)
        assert shown == "✕ workflow-1 cannot be dropped on itself or into its own nodes"
        assert text_document(page) == before
        assert page.locator(".v-head[data-drop]").count() == 0

        workflow = {
            "kind": "Workflow",
            "ref": "workflow-1",
            "spec": {"type": "sequential", "steps": before["spec"]["spec"]["steps"][0]["spec"]["steps"]},
        }
        assert [step["ref"] for step in workflow["spec"]["steps"]] == ["build", "web"]
        assert before["spec"]["spec"]["steps"] == [workflow]
        page.wait_for_selector("#flow-issues .valid")
        page.click("#flow-save")
        page.wait_for_selector("[role=status]:has-text('Saved as version 2')")

    stored = httpx.get(f"{releaseflow.url}{VERSIONS}/2", headers=releaseflow.auth(), timeout=10)
    assert stored.raise_for_status().json()["data"]["document"]["spec"]["spec"]["steps"] == [workflow]


def test_web_editor__an_invalid_template_shows_its_errors_inline_and_is_not_saved(
    releaseflow: Releaseflow,
) -> None:
    served(releaseflow)
    with editor(releaseflow, releaseflow.admin_token) as page:
        document = text_document(page)
        document["spec"]["spec"]["steps"][1]["spec"]["target"]["id"] = "nowhere"
        document["spec"]["spec"]["type"] = "sideways"
        page.fill("#flow-text", json.dumps(document, indent=2))
        # A structural error first (the type); the stage's resources are checked once it parses.
        issue = page.wait_for_selector("#flow-issues .issue:has(code:text-is('spec.spec.type'))")
        assert "sequential, parallel" in issue.inner_text()
        document["spec"]["spec"]["type"] = "sequential"
        page.fill("#flow-text", json.dumps(document, indent=2))
        issue = page.wait_for_selector(
            "#flow-issues .issue:has(code:text-is('spec.spec.steps[1].spec.target.id'))"
        )
        assert "nowhere" in issue.inner_text()
        page.wait_for_selector("#flow-drawing [data-node=web] .status-failed:has-text('1 problem')")
        # The path shows its node in the visual mode; the line selects the value in the text.
        page.click("#flow-issues .issue-path")
        assert page.evaluate("document.activeElement.dataset.path") == "spec.spec.steps[1]"
        page.click("#flow-issues .issue-line")
        selected = "(t => t.value.slice(t.selectionStart, t.selectionEnd))(document.activeElement)"
        assert page.evaluate(selected).strip() == '"id": "nowhere",'
        screenshot(page, "flow-editor-invalid")

        # Broken syntax: the line of the problem, and the visual mode waits for a readable text.
        page.fill("#flow-text", '{\n  "spec": {\n}')
        page.wait_for_selector("#flow-issues .issue-message:has-text('line 3')")
        page.wait_for_selector("#visual-editor p.hint")

        # A save of an invalid template is refused with the errors on the page; nothing is stored.
        page.fill("#flow-text", json.dumps(document, indent=2))
        page.click("#flow-save")
        page.wait_for_selector("[role=alert]:has-text('Not saved')")
        assert "spec.spec.steps[1].spec.target.id" in page.locator("#flow-issues").inner_text()
        assert json.loads(page.input_value("#flow-text")) == document  # what was typed is kept
    assert [view["version"] for view in versions(releaseflow)] == [1]


def test_web_editor__a_viewer_sees_the_flow_read_only_and_cannot_save(releaseflow: Releaseflow) -> None:
    served(releaseflow)
    viewer = (
        releaseflow.cli("token", "create", "--project", "shop", "--role", "viewer", check=True)
        .stdout.strip()
        .splitlines()[-1]
    )
    with editor(releaseflow, viewer) as page:
        assert page.locator("#read-only").is_visible()
        assert page.locator("#flow-save").count() == 0
        assert page.locator("#flow-text").get_attribute("readonly") is not None
        assert page.locator("#visual-editor button[data-action]").count() == 0
        screenshot(page, "flow-editor-read-only")

    with httpx.Client(base_url=releaseflow.url, timeout=10) as client:
        assert web_forms.sign_in(client, {"token": viewer, "next": "/web/"}, web="/web").status_code == 303
        csrf = session_csrf(client.get(EDITOR).text)
        refused = client.post(EDITOR, data={"csrf": csrf, "text": "{}", "based_on": "1"})
        assert refused.status_code == 403 and "admin" in refused.text
    assert [view["version"] for view in versions(releaseflow)] == [1]


def test_web_editor__a_first_version_and_a_save_based_on_an_older_version(releaseflow: Releaseflow) -> None:
    served(releaseflow)
    assert releaseflow.admin_token
    first = httpx.get(f"{releaseflow.url}{VERSIONS}/1", headers=releaseflow.auth(), timeout=10)
    text = json.dumps(first.raise_for_status().json()["data"]["document"])
    staging = EDITOR.replace("Development", "Staging")
    with httpx.Client(base_url=releaseflow.url, timeout=10) as client:
        assert web_forms.sign_in(client, {"token": releaseflow.admin_token}, web="/web").status_code == 303
        assert "write one" in client.get("/web/p/shop/main").text
        # Staging has no release flow: the editor starts from an empty workflow, "version 0".
        opened = client.get(staging).text
        assert "no version yet" in opened and 'name="based_on" value="0"' in opened
        empty = {
            "apiVersion": "v1.2",
            "spec": {"kind": "Workflow", "spec": {"type": "parallel", "steps": []}},
        }
        created = client.post(
            staging, data={"csrf": session_csrf(opened), "text": json.dumps(empty), "based_on": "0"}
        )
        assert created.status_code == 303 and created.headers["location"].endswith("/Staging/flow?saved=1")

        form = {"csrf": session_csrf(client.get(EDITOR).text), "text": text, "based_on": "1"}
        assert client.post(EDITOR, data=form).status_code == 303
        # A second save from the same page (still at version 1) would undo the first one unseen.
        conflict = client.post(EDITOR, data=form)
        assert conflict.status_code == 409 and "at version 2 now, not at version 1" in conflict.text
    assert [view["version"] for view in versions(releaseflow)] == [1, 2]
    made = httpx.get(
        f"{releaseflow.url}{VERSIONS.replace('Development', 'Staging')}/1",
        headers=releaseflow.auth(),
        timeout=10,
    )
    assert made.raise_for_status().json()["data"]["document"] == empty
