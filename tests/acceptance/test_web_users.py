"""User accounts in the web interface, in a real browser against a real ``releaseflow serve``: a
deployer signs in with name and password and starts a run; a viewer is offered no run button and a
forged request is refused; a wrong password and a disabled user are refused with a clear message;
signing out ends the session on the server."""

from __future__ import annotations

import httpx
import pytest
from tests.acceptance.browser import chromium, screenshot, sign_in_as_user
from tests.acceptance.support import Releaseflow, free_port
from tests.acceptance.test_cli_rollback import write_project
from tests.acceptance.web_forms import session_csrf, sign_in
from tests.integration.local_project import AppRepository

pytestmark = pytest.mark.slow

PASSWORD = "correct horse battery"


def test_web_users__deployer_runs_viewer_cannot_and_refusals_are_clear(releaseflow: Releaseflow) -> None:
    repository = AppRepository(releaseflow.cwd / "app")
    releaseflow.cli("db", "migrate", check=True)
    releaseflow.cli(
        "apply", "-f", str(write_project(releaseflow.cwd, repository.path, free_port())), check=True
    )
    for name, role in (("dana", "deployer"), ("vic", "viewer"), ("gone", "deployer")):
        releaseflow.cli(
            "user", "create", name, "--role", role, "--project", "shop", "--password-stdin",
            stdin=PASSWORD, check=True,
        )  # fmt: skip
    releaseflow.cli("user", "disable", "gone", check=True)
    releaseflow.serve()
    repository.commit("v1")
    web = f"{releaseflow.url}/web"

    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        sign_in_as_user(page, releaseflow.url, "dana", "not the password")
        assert page.locator("#signin-problem").inner_text() == "wrong user name or password"
        assert page.input_value("#name") == "dana"  # kept, so that only the password is typed again
        screenshot(page, "signin")
        sign_in_as_user(page, releaseflow.url, "gone", PASSWORD)
        assert (
            page.locator("#signin-problem").inner_text()
            == "the user 'gone' is disabled (an admin can enable it again)"
        )

        # The deployer starts a run from the pipeline's Run button; the run records who started it.
        sign_in_as_user(page, releaseflow.url, "dana", PASSWORD)
        page.wait_for_selector("h1:has-text('Projects and pipelines')")
        assert page.locator(".who").inner_text() == "user dana · deployer in shop"
        page.click("a:has-text('main')")
        page.click("a.button:text-is('Run')")
        page.fill("#run-name", "started by dana")
        page.click("button:has-text('Start run')")
        page.wait_for_selector("h1:has-text('started by dana')")
        assert "person dana" in page.locator("main > p.hint").inner_text()
        page.wait_for_selector("#run-live .run-status .status-success", timeout=60_000)
        run_url = page.url
        screenshot(page, "user-run")

        # Signing out ends the session on the server: the old cookie no longer signs anything in.
        (cookie,) = [c for c in page.context.cookies() if c["name"] == "releaseflow_session"]
        page.click("header form button:has-text('Sign out')")
        page.wait_for_selector("h1:has-text('Sign in')")
        stale = httpx.get(run_url, cookies={"releaseflow_session": cookie["value"]}, timeout=5)
        assert stale.status_code == 303 and stale.headers["location"].startswith("/web/signin")

        # The viewer sees the pipeline and the run, but no Run button and no Abort or Rename.
        sign_in_as_user(page, releaseflow.url, "vic", PASSWORD)
        page.wait_for_selector("h1:has-text('Projects and pipelines')")
        page.goto(f"{web}/p/shop/main")
        page.wait_for_selector("h2:has-text('Development')")
        assert page.locator("a.button:text-is('Run')").count() == 0
        assert page.locator("a.button:has-text('View runs')").count() == 1
        screenshot(page, "viewer-pipeline")
        page.goto(run_url)
        assert page.locator("summary:has-text('Rename')").count() == 0
        # A request the page does not offer, forged with the viewer's own session and CSRF token.
        csrf = session_csrf(page.content())
        forged = page.request.post(
            f"{web}/p/shop/main/Development/start", form={"csrf": csrf, "name": "forged"}, max_redirects=0
        )
        assert forged.status == 403 and "deployer" in forged.text()
        browser.close()


def test_web_users__sessions_end_on_sign_in_again_and_sign_out(releaseflow: Releaseflow) -> None:
    releaseflow.cli("db", "migrate", check=True)
    releaseflow.cli(
        "user", "create", "dana", "--role", "viewer", "--password-stdin", stdin=PASSWORD, check=True
    )
    releaseflow.serve()
    form = {"name": "Dana", "password": PASSWORD, "next": "/web/"}

    def signs_in(secret: str) -> bool:
        answer = httpx.get(f"{releaseflow.url}/web/", cookies={"releaseflow_session": secret}, timeout=5)
        return answer.status_code == 200

    # Login CSRF: a sign-in form another site posts arrives without the form's SameSite cookie (or
    # with a nonce this browser was not shown): refused, nobody signed in.
    with httpx.Client(base_url=f"{releaseflow.url}/web", timeout=10) as elsewhere:
        forged = elsewhere.post("/signin", data={**form, "csrf": "guessed"})
        assert forged.status_code == 403 and "sent from another site" in forged.text
        assert "releaseflow_session" not in elsewhere.cookies
        elsewhere.get("/signin")
        assert elsewhere.post("/signin", data={**form, "csrf": "guessed"}).status_code == 403
        assert "releaseflow_session" not in elsewhere.cookies

    with httpx.Client(base_url=f"{releaseflow.url}/web", timeout=10) as browser:
        answer = sign_in(browser, form)
        assert answer.status_code == 303, answer.text
        cookie = answer.headers["set-cookie"].lower()
        assert "httponly" in cookie and "samesite=strict" in cookie and "path=/web" in cookie
        first = browser.cookies["releaseflow_session"]
        assert first.startswith("rfs_") and signs_in(first)

        assert sign_in(browser, form).status_code == 303  # again, with the first cookie
        second = browser.cookies["releaseflow_session"]
        assert second != first and signs_in(second) and not signs_in(first)

        refused = browser.post("/signout", data={})
        assert refused.status_code == 403 and "CSRF" in refused.text and signs_in(second)
        csrf = session_csrf(browser.get("/").text)
        assert browser.post("/signout", data={"csrf": csrf}).status_code == 303
        assert not signs_in(second)

        # Five wrong passwords in a row lock the name for a while, even for the right password.
        for _ in range(5):
            wrong = sign_in(browser, {**form, "password": "not the password"})
            assert wrong.status_code == 401 and "wrong user name or password" in wrong.text
        locked = sign_in(browser, form)
        assert locked.status_code == 401 and "too many failed sign-ins as &#39;dana&#39;" in locked.text
