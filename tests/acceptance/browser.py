"""A real browser for the web interface's tests: Debian's chromium, headless, driven by Playwright.

Playwright never downloads a browser here (``PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD`` at install time, and
``executable_path`` at launch): scripts/system-packages installs chromium with apt. Screenshots go to
``SCREENSHOTS`` (a test output folder, ``RELEASEFLOW_TEST_SCREENSHOTS`` to move it).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = "/usr/bin/chromium"
SCREENSHOTS = Path(os.environ.get("RELEASEFLOW_TEST_SCREENSHOTS", "test-output/screenshots"))


@contextmanager
def chromium() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page: Page, base_url: str, token: str) -> None:
    """Sign in with an API token through the form, as a person would."""
    page.goto(f"{base_url}/")
    page.fill("#token", token)
    page.click("form:has(#token) button[type=submit]")
    page.wait_for_selector("h1:has-text('Projects and pipelines')")


def sign_in_as_user(page: Page, base_url: str, name: str, password: str) -> None:
    """Fill the user form of the sign-in page and send it (the test checks where it leads)."""
    page.goto(f"{base_url}/")
    page.fill("#name", name)
    page.fill("#password", password)
    page.click("form:has(#password) button[type=submit]")


def screenshot(page: Page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
